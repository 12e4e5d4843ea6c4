"""A checkout's one payment split into its orders' shares, and its status."""

from datetime import UTC, datetime

import pytest

from domain.checkout import gateway_txn, share_txn, split, status_of
from domain.errors import DomainError
from domain.messages import PaymentNotice
from domain.models import OrderStatus, PaymentChannel
from tests.unit.test_domain_order import line, paid, placed

PAID = PaymentNotice(
    txn_id="wechat-1",
    channel=PaymentChannel.WECHAT,
    amount_cents=5000,
    paid_at=datetime(2026, 11, 1, tzinfo=UTC),
    order_id="c-1",
)


def test_a_payment_is_split_into_each_orders_share_under_its_own_txn() -> None:
    parts = split(PAID, {"o-2": 2000, "o-1": 3000})
    assert [(k, p.txn_id, p.amount_cents, p.order_id) for k, p in parts.items()] == [
        ("o-1", "wechat-1#o-1", 3000, "o-1"),
        ("o-2", "wechat-1#o-2", 2000, "o-2"),
    ]
    assert {gateway_txn(p.txn_id) for p in parts.values()} == {"wechat-1"}
    assert gateway_txn("wechat-1") == "wechat-1" and share_txn("t", "o") == "t#o"


@pytest.mark.parametrize(
    "shares",
    [{"o-1": 3000}, {"o-1": 3000, "o-2": 2001}, {}],  # short, over, none
)
def test_shares_that_do_not_add_up_to_the_payment_are_refused(shares: dict[str, int]) -> None:
    with pytest.raises(DomainError, match="not the sum of its shares"):
        split(PAID, shares)


def test_a_txn_too_long_to_share_is_refused() -> None:
    long = PAID.model_copy(update={"txn_id": "t" * 125})
    with pytest.raises(DomainError, match="too long"):
        split(long, {"o-1": 5000})


def test_a_checkouts_status_follows_its_orders() -> None:
    unpaid = placed(line("BOOK-1"))
    done = paid(placed(line("BOOK-1"), order_id="O-2"))
    closed = unpaid.model_copy(update={"status": OrderStatus.CLOSED})
    assert status_of([unpaid, done]) is OrderStatus.PENDING_PAYMENT
    assert status_of([closed, done]) is OrderStatus.PENDING_SHIPMENT
    assert status_of([closed, closed]) is OrderStatus.CLOSED
