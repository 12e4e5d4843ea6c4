"""store.payments.accept_payment on SQLite and PostgreSQL: stock, wallets, idempotency."""

import pytest

from domain.checkout import split
from domain.errors import DomainError, ErrorCode
from domain.messages import PaymentNotice
from domain.models import (
    Actor,
    EventType,
    OrderEvent,
    OrderStatus,
    Payment,
    PaymentChannel,
    Refund,
    RefundStatus,
)
from domain.stock import InsufficientStock
from store import orders, payments, stock
from store.db import Database
from tests.store.helpers import (
    DEDUCT,
    LOCK,
    T0,
    add_sku,
    dump,
    holds_of,
    pay,
    payment_input,
    place,
    rows,
    stock_of,
    top_up,
    wallet_of,
)


def packed(state: object) -> list[tuple[str, list[tuple[str, int]]]]:
    """[(location, [(sku, quantity)])] of the order's packages, sorted."""
    return sorted(
        (p.location, sorted((pl.sku, pl.quantity) for pl in p.lines))
        for p in state.packages  # type: ignore[attr-defined]
    )


def allocated(state: object) -> list[tuple[str, list[tuple[str, int]]]]:
    """The order's allocations grouped like packages."""
    by_location: dict[str, list[tuple[str, int]]] = {}
    for a in state.allocations:  # type: ignore[attr-defined]
        by_location.setdefault(a.location, []).append((a.sku, a.quantity))
    return sorted((loc, sorted(lines)) for loc, lines in by_location.items())


async def test_lock_on_order_holds_become_deductions(db: Database) -> None:
    await add_sku(db, "A", price=100, policy=LOCK, stock_at={"WH-A": 4, "WH-B": 3})
    state = await place(db, "o-1", [("A", 5)])
    assert await stock_of(db, "A") == {"WH-A": (4, 4), "WH-B": (3, 1)}

    paid = await pay(db, state)

    assert await stock_of(db, "A") == {"WH-A": (0, 0), "WH-B": (2, 0)}
    assert await holds_of(db, "o-1") == {
        ("A", "WH-A"): (4, "DEDUCTED"),
        ("A", "WH-B"): (1, "DEDUCTED"),
    }
    assert paid.status is OrderStatus.PENDING_SHIPMENT
    assert paid.payment is not None and paid.payment.txn_id == "alipay-o-1"
    assert paid.paid_cents == 500
    assert paid.version == 2
    assert packed(paid) == [("WH-A", [("A", 4)]), ("WH-B", [("A", 1)])]
    assert packed(paid) == allocated(paid)
    assert sum(p.goods_cents for p in paid.packages) == paid.goods_cents
    assert await rows(
        db, "SELECT txn_id, order_id, channel, amount_cents, status FROM payments"
    ) == [("alipay-o-1", "o-1", "alipay", 500, "CAPTURED")]
    assert await rows(db, "SELECT status, version FROM orders") == [("PENDING_SHIPMENT", 2)]
    assert await rows(db, "SELECT type FROM order_events ORDER BY id") == [("PLACED",), ("PAID",)]
    assert await rows(db, "SELECT package_id, order_id FROM package_index ORDER BY 1") == [
        (p.id, "o-1") for p in sorted(paid.packages, key=lambda p: p.id)
    ]


async def test_deduct_on_payment_deducts_now_across_locations(db: Database) -> None:
    await add_sku(db, "D", price=300, policy=DEDUCT, stock_at={"WH-A": 2, "WH-B": 3})
    state = await place(db, "o-1", [("D", 4)])
    assert await stock_of(db, "D") == {"WH-A": (2, 0), "WH-B": (3, 0)}

    paid = await pay(db, state)

    assert await stock_of(db, "D") == {"WH-A": (1, 0), "WH-B": (0, 0)}  # fullest (B) first
    assert await holds_of(db, "o-1") == {
        ("D", "WH-A"): (1, "DEDUCTED"),
        ("D", "WH-B"): (3, "DEDUCTED"),
    }
    assert packed(paid) == [("WH-A", [("D", 1)]), ("WH-B", [("D", 3)])]
    assert packed(paid) == allocated(paid)


async def test_mixed_order_packages_match_allocations(db: Database) -> None:
    await add_sku(db, "L", price=1_000, policy=LOCK, stock_at={"WH-A": 2, "WH-B": 5})
    await add_sku(db, "D", price=10, policy=DEDUCT, stock_at={"WH-A": 9})
    state = await place(db, "o-1", [("L", 6), ("D", 2)])

    paid = await pay(db, state)

    assert packed(paid) == [("WH-A", [("D", 2), ("L", 1)]), ("WH-B", [("L", 5)])]
    assert packed(paid) == allocated(paid)
    assert sum(p.goods_cents for p in paid.packages) == paid.goods_cents == 6_020
    assert await stock_of(db, "L") == {"WH-A": (1, 0), "WH-B": (0, 0)}
    assert await stock_of(db, "D") == {"WH-A": (7, 0)}
    async with db.transaction() as session:
        assert await orders.get(session, "o-1") == paid


