"""Which write of an order wins: the workflow's writes are ordered by when it wrote them (its
run's start, then its history length), so a workflow task that saved and then timed out
cannot shadow what the next task decided; and an event's actor can be a supplier's order id."""

from datetime import timedelta

import pytest

from domain.models import Actor, CloseReason, OrderState
from domain.order import Change, close
from domain.stock import InsufficientStock
from store import orders
from store.db import Database
from tests.store.helpers import T0, add_sku, pay, place, release, rows, stock_of

EARLIER, LATER = 5 << 20 | 40, 5 << 20 | 43  # one run; the later task's history is longer


async def save(db: Database, change: Change, seq: int) -> None:
    async with db.transaction() as session:
        await orders.save(session, change.state, change.event, write_seq=seq)


async def paid_order(db: Database) -> OrderState:
    await add_sku(db, "A")
    return await pay(db, await place(db, "o-1", [("A", 1)]))


async def test_a_later_tasks_write_of_the_same_version_replaces_the_earlier_one(
    db: Database,
) -> None:
    state = await paid_order(db)
    buyer = Actor(kind="buyer", id=state.buyer_id)
    # the task that timed out after saving: the buyer's cancel; its retry saw something else
    cancelled = close(state, CloseReason.BUYER_CANCELLED, T0 + timedelta(hours=1), buyer)
    closed = close(
        state, CloseReason.SELLER_CLOSED, T0 + timedelta(hours=2), Actor(kind="merchant")
    )
    assert cancelled.state.version == closed.state.version
    await save(db, cancelled, EARLIER)
    await save(db, closed, LATER)

    v = closed.state.version
    assert await rows(db, "SELECT close_reason, version FROM orders") == [("SELLER_CLOSED", v)]
    assert await rows(
        db, f"SELECT type, actor_kind FROM order_events WHERE version = {v} ORDER BY id"
    ) == [("CLOSED", "merchant")]  # the earlier task's event row went with its snapshot

    with pytest.raises(orders.StaleWrite):  # the earlier task's write, arriving late
        await save(db, cancelled, EARLIER)
    assert await rows(db, "SELECT close_reason FROM orders") == [("SELLER_CLOSED",)]


async def test_a_later_task_redoing_earlier_versions_removes_what_they_wrote(
    db: Database,
) -> None:
    state = await paid_order(db)
    v = state.version
    first = close(state, CloseReason.BUYER_CANCELLED, T0 + timedelta(hours=1), Actor(kind="buyer"))
    await save(db, first, EARLIER)
    again = close(state, CloseReason.SELLER_CLOSED, T0 + timedelta(hours=1), Actor(kind="merchant"))
    await save(db, again, LATER)  # the retried task redoes v+1 with another outcome
    assert await rows(
        db, f"SELECT version, actor_kind FROM order_events WHERE version > {v} ORDER BY id"
    ) == [(v + 1, "merchant")]


async def test_writes_of_one_task_follow_the_version(db: Database) -> None:
    state = await paid_order(db)
    first = close(state, CloseReason.BUYER_CANCELLED, T0 + timedelta(hours=1), Actor(kind="buyer"))
    await save(db, first, EARLIER)
    with pytest.raises(orders.StaleWrite):
        await save(db, first, EARLIER - 1)
    assert await rows(db, "SELECT close_reason FROM orders") == [("BUYER_CANCELLED",)]


async def test_an_event_can_name_a_suppliers_order_id_of_128_characters(db: Database) -> None:
    state = await paid_order(db)
    supplier = Actor(kind="supplier", id="S" * 128)  # what the supplier webhook admits
    change = close(state, CloseReason.SELLER_CLOSED, T0 + timedelta(hours=3), supplier)
    await save(db, change, LATER)
    assert await rows(
        db, f"SELECT actor_id FROM order_events WHERE version = {change.state.version}"
    ) == [("S" * 128,)]


async def test_a_payment_after_a_release_that_did_not_stand_takes_the_units_again(
    db: Database,
) -> None:
    """The deadline's task released the order's locks and closed it, then failed (a payment's
    signal came in meanwhile); its retry took the payment instead. The payment deducts the
    units again from what is free, so stock stays exact, and the purchases count again.
    Found by a checkout's payment racing its orders' payment timer on the real server."""
    await add_sku(db, "A", stock_at={"WH-A": 3, "WH-B": 1})
    placed = await place(db, "o-1", [("A", 2)])
    await release(db, "o-1")  # what the task that did not stand wrote
    assert await stock_of(db, "A") == {"WH-A": (3, 0), "WH-B": (1, 0)}

    paid = await pay(db, placed)
    assert paid.status.value == "PENDING_SHIPMENT"
    assert await stock_of(db, "A") == {"WH-A": (1, 0), "WH-B": (1, 0)}
    assert await rows(db, "SELECT sku, location, quantity, state FROM stock_holds") == [
        ("A", "WH-A", 2, "DEDUCTED")
    ]
    assert await rows(db, "SELECT active FROM purchase_records") == [(True,)]


async def test_a_payment_after_a_release_finds_the_units_sold_meanwhile(db: Database) -> None:
    """Released units another order took in between: the payment is refused as sold out
    (the workflow refunds it), and nothing changes."""
    await add_sku(db, "A", stock_at={"WH-A": 2})
    placed = await place(db, "o-1", [("A", 2)])
    await release(db, "o-1")
    await place(db, "o-2", [("A", 1)], buyer="b-2")
    with pytest.raises(InsufficientStock):
        await pay(db, placed)
    assert await stock_of(db, "A") == {"WH-A": (2, 1)}
    assert await rows(db, "SELECT order_id, state FROM stock_holds ORDER BY order_id") == [
        ("o-1", "RELEASED"),
        ("o-2", "HELD"),
    ]
