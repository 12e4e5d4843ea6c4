"""Placing an order: price, limits, stock and the first snapshot, in one transaction."""

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.availability import SkuFacts, assess, nothing_available
from domain.errors import DomainError, ErrorCode
from domain.freight import freight_for
from domain.messages import OrderWorkflowInput, PlaceOrderInput
from domain.models import DEFAULT_SHOP, OrderLine, OrderState, ProductType, StockPolicy
from domain.order import Placement, payment_deadline, placed
from domain.stock import allocate, is_low_stock, quantities
from store import orders, shops
from store.db import Database
from store.stock import (
    UNPAID_GUARD,
    StockMoved,
    available,
    check_unpaid,
    hold_guard,
    limit_usage,
    record_purchases,
    reserve,
)
from store.tables import SkuRow

MAX_UNPAID_ORDERS = 20  # ORDERS_MAX_UNPAID_ORDERS
T = TypeVar("T")


async def sure_refusal(session: AsyncSession, inp: OrderWorkflowInput) -> DomainError | None:
    """A cart that placement is sure to refuse, told from a plain read (no lock, no write):
    an unknown or delisted SKU, or stock short on a SKU without a purchase limit (a limit
    would be checked first). The API answers it without a write transaction, so once a hot
    SKU is sold out its latecomers are refused at the cost of a read. Anything else,
    including an order already placed under this id, is left to `place_order`, which
    decides under its locks."""
    if inp.reorder_of is not None:
        return None
    asked = quantities((line.sku, line.quantity) for line in inp.lines)
    skus = {r.sku: r for r in await session.scalars(select(SkuRow).where(SkuRow.sku.in_(asked)))}
    shop_of(skus)  # a cart across shops is refused at once
    facts = {s: SkuFacts(listed=r.listed, limit=r.limit_per_buyer) for s, r in skus.items()}
    verdict = assess(asked, facts, await available(session, asked))
    error = verdict.refusal()
    if error is None or error.code is ErrorCode.LIMIT_EXCEEDED:
        return None
    if error.code is ErrorCode.OUT_OF_STOCK and any(skus[s].limit_per_buyer for s in asked):
        return None  # its limit might be the reason placement gives
    if await orders.exists(session, inp.order_id):
        return None  # placed already (this is a retry): placement answers it
    return error


def shop_of(skus: dict[str, SkuRow]) -> str:
    """The one shop an order's SKUs belong to; SKUs of several shops are a checkout's."""
    shop_ids = sorted({row.shop_id for row in skus.values()})
    if len(shop_ids) > 1:
        raise DomainError(
            ErrorCode.MULTIPLE_SHOPS,
            f"the cart holds SKUs of {len(shop_ids)} shops ({', '.join(shop_ids)}): one order "
            "is one shop's; POST /checkouts places one order per shop",
            {"shops": shop_ids},
        )
    return shop_ids[0] if shop_ids else DEFAULT_SHOP


ATTEMPTS = 4  # placements tried from a fresh read before one that locks the rows first


async def place(db: Database, inp: PlaceOrderInput, max_unpaid: int) -> OrderState:
    """Place an order in its own transaction. When units it planned on were taken meanwhile
    (StockMoved), it is tried again from a fresh read; the last try locks the stock rows
    before reading them, so it always ends, placed or refused."""
    return await until_placed(
        db, lambda session, lock: place_order(session, inp, max_unpaid, lock=lock)
    )


async def until_placed(db: Database, attempt: Callable[[AsyncSession, bool], Awaitable[T]]) -> T:
    """One placement attempt per transaction, tried again while units it planned on were
    taken meanwhile (StockMoved); the last attempt is told to lock the rows first."""
    for n in range(1, ATTEMPTS + 1):
        try:
            async with db.transaction() as session:
                return await attempt(session, n == ATTEMPTS)
        except StockMoved:
            if n == ATTEMPTS:
                raise
    raise AssertionError("no attempt was made")


async def place_order(
    session: AsyncSession,
    inp: PlaceOrderInput,
    max_unpaid: int = MAX_UNPAID_ORDERS,
    *,
    lock: bool = False,
) -> OrderState:
    """Idempotent on the order id: a retry returns the order placed the first time. Stock
    is planned on a read and reserved by the last writes (`reserve`); with `lock`, the rows
    are locked from the read on."""
    # the buyer's guard row first (its lock before stock's): under it, the same request
    # twice at once finds the order the first one placed
    await hold_guard(session, inp.buyer_id, UNPAID_GUARD)
    existing = await orders.get(session, inp.order_id)
    if existing is not None:
        return existing
    await check_unpaid(session, inp.buyer_id, max_unpaid)
    asked = quantities((line.sku, line.quantity) for line in inp.lines)
    skus = {r.sku: r for r in await session.scalars(select(SkuRow).where(SkuRow.sku.in_(asked)))}
    shop_id = shop_of(skus)
    listed = {s: asked[s] for s in asked if s in skus and skus[s].listed}
    used = await limit_usage(session, inp.buyer_id, listed, skus, inp.now)
    free = await available(session, listed, lock=lock)
    facts = {
        s: SkuFacts(listed=r.listed, limit=r.limit_per_buyer, already=used.get(s, 0))
        for s, r in skus.items()
    }
    verdict = assess(asked, facts, free)
    if inp.reorder_of is None:  # a cart is bought whole or refused
        refusal = verdict.refusal()
        if refusal is not None:
            raise refusal
    elif not verdict.take:
        raise nothing_available(verdict.unavailable)
    wanted = verdict.take
    allocations = allocate(wanted, free)
    locking = {s for s in wanted if skus[s].stock_policy == StockPolicy.LOCK_ON_ORDER}
    held = [a for a in allocations if a.sku in locking]
    low_stock = any(
        is_low_stock(sum(v for (s, _), v in free.items() if s == sku) - qty, qty)
        for sku, qty in wanted.items()
        if sku not in locking
    )
    lines = [
        OrderLine(
            sku=sku,
            title=skus[sku].title,
            product_type=ProductType(skus[sku].product_type),
            stock_policy=StockPolicy(skus[sku].stock_policy),
            quantity=qty,
            unit_price_cents=skus[sku].price_cents,
        )
        for sku, qty in wanted.items()
    ]
    goods = sum(line.quantity * line.unit_price_cents for line in lines)
    rule = await shops.freight_rule(session, shop_id)
    change = placed(
        Placement(
            lines=lines,
            freight_cents=freight_for(goods, rule),
            freight_policy=rule.policy,
            allocations=held,
            low_stock=low_stock,
            deadline=payment_deadline(
                inp.now, inp.timings, (skus[s].payment_window_minutes for s in wanted)
            ),
            unavailable=verdict.unavailable if inp.reorder_of else [],
            at=inp.now,
            shop_id=shop_id,
            checkout_id=inp.checkout_id,
        ),
        order_id=inp.order_id,
        buyer_id=inp.buyer_id,
        address=inp.address,
        timings=inp.timings,
        reorder_of=inp.reorder_of,
    )
    await record_purchases(session, inp.order_id, inp.buyer_id, wanted, inp.now)
    # a new order (none under the guard): the workflow's write order starts after it
    await orders.save(session, change.state, change.event, write_seq=inp.write_seq or None)
    await reserve(session, inp.order_id, held)  # last: the rows stay locked only to the commit
    return change.state
