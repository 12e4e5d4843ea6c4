"""A checkout (拆单 by shop): a cart across shops placed as one order per shop, in one
transaction, all or none. Each order is placed as `POST /orders` places one (price, its shop's
freight rule, purchase limits, the unpaid cap, stock); a line that cannot be placed refuses
the whole checkout with every line's reason, and nothing is left behind."""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.availability import Assessment, SkuFacts, assess
from domain.errors import DomainError
from domain.messages import CheckoutInput, PlaceOrderInput
from domain.models import LineRequest, OrderState, Reason, Unavailable
from domain.stock import quantities
from store import orders
from store.db import Database
from store.placement import place_order, until_placed
from store.stock import UNPAID_GUARD, available, hold_guard, limit_usage
from store.tables import CheckoutRow, SkuRow


@dataclass(frozen=True)
class Checkout:
    id: str
    buyer_id: str
    orders: list[OrderState]


async def get(session: AsyncSession, checkout_id: str) -> Checkout | None:
    row = await session.get(CheckoutRow, checkout_id)
    if row is None:
        return None
    return Checkout(row.id, row.buyer_id, await orders.get_many(session, row.order_ids))


async def place(
    db: Database, inp: CheckoutInput, order_id_of: Callable[[str], str], max_unpaid: int
) -> Checkout:
    """Place the checkout in its own transaction (`order_id_of`: a shop's order id). When
    units it planned on were taken meanwhile, all of it is tried again from a fresh read; the
    last try locks the stock rows first, so it always ends, placed whole or refused whole."""
    return await until_placed(
        db, lambda session, lock: _place(session, inp, order_id_of, max_unpaid, lock)
    )


async def _place(
    session: AsyncSession,
    inp: CheckoutInput,
    order_id_of: Callable[[str], str],
    max_unpaid: int,
    lock: bool,
) -> Checkout:
    await hold_guard(session, inp.buyer_id, UNPAID_GUARD)  # the same request twice: one
    existing = await get(session, inp.checkout_id)
    if existing is not None:
        return existing
    asked = quantities((line.sku, line.quantity) for line in inp.lines)
    skus = {r.sku: r for r in await session.scalars(select(SkuRow).where(SkuRow.sku.in_(asked)))}
    by_shop: dict[str, dict[str, int]] = defaultdict(dict)
    for sku, qty in asked.items():
        if sku in skus:
            by_shop[skus[sku].shop_id][sku] = qty
    await _refuse_unless_all_can_be_placed(session, inp, asked, skus, by_shop, lock)
    placed = []
    for shop_id in sorted(by_shop):
        lines = [LineRequest(sku=s, quantity=q) for s, q in by_shop[shop_id].items()]
        one = PlaceOrderInput(
            order_id=order_id_of(shop_id),
            buyer_id=inp.buyer_id,
            lines=lines,
            address=inp.address,
            timings=inp.timings,
            now=inp.now,
            checkout_id=inp.checkout_id,
        )
        placed.append(await place_order(session, one, max_unpaid, lock=lock))
    session.add(
        CheckoutRow(
            id=inp.checkout_id,
            buyer_id=inp.buyer_id,
            order_ids=[o.id for o in placed],
            created_at=inp.now,
        )
    )
    await session.flush()
    return Checkout(inp.checkout_id, inp.buyer_id, placed)


async def _refuse_unless_all_can_be_placed(
    session: AsyncSession,
    inp: CheckoutInput,
    asked: dict[str, int],
    skus: dict[str, SkuRow],
    by_shop: dict[str, dict[str, int]],
    lock: bool,
) -> None:
    """Every line assessed as its shop's order would be; any line short refuses the whole
    checkout, with the reason of every line that is (the code: the first kind of problem, as
    for one order)."""
    used = await limit_usage(session, inp.buyer_id, asked, skus, inp.now)
    free = await available(session, sorted(s for s in asked if s in skus), lock=lock)
    facts = {
        s: SkuFacts(listed=r.listed, limit=r.limit_per_buyer, already=used.get(s, 0))
        for s, r in skus.items()
    }
    unavailable: list[Unavailable] = [
        Unavailable(sku=s, reason=Reason.UNKNOWN_SKU, requested=q)
        for s, q in asked.items()
        if s not in skus
    ]
    for wanted in by_shop.values():
        unavailable += assess(wanted, facts, free).unavailable
    unavailable.sort(key=lambda u: u.sku)
    refusal = Assessment({}, unavailable, facts).refusal()
    if refusal is not None:
        lines = [
            u.model_dump(mode="json") | {"shop_id": skus[u.sku].shop_id if u.sku in skus else None}
            for u in unavailable
        ]
        message = f"the checkout is refused whole: {refusal.message}"
        raise DomainError(refusal.code, message, refusal.details | {"lines": lines})
