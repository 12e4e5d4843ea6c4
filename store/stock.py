"""Stock and purchase limits: every change in the caller's transaction, rows locked in order.

PostgreSQL: rows are taken FOR UPDATE sorted by (sku, location) so concurrent orders queue
instead of deadlocking. SQLite: BEGIN IMMEDIATE already admits one writer at a time.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import DomainError, ErrorCode
from domain.models import Allocation, OrderLine, OrderState, OrderStatus, StockPolicy
from domain.stock import allocate, quantities
from store.sql import insert_ignore, insert_locked
from store.tables import (
    LimitGuardRow,
    OrderRow,
    PurchaseRecordRow,
    SkuRow,
    StockHoldRow,
    StockReturnRow,
    StockRow,
    StockTakeRow,
)

HELD, DEDUCTED, RELEASED, RESTORED = "HELD", "DEDUCTED", "RELEASED", "RESTORED"
FOREVER_DAYS = 36_500


async def lock_rows(session: AsyncSession, skus: Iterable[str]) -> dict[tuple[str, str], StockRow]:
    rows = await session.scalars(
        select(StockRow)
        .where(StockRow.sku.in_(sorted(set(skus))))
        .order_by(StockRow.sku, StockRow.location)
        .with_for_update()
    )
    return {(r.sku, r.location): r for r in rows}


def free(rows: dict[tuple[str, str], StockRow]) -> dict[tuple[str, str], int]:
    return {k: r.on_hand - r.locked for k, r in rows.items()}


async def available(
    session: AsyncSession, skus: Iterable[str], *, lock: bool = False
) -> dict[tuple[str, str], int]:
    """Units free per (sku, location): what a placement plans on. Read without a lock,
    `reserve` then takes them only if they are still free; with `lock`, the rows are held
    from here (in order, as `lock_rows` takes them)."""
    query = select(StockRow.sku, StockRow.location, StockRow.on_hand - StockRow.locked).where(
        StockRow.sku.in_(sorted(set(skus)))
    )
    if lock:
        query = query.order_by(StockRow.sku, StockRow.location).with_for_update()
    rows = await session.execute(query)
    return {(sku, location): left for sku, location, left in rows}


class StockMoved(Exception):
    """Units a placement planned on were taken meanwhile: its transaction is rolled back
    and the placement tried again from a fresh read."""


async def reserve(session: AsyncSession, order_id: str, allocations: list[Allocation]) -> None:
    """Lock allocated units (HELD): one conditional update per (sku, location), taken only
    if the units are still free, else StockMoved. A placement makes these its last writes,
    so a hot SKU's row is locked only from here to the commit, and buyers racing for the
    last units queue for that moment alone."""
    for a in sorted(allocations, key=lambda a: (a.sku, a.location)):
        taken = await session.execute(
            update(StockRow)
            .where(
                StockRow.sku == a.sku,
                StockRow.location == a.location,
                StockRow.on_hand - StockRow.locked >= a.quantity,
            )
            .values(locked=StockRow.locked + a.quantity)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            raise StockMoved(f"{a.sku} at {a.location}: fewer than {a.quantity} units free now")
        session.add(
            StockHoldRow(
                order_id=order_id, sku=a.sku, location=a.location, quantity=a.quantity, state=HELD
            )
        )


UNPAID_GUARD = "#unpaid"  # the guard row of a buyer's unpaid orders (no SKU is named so)


async def hold_guard(session: AsyncSession, buyer_id: str, name: str) -> None:
    """Lock one of a buyer's guard rows (made on first use) until the transaction ends, so
    that buyer's checks of one kind run one at a time. One statement: on PostgreSQL an
    upsert, which locks the row it inserts or finds; SQLite admits one writer at a time."""
    await insert_locked(session, LimitGuardRow, ["buyer_id", "sku"], buyer_id=buyer_id, sku=name)


async def check_unpaid(session: AsyncSession, buyer_id: str, most: int) -> None:
    """A buyer holds at most `most` unpaid orders (their stock locked for up to a day): the
    next is refused. Call it holding the buyer's UNPAID_GUARD row (`hold_guard`), so it is
    atomic per buyer, as a purchase limit is."""
    unpaid = await session.scalar(
        select(func.count()).where(
            OrderRow.buyer_id == buyer_id, OrderRow.status == OrderStatus.PENDING_PAYMENT.value
        )
    )
    if (unpaid or 0) >= most:
        raise DomainError(
            ErrorCode.TOO_MANY_UNPAID_ORDERS,
            f"{unpaid} unpaid orders already: pay or cancel one before placing another",
            {"unpaid_orders": unpaid, "most": most},
        )


async def limit_usage(
    session: AsyncSession,
    buyer_id: str,
    wanted: dict[str, int],
    skus: dict[str, SkuRow],
    now: datetime,
) -> dict[str, int]:
    """Units of each limited SKU in the buyer's orders within its window (unpaid, paid or
    completed; not closed). Atomic per (buyer, SKU): the guard row is held until the order's
    transaction ends."""
    limited = sorted(s for s in wanted if s in skus and skus[s].limit_per_buyer)
    for sku in limited:  # in order, so two placements of one buyer queue, never deadlock
        await hold_guard(session, buyer_id, sku)
    used: dict[str, int] = {}
    for sku in limited:
        since = now - timedelta(days=skus[sku].limit_window_days or FOREVER_DAYS)
        already = await session.scalar(
            select(func.coalesce(func.sum(PurchaseRecordRow.quantity), 0)).where(
                PurchaseRecordRow.buyer_id == buyer_id,
                PurchaseRecordRow.sku == sku,
                PurchaseRecordRow.active.is_(True),
                PurchaseRecordRow.created_at >= since,
            )
        )
        used[sku] = int(already or 0)
    return used


async def record_purchases(
    session: AsyncSession, order_id: str, buyer_id: str, wanted: dict[str, int], now: datetime
) -> None:
    for sku, qty in wanted.items():
        await insert_ignore(
            session,
            PurchaseRecordRow,
            order_id=order_id,
            sku=sku,
            buyer_id=buyer_id,
            quantity=qty,
            created_at=now,
            active=True,
        )


def hold(
    session: AsyncSession,
    order_id: str,
    rows: dict[tuple[str, str], StockRow],
    allocations: list[Allocation],
    state: str,
) -> None:
    """Take allocated units: lock them (HELD) or take them off hand (DEDUCTED)."""
    for a in allocations:
        row = rows[(a.sku, a.location)]
        if state == HELD:
            row.locked += a.quantity
        else:
            row.on_hand -= a.quantity
        session.add(
            StockHoldRow(
                order_id=order_id, sku=a.sku, location=a.location, quantity=a.quantity, state=state
            )
        )


async def _holds(session: AsyncSession, order_id: str, state: str) -> list[StockHoldRow]:
    return list(
        await session.scalars(
            select(StockHoldRow)
            .where(StockHoldRow.order_id == order_id, StockHoldRow.state == state)
            .order_by(StockHoldRow.sku, StockHoldRow.location)
            .execution_options(populate_existing=True)
        )
    )


async def _turn_held(session: AsyncSession, order_id: str, to: str) -> list[Allocation]:
    """The order's HELD units, turned to `to` in one statement (call it holding the stock
    rows' locks): what they were, in (sku, location) order."""
    turned = await session.execute(
        update(StockHoldRow)
        .where(StockHoldRow.order_id == order_id, StockHoldRow.state == HELD)
        .values(state=to)
        .returning(StockHoldRow.sku, StockHoldRow.location, StockHoldRow.quantity)
        .execution_options(synchronize_session=False)
    )
    units = (Allocation(sku=sku, location=loc, quantity=q) for sku, loc, q in turned)
    return sorted(units, key=lambda a: (a.sku, a.location))


