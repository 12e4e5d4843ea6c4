"""The order list's search (`q`), its sorts, its total and its CSV export, on both databases."""

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from domain.models import Actor, OrderState
from domain.order import ship
from store import orders
from store.db import Database
from store.migrate import upgrade
from store.orders import SORTS, OrderFilter
from tests.conftest import _pg_exec, _pg_url
from tests.store.helpers import T0, add_sku, pay, place
from tests.unit.test_domain_order import line, placed

MERCHANT = Actor(kind="merchant", id="m-1")


async def _shop(db: Database) -> dict[str, dict[str, object]]:
    """Six orders: ids, buyers, SKUs, totals and payment times chosen to tell searches and
    sorts apart; one shipped with a tracking number."""
    await add_sku(db, "TEA-1", price=500, stock_at={"WH-A": 100})
    await add_sku(db, "TEA-10", price=700, stock_at={"WH-A": 100})
    await add_sku(db, "CUP_2", price=900, stock_at={"WH-A": 100})
    plan = [  # id, buyer, lines, minutes after T0, paid after (minutes) or None
        ("a1b2c3d4e5f60000aaaa", "alice", [("TEA-1", 1)], 0, 30),
        ("a1b2c3ffffff0000bbbb", "alina", [("TEA-10", 2)], 1, None),
        ("c0ffee000000111122cc", "bob", [("CUP_2", 1), ("TEA-1", 3)], 2, 5),
        ("d00d00000000111122dd", "bob", [("CUP_2", 4)], 3, 1),
        ("e1e1e1000000111122ee", "carol%", [("TEA-10", 1)], 4, None),
        ("f2f2f2000000111122ff", "dave", [("CUP_2", 1)], 4, 20),
    ]
    made: dict[str, dict[str, object]] = {}
    for oid, buyer, lines, minutes, paid_after in plan:
        now = T0 + timedelta(minutes=minutes)
        state = await place(db, oid, lines, buyer=buyer, now=now)
        if paid_after is not None:
            state = await pay(db, state, now=now + timedelta(minutes=paid_after))
        made[oid] = {"total": state.total_cents, "created": now, "paid": state.payment}
    state = await _get(db, "c0ffee000000111122cc")
    change = ship(
        state, state.packages[0].id, "SF", "SF1234567890", T0 + timedelta(hours=2), MERCHANT
    )
    async with db.transaction() as session:
        await orders.save(session, change.state, change.event)
    return made


async def _get(db: Database, order_id: str) -> OrderState:
    async with db.sessions() as session:
        got = await orders.get(session, order_id)
    assert got is not None
    return got


async def _ids(
    db: Database, where: OrderFilter, sort: str = "-placed", limit: int = 2
) -> list[str]:
    """Every page of a list, joined: the pages must neither repeat nor skip an order."""
    out: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        async with db.sessions() as session:
            found, cursor = await orders.page(session, where, limit=limit, cursor=cursor, sort=sort)
        out += [o.id for o in found]
        if cursor is None:
            return out
    raise AssertionError("pagination does not end")


async def _count(db: Database, where: OrderFilter) -> int:
    async with db.sessions() as session:
        return await orders.count(session, where)


async def test_one_search_box_finds_ids_buyers_skus_and_tracking_numbers(db: Database) -> None:
    await _shop(db)
    cases = {
        "a1b2c3": ["a1b2c3ffffff0000bbbb", "a1b2c3d4e5f60000aaaa"],  # an id prefix of 6
        "A1B2C3D4": ["a1b2c3d4e5f60000aaaa"],  # any case
        "a1b2c": [],  # 5 characters: too short for an id prefix (and no such buyer)
        "ali": ["a1b2c3ffffff0000bbbb", "a1b2c3d4e5f60000aaaa"],  # buyer prefix: alina, alice
        "bob": ["d00d00000000111122dd", "c0ffee000000111122cc"],
        "carol%": ["e1e1e1000000111122ee"],  # % is a character, not a wildcard
        "car%l": [],
        "%": [],
        "TEA-1": ["c0ffee000000111122cc", "a1b2c3d4e5f60000aaaa"],  # a whole SKU, not TEA-10
        "tea-10": ["e1e1e1000000111122ee", "a1b2c3ffffff0000bbbb"],
        "CUP_2": ["f2f2f2000000111122ff", "d00d00000000111122dd", "c0ffee000000111122cc"],
        "CUP%2": [],  # _ and % match themselves only
        "SF1234567890": ["c0ffee000000111122cc"],
        "sf1234567890": ["c0ffee000000111122cc"],
        "SF123456789": [],  # a tracking number is whole
        "nothing-here": [],
    }
    for q, expected in cases.items():
        assert await _ids(db, OrderFilter(q=q)) == expected, q
        assert await _count(db, OrderFilter(q=q)) == len(expected), q
    # a search narrows with the other filters
    assert await _ids(db, OrderFilter(q="TEA-1", buyer_id="alice")) == ["a1b2c3d4e5f60000aaaa"]
    assert await _count(db, OrderFilter(q="bob", shop_id="elsewhere")) == 0