async def test_sold_out_at_payment_refuses_and_changes_nothing(db: Database) -> None:
    await add_sku(db, "D", price=100, policy=DEDUCT, stock_at={"WH-A": 1, "WH-B": 1})
    await add_sku(db, "L", price=100, policy=LOCK, stock_at={"WH-A": 5})
    first = await place(db, "o-1", [("D", 2)], buyer="b1")
    second = await place(db, "o-2", [("L", 2), ("D", 1)], buyer="b2")
    await pay(db, first)
    await top_up(db, "b2", balance=10_000)
    before = await dump(db)

    with pytest.raises(InsufficientStock, match=r"D \(want 1, have 0\)") as err:
        await pay(db, second, channel=PaymentChannel.BALANCE)

    assert err.value.code is ErrorCode.OUT_OF_STOCK
    assert await dump(db) == before
    assert await wallet_of(db, "b2") == (10_000, 0, 0)  # not charged
    assert await holds_of(db, "o-2") == {("L", "WH-A"): (2, "HELD")}  # lock not turned over
    assert await rows(db, "SELECT status FROM orders WHERE id = 'o-2'") == [("PENDING_PAYMENT",)]


async def test_balance_is_debited_exactly_once(db: Database) -> None:
    await add_sku(db, "A", price=2_900, stock_at={"WH-A": 10})
    state = await place(db, "o-1", [("A", 2)])
    await top_up(db, "buyer-1", balance=10_000)

    paid = await pay(db, state, channel=PaymentChannel.BALANCE)
    after_first = await dump(db)
    again = await pay(db, state, channel=PaymentChannel.BALANCE)

    assert await wallet_of(db, "buyer-1") == (4_200, 0, 0)
    assert again == paid
    assert await dump(db) == after_first
    assert await stock_of(db, "A") == {"WH-A": (8, 0)}
    assert await rows(db, "SELECT txn_id, channel, amount_cents, status FROM payments") == [
        ("balance-o-1", "balance", 5_800, "CAPTURED")
    ]


async def test_credit_line_is_debited_exactly_once(db: Database) -> None:
    await add_sku(db, "A", price=2_500, stock_at={"WH-A": 10})
    state = await place(db, "o-1", [("A", 3)])
    await top_up(db, "buyer-1", balance=100, credit=10_000)

    paid = await pay(db, state, channel=PaymentChannel.CREDIT)
    again = await pay(db, state, channel=PaymentChannel.CREDIT)

    assert await wallet_of(db, "buyer-1") == (100, 10_000, 7_500)
    assert again == paid
    assert paid.payment is not None and paid.payment.channel is PaymentChannel.CREDIT


async def test_insufficient_funds_changes_nothing(db: Database) -> None:
    await add_sku(db, "A", price=5_000, policy=LOCK, stock_at={"WH-A": 3})
    await add_sku(db, "D", price=0, policy=DEDUCT, stock_at={"WH-A": 3})
    cases = [
        ("b-balance", PaymentChannel.BALANCE, 4_999, 100_000, "balance"),
        ("b-credit", PaymentChannel.CREDIT, 100_000, 4_999, "credit line"),
        ("b-nowallet", PaymentChannel.BALANCE, 0, 0, "balance"),
    ]
    for buyer, channel, balance, credit, what in cases:
        state = await place(db, f"o-{buyer}", [("A", 1), ("D", 1)], buyer=buyer)
        await top_up(db, buyer, balance=balance, credit=credit)
        before = await dump(db)

        with pytest.raises(DomainError, match=f"not enough {what} for 5000 cents") as err:
            await pay(db, state, channel=channel)

        assert err.value.code is ErrorCode.INSUFFICIENT_FUNDS
        assert await dump(db) == before, buyer
        assert await holds_of(db, state.id) == {("A", "WH-A"): (1, "HELD")}
    assert await wallet_of(db, "b-nowallet") is None


async def test_a_partly_used_credit_line_counts_what_is_used(db: Database) -> None:
    await add_sku(db, "A", price=3_000, stock_at={"WH-A": 10})
    first = await place(db, "o-1", [("A", 1)])
    second = await place(db, "o-2", [("A", 1)])
    await top_up(db, "buyer-1", credit=5_000)
    await pay(db, first, channel=PaymentChannel.CREDIT)
    before = await dump(db)

    with pytest.raises(DomainError, match="not enough credit line"):
        await pay(db, second, channel=PaymentChannel.CREDIT)

    assert await dump(db) == before
    assert await wallet_of(db, "buyer-1") == (0, 5_000, 3_000)


