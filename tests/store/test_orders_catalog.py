"""orders.save/page, catalog.put_stock and the CHECK constraints."""

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from domain.errors import DomainError, ErrorCode
from domain.models import (
    Actor,
    CloseReason,
    OrderEvent,
    OrderState,
    OrderStatus,
    SubStatus,
)
from domain.order import close
from store import catalog, orders
from store.db import Database
from store.orders import OrderFilter
from tests.store.helpers import T0, add_sku, dump, flagged, pay, place, rows, stock_of

# ---- orders.save --------------------------------------------------------------------------


async def save(db: Database, state: OrderState, event: OrderEvent, key: str = "") -> None:
    async with db.transaction() as session:
        await orders.save(session, state, event, key)


async def test_save_is_idempotent_on_version(db: Database) -> None:
    await add_sku(db, "A")
    v1 = await place(db, "o-1", [("A", 1)])
    async with db.transaction() as session:
        placed_event = (await orders.events(session, "o-1"))[0]
    cancel = close(v1, CloseReason.BUYER_CANCELLED, T0 + timedelta(hours=1), Actor(kind="buyer"))
    v2 = cancel.state
    assert v2.version == 2

    await save(db, v2, cancel.event)
    after_v2 = await dump(db)
    await save(db, v2, cancel.event)  # a retried write
    await save(db, v1, placed_event)  # a late, older write

    assert await dump(db) == after_v2
    assert await rows(db, "SELECT status, close_reason, version FROM orders") == [
        ("CLOSED", "BUYER_CANCELLED", 2)
    ]
    async with db.transaction() as session:
        assert await orders.get(session, "o-1") == v2
        assert [(e.version, e.type) for e in await orders.events(session, "o-1")] == [
            (1, "PLACED"),
            (2, "CLOSED"),
        ]


async def test_events_are_appended_once_per_key(db: Database) -> None:
    await add_sku(db, "A")
    state = await place(db, "o-1", [("A", 1)])
    note = OrderEvent(
        order_id="o-1", version=1, type="PAYMENT_ANOMALY", actor=Actor(kind="admin", id="a1"), at=T0
    )
    for _ in range(2):
        async with db.transaction() as session:
            await orders.append_event(session, note, "note:1")
            await orders.append_event(session, note, "note:2")
    await save(db, state, note, key="note:1")  # same key through save: still once

    assert await rows(db, "SELECT event_key, type FROM order_events ORDER BY id") == [
        ("1:PLACED", "PLACED"),
        ("note:1", "PAYMENT_ANOMALY"),
        ("note:2", "PAYMENT_ANOMALY"),
    ]


# ---- orders.page --------------------------------------------------------------------------


async def all_pages(
    db: Database, limit: int, buyer_id: str | None = None, status: OrderStatus | None = None
) -> list[list[str]]:
    return await filtered_pages(db, limit, OrderFilter(buyer_id=buyer_id, status=status))


async def filtered_pages(db: Database, limit: int, where: OrderFilter) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        async with db.transaction() as session:
            found, cursor = await orders.page(session, where, limit=limit, cursor=cursor)
        pages.append([o.id for o in found])
        if cursor is None:
            return pages
        assert len(pages) < 20, "pagination does not end"


async def test_page_is_newest_first_keyset_paginated_and_filtered(db: Database) -> None:
    await add_sku(db, "A", stock_at={"WH-A": 100})
    placed = [  # (order id, buyer, minutes after T0); o-c and o-d share a timestamp
        ("o-a", "b1", 0),
        ("o-b", "b2", 1),
        ("o-c", "b1", 2),
        ("o-d", "b1", 2),
        ("o-e", "b2", 3),
        ("o-f", "b1", 4),
        ("o-g", "b1", 5),
    ]
    states = {}
    for oid, buyer, minutes in placed:
        states[oid] = await place(
            db, oid, [("A", 1)], buyer=buyer, now=T0 + timedelta(minutes=minutes)
        )
    for oid in ("o-c", "o-g"):
        change = close(
            states[oid], CloseReason.SELLER_CLOSED, T0 + timedelta(hours=1), Actor(kind="merchant")
        )
        await save(db, change.state, change.event)

    assert await all_pages(db, 3) == [
        ["o-g", "o-f", "o-e"],
        ["o-d", "o-c", "o-b"],
        ["o-a"],
    ]
    assert await all_pages(db, 7) == [["o-g", "o-f", "o-e", "o-d", "o-c", "o-b", "o-a"]]
    assert await all_pages(db, 2, buyer_id="b1") == [["o-g", "o-f"], ["o-d", "o-c"], ["o-a"]]
    assert await all_pages(db, 2, status=OrderStatus.CLOSED) == [["o-g", "o-c"]]
    assert await all_pages(db, 1, buyer_id="b1", status=OrderStatus.PENDING_PAYMENT) == [
        ["o-f"],
        ["o-d"],
        ["o-a"],
    ]
    assert await all_pages(db, 5, buyer_id="nobody") == [[]]
    async with db.transaction() as session:
        first, _ = await orders.page(session, OrderFilter(buyer_id="b2"), limit=5, cursor=None)
    assert first == [states["o-e"], states["o-b"]]


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        base64.urlsafe_b64encode(b"[1, 2, 3]").decode(),
        base64.urlsafe_b64encode(json.dumps(["yesterday", "o-1"]).encode()).decode(),
        base64.urlsafe_b64encode(b"{}").decode(),
        # a time that cannot be expressed in UTC
        base64.urlsafe_b64encode(json.dumps(["0001-01-01T00:00:00+08:00", "o"]).encode()).decode(),
    ],
)
async def test_invalid_cursor_is_a_value_error(sqlite_db: Database, cursor: str) -> None:
    async with sqlite_db.transaction() as session:
        with pytest.raises(ValueError, match="invalid cursor"):
            await orders.page(session, OrderFilter(), limit=5, cursor=cursor)


