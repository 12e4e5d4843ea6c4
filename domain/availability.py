"""What of a cart can be bought now, line by line, and why not (SPEC §3, §7).

One assessment serves both placements: `POST /orders` refuses the whole cart on the first
kind of problem (unknown, delisted, over a limit, short of stock — in that order, as it
always has), and a reorder places what can be bought and reports the rest. So the two can
never disagree about a line.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from domain.errors import DomainError, ErrorCode
from domain.models import Reason, Unavailable
from domain.stock import InsufficientStock, Shortfall, check_limit


@dataclass(frozen=True)
class SkuFacts:
    listed: bool
    limit: int | None = None
    already: int = 0  # units of this SKU in the buyer's unclosed orders within the window


@dataclass(frozen=True)
class Assessment:
    take: dict[str, int]  # what can be bought, per SKU
    unavailable: list[Unavailable]
    facts: Mapping[str, SkuFacts]

    def refusal(self) -> DomainError | None:
        """The error a whole-cart placement answers with, or None when all can be bought."""
        by = {r: [u for u in self.unavailable if u.reason is r] for r in Reason}
        if by[Reason.UNKNOWN_SKU]:
            skus = [u.sku for u in by[Reason.UNKNOWN_SKU]]
            return DomainError(
                ErrorCode.UNKNOWN_SKU, f"unknown SKU: {', '.join(skus)}", {"skus": skus}
            )
        if by[Reason.DELISTED]:
            skus = [u.sku for u in by[Reason.DELISTED]]
            return DomainError(
                ErrorCode.SKU_DELISTED, f"no longer sold: {', '.join(skus)}", {"skus": skus}
            )
        if by[Reason.LIMIT_EXCEEDED]:
            u = by[Reason.LIMIT_EXCEEDED][0]
            f = self.facts[u.sku]
            try:
                check_limit(u.sku, f.limit, f.already, u.requested)
            except DomainError as err:
                return err
        if by[Reason.OUT_OF_STOCK]:
            return InsufficientStock(
                [Shortfall(u.sku, u.requested, u.placed) for u in by[Reason.OUT_OF_STOCK]]
            )
        return None


def assess(
    wanted: Mapping[str, int],
    facts: Mapping[str, SkuFacts],
    free: Mapping[tuple[str, str], int],
) -> Assessment:
    """Each SKU's fate: unknown, delisted, held back by its purchase limit, or by stock (the
    limit is checked first, as placement always has); otherwise bought in full. A line short
    of either takes what is left."""
    take: dict[str, int] = {}
    unavailable: list[Unavailable] = []
    for sku, want in wanted.items():  # the cart's order; reasons are listed by SKU
        f = facts.get(sku)
        if f is None:
            unavailable.append(Unavailable(sku=sku, reason=Reason.UNKNOWN_SKU, requested=want))
            continue
        if not f.listed:
            unavailable.append(Unavailable(sku=sku, reason=Reason.DELISTED, requested=want))
            continue
        room = want if f.limit is None else max(0, f.limit - f.already)
        have = sum(n for (s, _), n in free.items() if s == sku and n > 0)
        placed = min(want, room, have)
        if placed < want:
            reason = Reason.LIMIT_EXCEEDED if room < want else Reason.OUT_OF_STOCK
            unavailable.append(Unavailable(sku=sku, reason=reason, requested=want, placed=placed))
        if placed:
            take[sku] = placed
    return Assessment(take, sorted(unavailable, key=lambda u: u.sku), facts)


def nothing_available(unavailable: list[Unavailable]) -> DomainError:
    reasons = ", ".join(f"{u.sku}: {u.reason}" for u in unavailable)
    return DomainError(
        ErrorCode.NOTHING_AVAILABLE,
        f"nothing of that order can be bought now ({reasons})",
        {"unavailable": [u.model_dump(mode="json") for u in unavailable]},
    )