async def test_every_sort_pages_through_every_order_once_in_order(db: Database) -> None:
    made = await _shop(db)

    def key(oid: str, name: str) -> object:
        facts = made[oid]
        if name == "placed":
            return facts["created"]
        if name == "total":
            return facts["total"]
        paid = facts["paid"]
        return paid.paid_at if paid is not None else datetime(1970, 1, 1, tzinfo=UTC)  # type: ignore[attr-defined]

    for sort in SORTS:
        name, descending = sort.lstrip("-"), sort.startswith("-")
        expected = sorted(made, key=lambda oid: (key(oid, name), oid), reverse=descending)
        for limit in (1, 2, 4, 10):
            assert await _ids(db, OrderFilter(), sort, limit) == expected, (sort, limit)
    assert await _count(db, OrderFilter()) == 6


async def test_a_cursor_of_another_sort_or_a_bad_sort_is_refused(db: Database) -> None:
    await _shop(db)
    async with db.sessions() as session:
        _, by_total = await orders.page(session, OrderFilter(), limit=1, cursor=None, sort="total")
        _, by_placed = await orders.page(session, OrderFilter(), limit=1, cursor=None)
        assert by_total is not None and by_placed is not None
        for sort, cursor in (("-total", by_total), ("paid", by_total), ("total", by_placed)):
            with pytest.raises(ValueError, match="invalid cursor"):
                await orders.page(session, OrderFilter(), limit=1, cursor=cursor, sort=sort)
        with pytest.raises(ValueError, match="sort: one of"):
            await orders.page(session, OrderFilter(), limit=1, cursor=None, sort="price")


async def test_the_export_has_every_matching_order_once_in_batches(db: Database) -> None:
    made = await _shop(db)
    for batch in (1, 4, 1000):
        got = [row async for rows in orders.export_rows(db, OrderFilter(), batch) for row in rows]
        assert [r[0] for r in got] == await _ids(db, OrderFilter(), limit=10)
    by_id = {r[0]: r for r in got}
    paid = by_id["c0ffee000000111122cc"]
    total = made["c0ffee000000111122cc"]["total"]
    assert paid[1:8] == ("default", "bob", "SHIPPED", "", total, total, 0)
    assert paid[8] == "2026-03-01T12:02:00Z" and paid[9] == "2026-03-01T12:07:00Z"
    unpaid = by_id["a1b2c3ffffff0000bbbb"]
    assert unpaid[3:8] == ("PENDING_PAYMENT", "", made["a1b2c3ffffff0000bbbb"]["total"], 0, 0)
    assert unpaid[9] == ""
    only_bob = [
        r[0] async for rows in orders.export_rows(db, OrderFilter(q="bob"), 1) for r in rows
    ]
    assert only_bob == ["d00d00000000111122dd", "c0ffee000000111122cc"]


async def _before_0012(url: str) -> list[tuple[str, str]]:
    """Orders stored before 0012 get their SKUs from their snapshots."""
    await asyncio.to_thread(upgrade, url, "0011")
    engine = create_async_engine(url)
    at = {"at": datetime.now(UTC)}
    try:
        async with engine.begin() as conn:
            for oid, state in (
                ("o-1", placed(line("PEN-1"), line("BOOK-1"), order_id="o-1")),
                ("o-2", placed(line("CARD-1"), order_id="o-2")),
            ):
                await conn.execute(
                    text(
                        "INSERT INTO orders (id, buyer_id, status, total_cents, version, snapshot,"
                        " created_at, updated_at) VALUES (:id, 'b', 'PENDING_PAYMENT', 1, 1,"
                        " :snap, :at, :at)"
                    ),
                    {"id": oid, "snap": json.dumps(state.model_dump(mode="json")), **at},
                )
        await asyncio.to_thread(upgrade, url)
        async with engine.connect() as conn:
            got = await conn.execute(text("SELECT id, skus FROM orders ORDER BY id"))
            return [(r[0], r[1]) for r in got]
    finally:
        await engine.dispose()


async def test_0012_fills_the_skus_of_existing_orders_sqlite(tmp_path: Path) -> None:
    got = await _before_0012(f"sqlite+aiosqlite:///{tmp_path}/m.db")
    assert got == [("o-1", " BOOK-1 PEN-1 "), ("o-2", " CARD-1 ")]


@pytest.mark.postgres
async def test_0012_fills_the_skus_of_existing_orders_postgres() -> None:
    name = f"orders_m_{uuid.uuid4().hex[:10]}"
    await _pg_exec(f"CREATE DATABASE {name}")
    try:
        assert await _before_0012(_pg_url(name)) == [("o-1", " BOOK-1 PEN-1 "), ("o-2", " CARD-1 ")]
    finally:
        await _pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