async def test_gateway_payment_is_idempotent_on_txn_id(db: Database) -> None:
    await add_sku(db, "L", price=100, policy=LOCK, stock_at={"WH-A": 5})
    await add_sku(db, "D", price=100, policy=DEDUCT, stock_at={"WH-A": 5})
    state = await place(db, "o-1", [("L", 2), ("D", 2)])

    paid = await pay(db, state, channel=PaymentChannel.WECHAT, txn_id="wx-123")
    after_first = await dump(db)
    again = await pay(db, state, channel=PaymentChannel.WECHAT, txn_id="wx-123")

    assert again == paid
    assert await dump(db) == after_first
    assert await stock_of(db, "L") == {"WH-A": (3, 0)}
    assert await stock_of(db, "D") == {"WH-A": (3, 0)}
    assert await wallet_of(db, "buyer-1") is None  # a gateway payment never touches wallets


async def test_rolled_back_payment_leaves_nothing(db: Database) -> None:
    await add_sku(db, "A", stock_at={"WH-A": 5})
    state = await place(db, "o-1", [("A", 1)])
    await top_up(db, "buyer-1", balance=5_000)
    before = await dump(db)

    class Crash(Exception):
        pass

    with pytest.raises(Crash):
        async with db.transaction() as session:
            await payments.accept_payment(
                session, payment_input(state, channel=PaymentChannel.BALANCE)
            )
            raise Crash

    assert await dump(db) == before
    # and the retry then goes through, charged once
    await pay(db, state, channel=PaymentChannel.BALANCE)
    assert await wallet_of(db, "buyer-1") == (4_000, 0, 0)


async def test_deduct_for_payment_twice_deducts_once(db: Database) -> None:
    """The stock step on its own is idempotent too (the DEDUCTED holds are the record)."""
    await add_sku(db, "L", policy=LOCK, stock_at={"WH-A": 3, "WH-B": 3})
    await add_sku(db, "D", policy=DEDUCT, stock_at={"WH-A": 1, "WH-B": 4})
    state = await place(db, "o-1", [("L", 4), ("D", 2)])

    async with db.transaction() as session:
        first = await stock.deduct_for_payment(session, state)
    after_first = await dump(db)
    async with db.transaction() as session:
        second = await stock.deduct_for_payment(session, state)

    assert sorted(second, key=str) == sorted(first, key=str)
    assert sorted((a.sku, a.location, a.quantity) for a in first) == [
        ("D", "WH-B", 2),
        ("L", "WH-A", 3),
        ("L", "WH-B", 1),
    ]
    assert await dump(db) == after_first
    assert await stock_of(db, "L") == {"WH-A": (0, 0), "WH-B": (2, 0)}
    assert await stock_of(db, "D") == {"WH-A": (1, 0), "WH-B": (2, 0)}


async def test_a_checkouts_debit_is_once_and_a_late_shares_refund_credits_the_wallet(
    db: Database,
) -> None:
    """One debit for a checkout's shares (again: nothing more); a share that reached an
    order whose workflow had ended goes back to the wallet when its late refund is
    recorded, once."""
    await add_sku(db, "A", price=1_000)
    first = await place(db, "o-1", [("A", 1)])
    await place(db, "o-2", [("A", 2)])
    await top_up(db, "buyer-1", balance=5_000)
    whole = PaymentNotice(
        txn_id="balance-c-1-x",
        channel=PaymentChannel.BALANCE,
        amount_cents=3_000,
        paid_at=T0,
        order_id="c-1",
    )
    parts = split(whole, {"o-1": 1_000, "o-2": 2_000})
    for attempt in range(2):
        async with db.transaction() as session:
            assert await payments.debit_once(session, "buyer-1", parts) is (attempt == 0)
    assert await wallet_of(db, "buyer-1") == (2_000, 0, 0)
    with pytest.raises(DomainError) as short:  # another checkout, too dear: nothing written
        async with db.transaction() as session:
            more = split(whole.model_copy(update={"txn_id": "balance-c-2-x"}), {"o-1": 3_000})
            await payments.debit_once(session, "buyer-1", more)
    assert short.value.code is ErrorCode.INSUFFICIENT_FUNDS
    assert len(await rows(db, "SELECT txn_id FROM payments")) == 2

    share = parts["o-1"]
    payment = Payment(channel=share.channel, txn_id=share.txn_id, amount_cents=1_000, paid_at=T0)
    refund = Refund(
        id=f"{share.txn_id}-R",
        txn_id=share.txn_id,
        channel=share.channel,
        amount_cents=1_000,
        reason="ORDER_CLOSED",
        status=RefundStatus.SUCCEEDED,
        created_at=T0,
    )
    note = OrderEvent(
        order_id=first.id,
        version=0,
        type=EventType.LATE_PAYMENT_REFUNDED,
        actor=Actor(kind="system"),
        at=T0,
        data={},
    )
    for _ in range(2):
        async with db.transaction() as session:
            await payments.record_late_refund(session, first.id, payment, refund, note, "k-1")
    assert await wallet_of(db, "buyer-1") == (3_000, 0, 0)
