"""Purchase limits (限购) at placement, on SQLite and PostgreSQL."""

from datetime import timedelta

import pytest

from domain.errors import DomainError, ErrorCode
from store.db import Database
from tests.store.helpers import LOCK, T0, add_sku, dump, pay, place, release, rows


async def assert_refused(
    db: Database, order_id: str, lines: list[tuple[str, int]], **kw: object
) -> None:
    """The placement is refused with LIMIT_EXCEEDED and the database is left as it was."""
    before = await dump(db)
    with pytest.raises(DomainError, match=r"limit is \d+ per buyer") as err:
        await place(db, order_id, lines, **kw)
    assert err.value.code is ErrorCode.LIMIT_EXCEEDED
    assert await dump(db) == before


async def test_limit_per_buyer_within_the_window(db: Database) -> None:
    await add_sku(db, "HOT", policy=LOCK, limit=2, window_days=30, stock_at={"WH-A": 100})

    await place(db, "o-1", [("HOT", 1)])
    await place(db, "o-2", [("HOT", 1)], now=T0 + timedelta(days=1))

    before = await dump(db)
    with pytest.raises(
        DomainError,
        match="HOT: limit is 2 per buyer in its window; your orders in it already hold 2",
    ) as err:
        await place(db, "o-3", [("HOT", 1)], now=T0 + timedelta(days=2))
    assert err.value.code is ErrorCode.LIMIT_EXCEEDED
    assert err.value.details == {"sku": "HOT", "limit": 2, "already": 2, "requested": 1}
    assert await dump(db) == before


async def test_one_order_above_the_limit_is_refused(db: Database) -> None:
    await add_sku(db, "HOT", limit=2, window_days=30, stock_at={"WH-A": 100})
    await assert_refused(db, "o-1", [("HOT", 3)])
    await assert_refused(db, "o-2", [("HOT", 1), ("HOT", 2)])  # merged lines count together
    state = await place(db, "o-3", [("HOT", 1), ("HOT", 1)])
    assert [(x.sku, x.quantity) for x in state.lines] == [("HOT", 2)]


async def test_unpaid_and_paid_orders_count(db: Database) -> None:
    await add_sku(db, "HOT", limit=2, window_days=30, stock_at={"WH-A": 100})
    paid = await place(db, "o-paid", [("HOT", 1)])
    await pay(db, paid)
    await place(db, "o-unpaid", [("HOT", 1)])

    await assert_refused(db, "o-3", [("HOT", 1)])


async def test_a_paid_order_alone_counts(db: Database) -> None:
    await add_sku(db, "HOT", limit=1, window_days=30, stock_at={"WH-A": 100})
    paid = await place(db, "o-paid", [("HOT", 1)])
    await pay(db, paid)
    await assert_refused(db, "o-2", [("HOT", 1)])


async def test_closed_orders_do_not_count(db: Database) -> None:
    await add_sku(db, "HOT", limit=2, window_days=30, stock_at={"WH-A": 100})
    await place(db, "o-1", [("HOT", 2)])
    await assert_refused(db, "o-2", [("HOT", 1)])

    await release(db, "o-1")  # closing the unpaid order

    state = await place(db, "o-2", [("HOT", 2)])
    assert state.lines[0].quantity == 2
    assert await rows(db, "SELECT order_id, active FROM purchase_records ORDER BY order_id") == [
        ("o-1", False),
        ("o-2", True),
    ]


async def test_orders_older_than_the_window_do_not_count(db: Database) -> None:
    await add_sku(db, "HOT", limit=2, window_days=30, stock_at={"WH-A": 100})
    await place(db, "o-old", [("HOT", 2)], now=T0 - timedelta(days=70))
    await place(db, "o-recent", [("HOT", 1)], now=T0 - timedelta(days=29))  # o-old is out

    await place(db, "o-now", [("HOT", 1)])  # only o-recent counts: 1 + 1 <= 2
    await assert_refused(db, "o-more", [("HOT", 1)])


async def test_no_window_means_every_order_counts(db: Database) -> None:
    await add_sku(db, "HOT", limit=1, stock_at={"WH-A": 100})
    await place(db, "o-old", [("HOT", 1)], now=T0 - timedelta(days=1_000))
    await assert_refused(db, "o-now", [("HOT", 1)])


async def test_other_buyers_and_other_skus_are_unaffected(db: Database) -> None:
    await add_sku(db, "HOT", limit=1, window_days=7, stock_at={"WH-A": 100})
    await add_sku(db, "COLD", stock_at={"WH-A": 100})
    await place(db, "o-1", [("HOT", 1)], buyer="alice")
    await assert_refused(db, "o-2", [("HOT", 1), ("COLD", 1)], buyer="alice")

    bob = await place(db, "o-3", [("HOT", 1)], buyer="bob")
    alice_cold = await place(db, "o-4", [("COLD", 5)], buyer="alice")

    assert bob.buyer_id == "bob"
    assert alice_cold.lines[0].quantity == 5
    assert await rows(
        db, "SELECT buyer_id, sku, quantity FROM purchase_records ORDER BY order_id"
    ) == [("alice", "HOT", 1), ("bob", "HOT", 1), ("alice", "COLD", 5)]


async def test_limit_is_checked_before_stock(db: Database) -> None:
    """A limited SKU that is also sold out reports the limit, and nothing is written."""
    await add_sku(db, "HOT", limit=1, window_days=7, stock_at={"WH-A": 1})
    await place(db, "o-1", [("HOT", 1)])
    await assert_refused(db, "o-2", [("HOT", 1)])
