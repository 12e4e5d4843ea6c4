"""store.stock.release and store.payments.record_refund, on SQLite and PostgreSQL."""

from datetime import timedelta

import pytest

from domain.errors import DomainError, ErrorCode
from domain.models import Actor, OrderEvent, OrderState, Payment, PaymentChannel, Refund
from store import payments
from store.db import Database
from tests.store.helpers import (
    DEDUCT,
    LOCK,
    T0,
    add_sku,
    dump,
    holds_of,
    pay,
    place,
    release,
    rows,
    snapshot,
    stock_of,
    top_up,
    wallet_of,
)

# ---- release ------------------------------------------------------------------------------


async def test_release_returns_locks_and_ends_limit_counts(db: Database) -> None:
    await add_sku(db, "A", policy=LOCK, limit=5, window_days=30, stock_at={"WH-A": 3, "WH-B": 2})
    await add_sku(db, "D", policy=DEDUCT, stock_at={"WH-A": 4})
    await place(db, "o-1", [("A", 4), ("D", 1)])
    await place(db, "o-2", [("A", 1)], buyer="other")  # untouched by o-1's release
    assert await stock_of(db, "A") == {"WH-A": (3, 3), "WH-B": (2, 2)}

    await release(db, "o-1")

    assert await holds_of(db, "o-1") == {
        ("A", "WH-A"): (3, "RELEASED"),
        ("A", "WH-B"): (1, "RELEASED"),
    }
    assert await holds_of(db, "o-2") == {("A", "WH-B"): (1, "HELD")}
    assert await stock_of(db, "A") == {"WH-A": (3, 0), "WH-B": (2, 1)}
    assert await stock_of(db, "D") == {"WH-A": (4, 0)}
    assert await rows(
        db, "SELECT order_id, sku, active FROM purchase_records ORDER BY order_id, sku"
    ) == [("o-1", "A", False), ("o-1", "D", False), ("o-2", "A", True)]

    after_first = await dump(db)
    await release(db, "o-1")
    assert await dump(db) == after_first  # twice = once


async def test_release_of_an_unknown_order_changes_nothing(db: Database) -> None:
    await add_sku(db, "A", stock_at={"WH-A": 3})
    await place(db, "o-1", [("A", 1)])
    before = await dump(db)
    await release(db, "nope")
    assert await dump(db) == before


async def test_release_after_payment_keeps_the_deduction(db: Database) -> None:
    """Only HELD units go back: a paid order's deducted stock stays sold."""
    await add_sku(db, "A", stock_at={"WH-A": 3})
    state = await place(db, "o-1", [("A", 2)])
    await pay(db, state)
    await release(db, "o-1")
    assert await stock_of(db, "A") == {"WH-A": (1, 0)}
    assert await holds_of(db, "o-1") == {("A", "WH-A"): (2, "DEDUCTED")}


# ---- refunds ledger -----------------------------------------------------------------------


def refund_of(
    payment: Payment, refund_id: str, amount: int, *, freight: int = 0, reason: str = "RETURN"
) -> Refund:
    return Refund(
        id=refund_id,
        txn_id=payment.txn_id,
        channel=payment.channel,
        amount_cents=amount,
        goods_cents=amount - freight,
        freight_cents=freight,
        borne_by="merchant",
        reason=reason,
        created_at=T0 + timedelta(days=1),
    )


async def record(
    db: Database, order_id: str, payment: Payment, refund: Refund, note: OrderEvent | None = None
) -> bool:
    async with db.transaction() as session:
        return await payments.record_refund(session, order_id, payment, refund, note)


async def paid_order(db: Database, channel: PaymentChannel) -> OrderState:
    await add_sku(db, "A", price=1_500, stock_at={"WH-A": 10})
    state = await place(db, "o-1", [("A", 2)])
    await top_up(db, "buyer-1", balance=10_000, credit=10_000)
    paid = await pay(db, state, channel=channel)
    assert paid.payment is not None
    return paid