async def deduct_for_payment(
    session: AsyncSession, state: OrderState, *, fresh: bool = False
) -> list[Allocation]:
    """Turn the order's locks into deductions, and deduct DEDUCT_ON_PAYMENT lines now.
    `fresh`: the caller knows no deduction of this payment was made before (else a retry
    finds the one that was, and changes nothing).

    Raises InsufficientStock (nothing changed) when a deduct-on-payment SKU sold out.
    """
    if not fresh:
        done = await _holds(session, state.id, DEDUCTED)
        if done:  # a retry: the deduction was made
            return [Allocation(sku=h.sku, location=h.location, quantity=h.quantity) for h in done]
    # the stock rows' locks first, in (sku, location) order, as every writer takes them:
    # the holds are then read and turned under them (a release cannot slip in between)
    rows = await lock_rows(session, (line.sku for line in state.lines))
    available_now = free(rows)
    taken = await _turn_held(session, state.id, DEDUCTED)
    for a in taken:  # (the rows are written at the flush below, one UPDATE each)
        row = rows[(a.sku, a.location)]
        row.on_hand -= a.quantity
        row.locked -= a.quantity
    held = quantities((a.sku, a.quantity) for a in taken)
    wanted = quantities(
        (line.sku, line.quantity - (held.get(line.sku, 0) if locks(line) else 0))
        for line in state.lines
    )
    wanted = {sku: n for sku, n in wanted.items() if n > 0}
    retaken = [line.sku for line in state.lines if locks(line) and line.sku in wanted]
    if retaken:
        # locked units no longer held: released by a workflow task that did not stand (its
        # retry took this payment instead of the deadline); taken again from what is free,
        # their release undone, and the order's purchases count again
        await session.execute(
            delete(StockHoldRow).where(
                StockHoldRow.order_id == state.id,
                StockHoldRow.state == RELEASED,
                StockHoldRow.sku.in_(retaken),
            )
        )
        await session.execute(
            update(PurchaseRecordRow)
            .where(PurchaseRecordRow.order_id == state.id)
            .values(active=True)
        )
    fresh_units = allocate(wanted, available_now) if wanted else []
    hold(session, state.id, rows, fresh_units, DEDUCTED)
    await session.flush()
    return taken + fresh_units


