"""Checkouts in the store: one order per shop in one transaction, refused whole, and exact
when many buyers race for the last units of two shops (SQLite, PostgreSQL)."""

import asyncio

import pytest

from domain.errors import DomainError, ErrorCode
from domain.messages import CheckoutInput
from domain.models import LineRequest
from store import checkouts
from store.db import Database
from tests.store.helpers import ADDRESS, T0, add_shop, add_sku, rows, stock_of
from tests.store.test_concurrency_pg import warm_pool


def _input(checkout_id: str, buyer: str, lines: list[tuple[str, int]]) -> CheckoutInput:
    return CheckoutInput(
        checkout_id=checkout_id,
        buyer_id=buyer,
        lines=[LineRequest(sku=s, quantity=q) for s, q in lines],
        address=ADDRESS,
        now=T0,
    )


async def _checkout(
    db: Database, checkout_id: str, buyer: str, lines: list[tuple[str, int]]
) -> checkouts.Checkout:
    return await checkouts.place(
        db, _input(checkout_id, buyer, lines), lambda shop: f"{checkout_id}-{shop}", 20
    )


async def _two_shops(db: Database, units: int) -> None:
    for shop in ("sa", "sb"):
        await add_shop(db, shop)
    await add_sku(db, "A1", shop_id="sa", stock_at={"WH-A": units})
    await add_sku(db, "B1", shop_id="sb", stock_at={"WH-A": units})


async def test_a_checkout_is_one_order_per_shop_or_nothing(db: Database) -> None:
    await _two_shops(db, 2)
    placed = await _checkout(db, "c1", "b1", [("A1", 1), ("B1", 2)])
    assert [(o.id, o.shop_id, o.checkout_id) for o in placed.orders] == [
        ("c1-sa", "sa", "c1"),
        ("c1-sb", "sb", "c1"),
    ]
    again = await _checkout(db, "c1", "b1", [("A1", 1), ("B1", 2)])  # a retry: the same
    assert [o.id for o in again.orders] == ["c1-sa", "c1-sb"]

    with pytest.raises(DomainError) as refused:  # B1 has nothing left: A1 is not placed
        await _checkout(db, "c2", "b1", [("A1", 1), ("B1", 1)])
    assert refused.value.code is ErrorCode.OUT_OF_STOCK
    assert [(x["sku"], x["shop_id"]) for x in refused.value.details["lines"]] == [("B1", "sb")]
    assert await stock_of(db, "A1") == {"WH-A": (2, 1)}
    assert await rows(db, "SELECT id FROM orders ORDER BY id") == [("c1-sa",), ("c1-sb",)]
    assert await rows(db, "SELECT id FROM checkouts") == [("c1",)]


@pytest.mark.postgres
async def test_buyers_racing_for_the_last_units_of_two_shops_place_whole_checkouts(
    pg_db: Database,
) -> None:
    """Ten buyers at once each want one unit of each shop's SKU, of which there are three:
    exactly three checkouts are placed, whole; the seven others leave no order and no lock."""
    await _two_shops(pg_db, 3)
    await warm_pool(pg_db, 10)  # no contender late because it was still connecting
    results = await asyncio.gather(
        *(_checkout(pg_db, f"c{n}", f"b{n}", [("A1", 1), ("B1", 1)]) for n in range(10)),
        return_exceptions=True,
    )
    placed = [r for r in results if isinstance(r, checkouts.Checkout)]
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(placed) == 3 and len(refused) == 7, results
    assert {r.code for r in refused} == {ErrorCode.OUT_OF_STOCK}
    assert all(len(c.orders) == 2 for c in placed)
    assert await stock_of(pg_db, "A1") == {"WH-A": (3, 3)}
    assert await stock_of(pg_db, "B1") == {"WH-A": (3, 3)}
    ordered = await rows(pg_db, "SELECT checkout_id, count(*) FROM orders GROUP BY checkout_id")
    assert sorted(ordered) == sorted((c.id, 2) for c in placed)