async def test_refund_is_idempotent_on_refund_id(db: Database) -> None:
    paid = await paid_order(db, PaymentChannel.ALIPAY)
    assert paid.payment is not None
    refund = refund_of(paid.payment, "r-1", 1_000, freight=0)
    note = OrderEvent(
        order_id="o-1",
        version=paid.version,
        type="REFUNDED",
        actor=Actor(kind="merchant", id="m1"),
        at=T0 + timedelta(days=1),
        data={"refund_id": "r-1"},
    )

    assert await record(db, "o-1", paid.payment, refund, note) is True
    after_first = await dump(db)
    assert await record(db, "o-1", paid.payment, refund, note) is False

    assert await dump(db) == after_first
    assert await rows(
        db,
        "SELECT id, order_id, txn_id, channel, amount_cents, goods_cents, freight_cents,"
        " borne_by, reason, status FROM refunds",
    ) == [
        ("r-1", "o-1", "alipay-o-1", "alipay", 1_000, 1_000, 0, "merchant", "RETURN", "SUCCEEDED")
    ]
    # the stored order is the record once its workflow has ended: the refund is on it too
    assert await rows(db, "SELECT event_key, type FROM order_events WHERE type = 'REFUNDED'") == [
        (f"{paid.version + 1}:REFUNDED", "REFUNDED")
    ]
    stored = await snapshot(db, "o-1")
    assert (stored.version, stored.refunded_cents) == (paid.version + 1, 1_000)
    assert [r.id for r in stored.refunds] == ["r-1"]
    # the payment it returns was already recorded: the ledger keeps it as it was
    assert await rows(db, "SELECT txn_id, status FROM payments") == [("alipay-o-1", "CAPTURED")]
    # a second, different refund of the same payment is recorded too
    assert await record(db, "o-1", paid.payment, refund_of(paid.payment, "r-2", 500)) is True
    assert await rows(db, "SELECT id FROM refunds ORDER BY id") == [("r-1",), ("r-2",)]


async def test_balance_refund_credits_the_balance_once(db: Database) -> None:
    paid = await paid_order(db, PaymentChannel.BALANCE)
    assert paid.payment is not None
    assert await wallet_of(db, "buyer-1") == (7_000, 10_000, 0)

    await record(db, "o-1", paid.payment, refund_of(paid.payment, "r-1", 1_200, freight=200))
    await record(db, "o-1", paid.payment, refund_of(paid.payment, "r-1", 1_200, freight=200))

    assert await wallet_of(db, "buyer-1") == (8_200, 10_000, 0)
    assert await rows(db, "SELECT goods_cents, freight_cents FROM refunds") == [(1_000, 200)]


async def test_credit_refund_gives_the_credit_line_back_once(db: Database) -> None:
    paid = await paid_order(db, PaymentChannel.CREDIT)
    assert paid.payment is not None
    assert await wallet_of(db, "buyer-1") == (10_000, 10_000, 3_000)

    await record(db, "o-1", paid.payment, refund_of(paid.payment, "r-1", 3_000))
    await record(db, "o-1", paid.payment, refund_of(paid.payment, "r-1", 3_000))

    assert await wallet_of(db, "buyer-1") == (10_000, 10_000, 0)


async def test_wallet_refund_of_an_unknown_order_is_refused(db: Database) -> None:
    await add_sku(db, "A")
    before = await dump(db)
    payment = Payment(channel=PaymentChannel.BALANCE, txn_id="t-x", amount_cents=10, paid_at=T0)
    with pytest.raises(DomainError, match="no order o-ghost") as err:
        await record(db, "o-ghost", payment, refund_of(payment, "r-x", 10))
    assert err.value.code is ErrorCode.NOT_FOUND
    assert await dump(db) == before


async def test_gateway_refund_of_an_unrecorded_payment_records_it_refunded(db: Database) -> None:
    """A gateway payment that was never accepted (e.g. for a rejected placement)."""
    payment = Payment(channel=PaymentChannel.WECHAT, txn_id="wx-9", amount_cents=4_321, paid_at=T0)
    refund = refund_of(payment, "wx-9-R", 4_321, reason="PLACEMENT_REJECTED")

    assert await record(db, "o-never", payment, refund) is True
    assert await record(db, "o-never", payment, refund) is False

    assert await rows(
        db, "SELECT txn_id, order_id, channel, amount_cents, status FROM payments"
    ) == [("wx-9", "o-never", "wechat", 4_321, "REFUNDED")]
    assert await rows(db, "SELECT id, amount_cents, reason FROM refunds") == [
        ("wx-9-R", 4_321, "PLACEMENT_REJECTED")
    ]
    assert await rows(db, "SELECT count(*) FROM wallets") == [(0,)]
    assert await rows(db, "SELECT count(*) FROM orders") == [(0,)]