def locks(line: OrderLine) -> bool:
    return line.stock_policy is StockPolicy.LOCK_ON_ORDER


async def release(session: AsyncSession, state: OrderState) -> None:
    """Closing an unpaid order: its locks go back to available. The stock rows of its SKUs
    are locked first (in order, as every writer takes them); its holds are turned under
    those locks, so a concurrent release or payment of it cannot count them twice."""
    locking = [line.sku for line in state.lines if line.stock_policy is StockPolicy.LOCK_ON_ORDER]
    if not locking:
        return
    rows = await lock_rows(session, locking)
    for a in await _turn_held(session, state.id, RELEASED):
        rows[(a.sku, a.location)].locked -= a.quantity
    await session.flush()


async def end_purchases(session: AsyncSession, order_id: str) -> None:
    """A closed order's units stop counting against purchase limits."""
    await session.execute(
        update(PurchaseRecordRow)
        .where(PurchaseRecordRow.order_id == order_id, PurchaseRecordRow.active.is_(True))
        .values(active=False)
    )


async def restore(session: AsyncSession, order_id: str, allocations: list[Allocation]) -> None:
    """Deducted units come back on hand (an intercepted or returned package); idempotent."""
    wanted = {(a.sku, a.location) for a in allocations}
    if not wanted:
        return
    rows = await lock_rows(session, (sku for sku, _ in wanted))
    for h in await _holds(session, order_id, DEDUCTED):  # read under the row locks
        if (h.sku, h.location) in wanted:
            rows[(h.sku, h.location)].on_hand += h.quantity
            h.state = RESTORED
    await session.flush()


async def _first_time(
    session: AsyncSession,
    table: type[StockReturnRow] | type[StockTakeRow],
    order_id: str,
    ref: str,
    a: Allocation,
) -> bool:
    """Record these units under `ref`; False when they already were (a retried write)."""
    return await insert_ignore(
        session,
        table,
        order_id=order_id,
        ref=ref,
        sku=a.sku,
        location=a.location,
        quantity=a.quantity,
    )


async def take_units(
    session: AsyncSession, order_id: str, ref: str, allocations: list[Allocation]
) -> None:
    """Units taken off hand at their locations (an exchange's replacement), once per `ref`:
    all of them, or none and OUT_OF_STOCK when a location has too few free."""
    if not allocations:
        return
    rows = await lock_rows(session, (a.sku for a in allocations))
    for a in allocations:
        if not await _first_time(session, StockTakeRow, order_id, ref, a):
            continue  # a retry: already taken
        row = rows.get((a.sku, a.location))
        left = 0 if row is None else row.on_hand - row.locked
        if row is None or left < a.quantity:
            raise DomainError(
                ErrorCode.OUT_OF_STOCK,
                f"{a.sku}: {left} free at {a.location}, {a.quantity} needed",
                {"sku": a.sku, "location": a.location, "available": left},
            )
        row.on_hand -= a.quantity
    await session.flush()


async def return_units(
    session: AsyncSession, order_id: str, ref: str, allocations: list[Allocation]
) -> None:
    """Refunded units back on hand (a refund before shipment, a confirmed return): exactly
    these units, once per `ref`. The order's deducted hold shrinks by as much, so a later
    whole-package restore gives back only what is left."""
    if not allocations:
        return
    rows = await lock_rows(session, (a.sku for a in allocations))
    holds = {(h.sku, h.location): h for h in await _holds(session, order_id, DEDUCTED)}
    for a in allocations:
        if not await _first_time(session, StockReturnRow, order_id, ref, a):
            continue  # a retry: already back
        row = rows.get((a.sku, a.location))
        if row is not None:
            row.on_hand += a.quantity
        hold = holds.get((a.sku, a.location))
        if hold is not None:
            if hold.quantity > a.quantity:
                hold.quantity -= a.quantity
            else:
                hold.state = RESTORED
    await session.flush()
