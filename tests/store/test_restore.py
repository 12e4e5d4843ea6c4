"""store.stock.restore (an intercepted or returned package's units back on hand) and
store.stock.end_purchases (a closed order stops counting against limits), on both databases."""

from datetime import timedelta

import pytest

from domain.errors import DomainError, ErrorCode
from domain.fulfilment import package_allocations
from domain.models import Allocation, OrderState
from store import stock
from store.db import Database
from tests.store.helpers import (
    DEDUCT,
    LOCK,
    T0,
    add_sku,
    assert_stock_invariant,
    dump,
    holds_of,
    pay,
    place,
    rows,
    stock_of,
)


async def restore(db: Database, order_id: str, allocations: list[Allocation]) -> None:
    async with db.transaction() as session:
        await stock.restore(session, order_id, allocations)


async def end_purchases(db: Database, order_id: str) -> None:
    async with db.transaction() as session:
        await stock.end_purchases(session, order_id)


def package_at(state: OrderState, location: str) -> str:
    return next(p.id for p in state.packages if p.location == location)


async def two_package_order(db: Database) -> OrderState:
    """o-1 paid: A from WH-B (5) and WH-A (1), D from WH-A (2); o-2 paid: A from WH-A (1)."""
    await add_sku(db, "A", policy=LOCK, stock_at={"WH-A": 3, "WH-B": 5})
    await add_sku(db, "D", policy=DEDUCT, stock_at={"WH-A": 4})
    state = await pay(db, await place(db, "o-1", [("A", 6), ("D", 2)]))
    await pay(db, await place(db, "o-2", [("A", 1)], buyer="other"))
    assert await stock_of(db, "A") == {"WH-A": (1, 0), "WH-B": (0, 0)}
    assert await stock_of(db, "D") == {"WH-A": (2, 0)}
    assert await holds_of(db, "o-1") == {
        ("A", "WH-A"): (1, "DEDUCTED"),
        ("A", "WH-B"): (5, "DEDUCTED"),
        ("D", "WH-A"): (2, "DEDUCTED"),
    }
    return state


async def test_restoring_one_package_puts_back_exactly_its_units(db: Database) -> None:
    state = await two_package_order(db)
    allocations = package_allocations(state, [package_at(state, "WH-A")])
    assert sorted((a.sku, a.location, a.quantity) for a in allocations) == [
        ("A", "WH-A", 1),
        ("D", "WH-A", 2),
    ]

    await restore(db, "o-1", allocations)

    assert await stock_of(db, "A") == {"WH-A": (2, 0), "WH-B": (0, 0)}  # WH-B untouched
    assert await stock_of(db, "D") == {"WH-A": (4, 0)}
    assert await holds_of(db, "o-1") == {
        ("A", "WH-A"): (1, "RESTORED"),
        ("A", "WH-B"): (5, "DEDUCTED"),
        ("D", "WH-A"): (2, "RESTORED"),
    }
    assert await holds_of(db, "o-2") == {("A", "WH-A"): (1, "DEDUCTED")}
    await assert_stock_invariant(db)

    after_first = await dump(db)
    await restore(db, "o-1", allocations)
    assert await dump(db) == after_first  # twice = once


async def test_restoring_the_other_package_leaves_the_first_location_alone(db: Database) -> None:
    state = await two_package_order(db)
    await restore(db, "o-1", package_allocations(state, [package_at(state, "WH-B")]))
    assert await stock_of(db, "A") == {"WH-A": (1, 0), "WH-B": (5, 0)}
    assert await stock_of(db, "D") == {"WH-A": (2, 0)}
    assert await holds_of(db, "o-1") == {
        ("A", "WH-A"): (1, "DEDUCTED"),
        ("A", "WH-B"): (5, "RESTORED"),
        ("D", "WH-A"): (2, "DEDUCTED"),
    }


async def test_restoring_for_another_order_touches_nothing_of_this_one(db: Database) -> None:
    state = await two_package_order(db)
    before = await dump(db)
    await restore(db, "o-3", package_allocations(state, [p.id for p in state.packages]))
    assert await dump(db) == before


async def test_restoring_an_unpaid_orders_allocations_changes_nothing(db: Database) -> None:
    await add_sku(db, "A", policy=LOCK, stock_at={"WH-A": 3, "WH-B": 5})
    state = await place(db, "o-1", [("A", 6)])
    assert await holds_of(db, "o-1") == {("A", "WH-A"): (1, "HELD"), ("A", "WH-B"): (5, "HELD")}
    assert len(state.allocations) == 2
    before = await dump(db)

    await restore(db, "o-1", state.allocations)

    assert await dump(db) == before
    assert await stock_of(db, "A") == {"WH-A": (3, 1), "WH-B": (5, 5)}


async def test_ending_a_paid_orders_purchases_frees_the_buyers_limit(db: Database) -> None:
    await add_sku(db, "HOT", policy=LOCK, limit=3, window_days=30, stock_at={"WH-A": 100})
    await pay(db, await place(db, "o-paid", [("HOT", 2)]))
    await place(db, "o-open", [("HOT", 1)], now=T0 + timedelta(minutes=1))
    with pytest.raises(DomainError, match="HOT: limit is 3 per buyer") as err:
        await place(db, "o-new", [("HOT", 2)], now=T0 + timedelta(minutes=2))
    assert err.value.code is ErrorCode.LIMIT_EXCEEDED

    await end_purchases(db, "o-paid")

    state = await place(db, "o-new", [("HOT", 2)], now=T0 + timedelta(minutes=3))
    assert state.lines[0].quantity == 2
    assert await rows(db, "SELECT order_id, active FROM purchase_records ORDER BY order_id") == [
        ("o-new", True),
        ("o-open", True),
        ("o-paid", False),
    ]
    with pytest.raises(
        DomainError, match="your orders in it already hold 3"
    ):  # o-open and o-new count
        await place(db, "o-more", [("HOT", 1)], now=T0 + timedelta(minutes=4))