async def test_invalid_cursor_on_both_databases(db: Database) -> None:
    async with db.transaction() as session:
        with pytest.raises(ValueError, match="invalid cursor"):
            await orders.page(session, OrderFilter(buyer_id="b1"), limit=5, cursor="%%%")


# ---- catalog.put_stock --------------------------------------------------------------------


async def test_put_stock_is_refused_below_the_locked_quantity(db: Database) -> None:
    await add_sku(db, "A", stock_at={"WH-A": 5, "WH-B": 1})
    await place(db, "o-1", [("A", 3)])
    assert await stock_of(db, "A") == {"WH-A": (5, 3), "WH-B": (1, 0)}
    before = await dump(db)

    with pytest.raises(DomainError, match="3 units are locked by open orders") as err:
        async with db.transaction() as session:
            await catalog.put_stock(session, "A", "WH-A", 2)
    assert err.value.code is ErrorCode.INVALID_TRANSITION
    assert err.value.details == {"locked": 3}
    assert await dump(db) == before

    with pytest.raises(DomainError, match="unknown SKU NOPE") as err:
        async with db.transaction() as session:
            await catalog.put_stock(session, "NOPE", "WH-A", 2)
    assert err.value.code is ErrorCode.NOT_FOUND
    assert await dump(db) == before

    async with db.transaction() as session:
        await catalog.put_stock(session, "A", "WH-A", 3)  # down to exactly what is locked
        await catalog.put_stock(session, "A", "WH-C", 7)  # a new location
    assert await stock_of(db, "A") == {"WH-A": (3, 3), "WH-B": (1, 0), "WH-C": (7, 0)}


# ---- the CHECK constraints ----------------------------------------------------------------


BREAKING_UPDATES = [
    "UPDATE stock SET locked = on_hand + 1",
    "UPDATE stock SET on_hand = -1, locked = 0",
    "UPDATE stock SET on_hand = -1",
    "UPDATE stock SET locked = -1",
    "UPDATE stock SET on_hand = locked - 1",
]


async def test_stock_check_constraints(db: Database) -> None:
    """on_hand >= locked >= 0 is enforced by the database itself, on both engines."""
    await add_sku(db, "A", stock_at={"WH-A": 5})
    await place(db, "o-1", [("A", 2)])
    before = await stock_of(db, "A")
    assert before == {"WH-A": (5, 2)}

    for update in BREAKING_UPDATES:
        with pytest.raises(IntegrityError, match=r"(?i)check"):
            async with db.transaction() as session:
                await session.execute(text(update + " WHERE sku = 'A'"))
        assert await stock_of(db, "A") == before, update

    async with db.transaction() as session:  # the boundary itself is allowed
        await session.execute(text("UPDATE stock SET on_hand = locked WHERE sku = 'A'"))
    assert await stock_of(db, "A") == {"WH-A": (2, 2)}


async def test_the_operators_filters_on_both_databases(db: Database) -> None:
    """Sub-status, close reason, payment time, a failed refund, an open case and "paid more
    than N hours ago and not shipped", each kept in its column when the snapshot is saved."""
    await add_sku(db, "A", stock_at={"WH-A": 100})
    unpaid = await place(db, "o-unpaid", [("A", 1)], now=T0)
    early = await pay(db, await place(db, "o-early", [("A", 1)], now=T0), now=T0)
    late = await pay(
        db, await place(db, "o-late", [("A", 1)], now=T0), now=T0 + timedelta(hours=30)
    )
    closed = close(
        unpaid, CloseReason.SELLER_CLOSED, T0 + timedelta(hours=1), Actor(kind="merchant")
    )
    await save(db, closed.state, closed.event)
    marked = flagged(late, late.version + 1)
    note = OrderEvent(
        order_id="o-late",
        version=marked.version,
        type="PAYMENT_ANOMALY",
        actor=Actor(kind="system"),
        at=T0,
    )
    await save(db, marked, note)

    async def ids(**where: Any) -> list[str]:
        return (await filtered_pages(db, 10, OrderFilter(**where)))[0]

    assert await ids(sub_status=SubStatus.REFUNDING) == ["o-late"]
    assert await ids(sub_status=SubStatus.PARTIALLY_SHIPPED) == []
    assert await ids(close_reason=CloseReason.SELLER_CLOSED) == ["o-unpaid"]
    assert await ids(refund_failed=True) == ["o-late"]
    assert await ids(refund_failed=False) == ["o-unpaid", "o-early"]  # newest, then id
    assert await ids(has_open_case=True) == ["o-late"]
    assert await ids(paid_from=T0, paid_to=T0 + timedelta(hours=1)) == ["o-early"]
    assert await ids(paid_from=T0 + timedelta(hours=1)) == ["o-late"]
    assert await ids(placed_from=T0, placed_to=T0) == []  # to is exclusive
    assert await ids(unshipped_paid_before=T0 + timedelta(hours=2)) == ["o-early"]
    assert await ids(unshipped_paid_before=T0 + timedelta(days=2)) == ["o-late", "o-early"]
    assert early.status is OrderStatus.PENDING_SHIPMENT
