"""Stock allocation across locations and purchase-limit arithmetic, on plain values."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from domain.errors import DomainError, ErrorCode
from domain.models import Allocation


@dataclass(frozen=True)
class Shortfall:
    sku: str
    requested: int
    available: int


class InsufficientStock(DomainError):
    """Every SKU that cannot be served, raised once for the whole request."""

    def __init__(self, shortfalls: list[Shortfall]):
        skus = ", ".join(f"{s.sku} (want {s.requested}, have {s.available})" for s in shortfalls)
        super().__init__(
            ErrorCode.OUT_OF_STOCK,
            f"not enough stock: {skus}",
            {"shortfalls": [s.__dict__ for s in shortfalls]},
        )
        self.shortfalls = shortfalls


def allocate(
    requested: Mapping[str, int], available: Mapping[tuple[str, str], int]
) -> list[Allocation]:
    """Serve each SKU from its locations, fullest first, so orders split into few packages.

    `available` maps (sku, location) to units free to take. A SKU short at one location is
    topped up from the others; only when all its locations together are short is it refused.
    """
    allocations: list[Allocation] = []
    shortfalls: list[Shortfall] = []
    for sku in sorted(requested):
        want = requested[sku]
        rows = sorted(
            ((loc, free) for (s, loc), free in available.items() if s == sku and free > 0),
            key=lambda r: (-r[1], r[0]),
        )
        total = sum(free for _, free in rows)
        if total < want:
            shortfalls.append(Shortfall(sku, want, total))
            continue
        for loc, free in rows:
            take = min(want, free)
            allocations.append(Allocation(sku=sku, location=loc, quantity=take))
            want -= take
            if want == 0:
                break
    if shortfalls:
        raise InsufficientStock(shortfalls)
    return allocations


def quantities(lines: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Sum quantities per SKU (a cart may name one SKU on several lines)."""
    out: dict[str, int] = {}
    for sku, qty in lines:
        out[sku] = out.get(sku, 0) + qty
    return out


def is_low_stock(free_after: int, requested: int) -> bool:
    """'Selling fast, pay soon': what is left after this order is under twice its size."""
    return free_after < max(requested * 2, 5)


def check_limit(sku: str, limit: int | None, already: int, requested: int) -> int | None:
    """Purchase limit (限购): unpaid and paid units in the window count, closed ones do not.

    Returns what the buyer may still buy after this order (None: no limit).
    """
    if limit is None:
        return None
    if already + requested > limit:
        raise DomainError(
            ErrorCode.LIMIT_EXCEEDED,
            f"{sku}: limit is {limit} per buyer in its window; your orders in it already"
            f" hold {already} (unpaid, paid or completed: only closed orders do not count)",
            {"sku": sku, "limit": limit, "already": already, "requested": requested},
        )
    return limit - already - requested
