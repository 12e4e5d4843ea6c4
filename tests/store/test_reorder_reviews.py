"""Buy again and reviews in the store, on SQLite and PostgreSQL: a reorder places what can be
bought under the same locks and limits as any placement and records the rest; nothing at all
leaves nothing behind; reviews are unique per order and SKU, even when two race."""

import asyncio
import json
from datetime import timedelta

import pytest

from domain.errors import DomainError, ErrorCode
from domain.models import Payment, PaymentChannel, Reason, Refund, Unavailable
from store import payments, reviews
from store.db import Database
from tests.store.helpers import (
    T0,
    add_sku,
    dump,
    holds_of,
    pay,
    payment_input,
    place,
    rows,
    stock_of,
)


async def test_a_reorder_takes_what_is_left_and_records_the_rest(db: Database) -> None:
    await add_sku(db, "TEA", price=5_900, stock_at={"WH-A": 1, "WH-B": 1})
    await add_sku(db, "MUG", price=2_500, stock_at={"WH-A": 0})
    await add_sku(db, "OLD", listed=False)
    await add_sku(db, "CAP", price=100, stock_at={"WH-A": 50}, limit=3, window_days=30)
    await place(db, "o-0", [("CAP", 2)])  # the buyer already holds 2 of 3 caps

    state = await place(
        db, "o-1", [("TEA", 3), ("MUG", 1), ("OLD", 1), ("CAP", 2), ("GONE", 1)], reorder_of="o-old"
    )
    assert [(x.sku, x.quantity, x.unit_price_cents) for x in state.lines] == [
        ("TEA", 2, 5_900),
        ("CAP", 1, 100),
    ]
    assert state.reorder_of == "o-old"
    assert state.unavailable == [
        Unavailable(sku="CAP", reason=Reason.LIMIT_EXCEEDED, requested=2, placed=1),
        Unavailable(sku="GONE", reason=Reason.UNKNOWN_SKU, requested=1),
        Unavailable(sku="MUG", reason=Reason.OUT_OF_STOCK, requested=1),
        Unavailable(sku="OLD", reason=Reason.DELISTED, requested=1),
        Unavailable(sku="TEA", reason=Reason.OUT_OF_STOCK, requested=3, placed=2),
    ]
    assert await stock_of(db, "TEA") == {"WH-A": (1, 1), "WH-B": (1, 1)}  # locked across both
    bought = "SELECT sku, quantity FROM purchase_records WHERE order_id = 'o-1' ORDER BY sku"
    assert await rows(db, bought) == [("CAP", 1), ("TEA", 2)]
    [(kind, data)] = await rows(db, "SELECT type, data FROM order_events WHERE order_id = 'o-1'")
    data = json.loads(data) if isinstance(data, str) else data
    assert (kind, data["reorder_of"], len(data["unavailable"])) == ("PLACED", "o-old", 5)


async def test_a_reorder_of_which_nothing_can_be_bought_leaves_nothing_behind(
    db: Database,
) -> None:
    await add_sku(db, "MUG", stock_at={"WH-A": 0})
    await add_sku(db, "OLD", listed=False)
    await add_sku(db, "CAP", stock_at={"WH-A": 5}, limit=1)
    await place(db, "o-0", [("CAP", 1)])
    before = await dump(db)
    with pytest.raises(DomainError) as err:
        await place(db, "o-1", [("MUG", 1), ("OLD", 2), ("CAP", 1)], reorder_of="o-old")
    assert err.value.code is ErrorCode.NOTHING_AVAILABLE
    assert [(u["sku"], u["reason"]) for u in err.value.details["unavailable"]] == [
        ("CAP", "LIMIT_EXCEEDED"),
        ("MUG", "OUT_OF_STOCK"),
        ("OLD", "DELISTED"),
    ]
    assert await dump(db) == before  # no order, no lock, no purchase record
    assert await holds_of(db, "o-1") == {}


async def test_a_plain_placement_still_refuses_the_whole_cart(db: Database) -> None:
    await add_sku(db, "TEA", stock_at={"WH-A": 1})
    await add_sku(db, "MUG", stock_at={"WH-A": 5})
    before = await dump(db)
    with pytest.raises(DomainError) as err:
        await place(db, "o-1", [("TEA", 2), ("MUG", 1)])
    assert err.value.code is ErrorCode.OUT_OF_STOCK
    assert await dump(db) == before


async def add_review(db: Database, order_id: str, rating: int, minutes: int = 0) -> bool:
    async with db.transaction() as session:
        return await reviews.add(
            session,
            order_id=order_id,
            buyer_id="buyer-1",
            skus=["TEA", "MUG"],
            rating=rating,
            text=f"review of {order_id}",
            at=T0 + timedelta(minutes=minutes),
        )


async def test_reviews_are_one_per_order_and_sku_and_listed_newest_first(db: Database) -> None:
    assert await add_review(db, "o-1", 5) is True
    assert await add_review(db, "o-1", 1) is False  # once: the first stays
    assert await add_review(db, "o-2", 2, minutes=1) is True
    assert await add_review(db, "o-3", 4, minutes=2) is True
    async with db.sessions() as session:
        assert await reviews.summary(session, "TEA") == (3.67, 3)  # (5 + 2 + 4) / 3, rounded
        assert await reviews.summary(session, "NONE") == (None, 0)
        first, cursor = await reviews.page(session, "MUG", 2, None)
        rest, end = await reviews.page(session, "MUG", 2, cursor)
    assert [(r.order_id, r.rating) for r in first] == [("o-3", 4), ("o-2", 2)]
    assert [(r.order_id, r.rating) for r in rest] == [("o-1", 5)] and end is None
    with pytest.raises(ValueError, match="invalid cursor"):
        async with db.sessions() as session:
            await reviews.page(session, "MUG", 2, "garbage")


@pytest.mark.postgres
async def test_two_concurrent_reviews_of_one_order_one_wins(pg_db: Database) -> None:
    for _ in range(5):
        order_id = f"o-{_}"
        results = await asyncio.gather(
            add_review(pg_db, order_id, 5), add_review(pg_db, order_id, 1)
        )
        assert sorted(results) == [False, True]
        ratings = await rows(
            pg_db, "SELECT DISTINCT rating FROM reviews WHERE order_id = :o", o=order_id
        )
        assert len(ratings) == 1  # every SKU row from the same winner
    assert await rows(pg_db, "SELECT count(*) FROM reviews") == [(10,)]


async def test_a_transaction_of_one_order_cannot_settle_or_refund_another(db: Database) -> None:
    await add_sku(db, "TEA", stock_at={"WH-A": 5})
    x = await pay(db, await place(db, "o-x", [("TEA", 1)]), txn_id="T-1")
    y = await place(db, "o-y", [("TEA", 1)])
    before = await dump(db)
    with pytest.raises(DomainError) as err:
        async with db.transaction() as session:
            await payments.accept_payment(session, payment_input(y, txn_id="T-1"))
    assert (err.value.code, err.value.details) == (
        ErrorCode.TXN_REUSED,
        {"txn_id": "T-1", "order_id": "o-x"},
    )
    assert x.payment is not None
    payment = Payment(channel=PaymentChannel.ALIPAY, txn_id="T-1", amount_cents=1, paid_at=T0)
    refund = Refund(
        id="T-1-R",
        txn_id="T-1",
        channel=PaymentChannel.ALIPAY,
        amount_cents=1,
        reason="ORDER_CLOSED",
        created_at=T0,
    )
    with pytest.raises(DomainError, match="already settled order o-x"):
        async with db.transaction() as session:
            await payments.record_refund(session, "o-y", payment, refund)
    assert await dump(db) == before
