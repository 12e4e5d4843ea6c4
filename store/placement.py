"""Placing an order: price, limits, stock and the first snapshot, in one transaction."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.availability import SkuFacts, assess, nothing_available
from domain.errors import DomainError, ErrorCode
from domain.freight import freight_for
from domain.messages import OrderWorkflowInput, PlaceOrderInput
from domain.models import OrderLine, OrderState, ProductType, StockPolicy
from domain.order import Placement, payment_deadline, placed
from domain.stock import allocate, is_low_stock, quantities
from store import catalog, orders
from store.stock import (
    HELD,
    check_unpaid,
    free,
    hold,
    limit_usage,
    lock_rows,
    record_purchases,
)
from store.tables import SkuRow, StockRow

MAX_UNPAID_ORDERS = 20  # ORDERS_MAX_UNPAID_ORDERS


async def sure_refusal(session: AsyncSession, inp: OrderWorkflowInput) -> DomainError | None:
    """A cart that placement is sure to refuse, told from a plain read (no lock, no write):
    an unknown or delisted SKU, or stock short on a SKU without a purchase limit (a limit
    would be checked first). The API answers it without starting a workflow, so once a hot
    SKU is sold out its latecomers are refused at the cost of a read. Anything else,
    including an order already placed under this id, is left to `place_order`, which
    decides under its locks. (Counting placements still under way as taken would refuse
    too early: one already committed but not yet answered would count twice.)"""
    if inp.reorder_of is not None or await orders.get(session, inp.order_id) is not None:
        return None
    asked = quantities((line.sku, line.quantity) for line in inp.lines)
    skus = {r.sku: r for r in await session.scalars(select(SkuRow).where(SkuRow.sku.in_(asked)))}
    stock = await session.scalars(select(StockRow).where(StockRow.sku.in_(asked)))
    facts = {s: SkuFacts(listed=r.listed, limit=r.limit_per_buyer) for s, r in skus.items()}
    verdict = assess(asked, facts, {(r.sku, r.location): r.on_hand - r.locked for r in stock})
    error = verdict.refusal()
    if error is None or error.code is ErrorCode.LIMIT_EXCEEDED:
        return None
    if error.code is ErrorCode.OUT_OF_STOCK and any(skus[s].limit_per_buyer for s in asked):
        return None  # its limit might be the reason placement gives
    return error


async def place_order(
    session: AsyncSession, inp: PlaceOrderInput, max_unpaid: int = MAX_UNPAID_ORDERS
) -> OrderState:
    """Idempotent on the order id: a retry returns the order placed the first time."""
    existing = await orders.get(session, inp.order_id)
    if existing is not None:
        return existing
    await check_unpaid(session, inp.buyer_id, max_unpaid)  # first: its lock before stock's
    # the same request twice at once: the buyer's guard row let one through first
    existing = await orders.get(session, inp.order_id)
    if existing is not None:
        return existing
    asked = quantities((line.sku, line.quantity) for line in inp.lines)
    skus = {r.sku: r for r in await session.scalars(select(SkuRow).where(SkuRow.sku.in_(asked)))}
    listed = {s: asked[s] for s in asked if s in skus and skus[s].listed}
    used = await limit_usage(session, inp.buyer_id, listed, skus, inp.now)
    rows = await lock_rows(session, listed)
    available = free(rows)
    facts = {
        s: SkuFacts(listed=r.listed, limit=r.limit_per_buyer, already=used.get(s, 0))
        for s, r in skus.items()
    }
    verdict = assess(asked, facts, available)
    if inp.reorder_of is None:  # a cart is bought whole or refused
        refusal = verdict.refusal()
        if refusal is not None:
            raise refusal
    elif not verdict.take:
        raise nothing_available(verdict.unavailable)
    wanted = verdict.take
    allocations = allocate(wanted, available)
    locking = {s for s in wanted if skus[s].stock_policy == StockPolicy.LOCK_ON_ORDER}
    hold(session, inp.order_id, rows, [a for a in allocations if a.sku in locking], HELD)
    low_stock = any(
        is_low_stock(sum(v for (s, _), v in available.items() if s == sku) - qty, qty)
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
    rule = await catalog.freight_rule(session)
    change = placed(
        Placement(
            lines=lines,
            freight_cents=freight_for(goods, rule),
            freight_policy=rule.policy,
            allocations=[a for a in allocations if a.sku in locking],
            low_stock=low_stock,
            deadline=payment_deadline(
                inp.now, inp.timings, (skus[s].payment_window_minutes for s in wanted)
            ),
            unavailable=verdict.unavailable if inp.reorder_of else [],
            at=inp.now,
        ),
        order_id=inp.order_id,
        buyer_id=inp.buyer_id,
        address=inp.address,
        timings=inp.timings,
        reorder_of=inp.reorder_of,
    )
    await record_purchases(session, inp.order_id, inp.buyer_id, wanted, inp.now)
    await orders.save(session, change.state, change.event, write_seq=inp.write_seq)
    return change.state
