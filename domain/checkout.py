"""One payment for a checkout (合并支付): a gateway transaction that pays several orders, each
for its own total. Each order's part (its share) is a payment of its own, under the id
`<gateway txn>#<order id>`: the order accepts it, or (closed meanwhile) refunds it, like any
payment, and a refund of it goes back against the gateway's transaction, never beyond the
share. What pure rules there are live here."""

from hashlib import sha256

from domain.errors import DomainError, ErrorCode
from domain.messages import PaymentNotice
from domain.models import OrderState, OrderStatus

SHARE = "#"  # between the gateway's transaction id and the order's
MAX_TXN_CHARS = 128  # what the payments ledger holds
MAX_EVENT_CHARS = 128  # what the inbox holds


def share_txn(txn_id: str, order_id: str) -> str:
    return f"{txn_id}{SHARE}{order_id}"


def gateway_txn(txn_id: str) -> str:
    """The gateway's own transaction behind a payment (a share's parent, or itself)."""
    return txn_id.split(SHARE, 1)[0]


def share_event(event_id: str, order_id: str) -> str:
    """The inbox id of one order's share of a checkout's callback (within the column)."""
    name = f"{event_id}{SHARE}{order_id}"
    return name if len(name) <= MAX_EVENT_CHARS else "sha256:" + sha256(name.encode()).hexdigest()


def split(notice: PaymentNotice, shares: dict[str, int]) -> dict[str, PaymentNotice]:
    """The gateway's payment for a checkout as one payment per order, each of its share (the
    order's total when the intent was opened). The shares must add up to what was paid."""
    if sum(shares.values()) != notice.amount_cents or not shares:
        raise DomainError(
            ErrorCode.VALIDATION,
            f"payment {notice.txn_id} of {notice.amount_cents} is not the sum of its shares",
        )
    if any(len(share_txn(notice.txn_id, order_id)) > MAX_TXN_CHARS for order_id in shares):
        raise DomainError(ErrorCode.VALIDATION, f"txn id {notice.txn_id} too long to share")
    return {
        order_id: notice.model_copy(
            update={
                "txn_id": share_txn(notice.txn_id, order_id),
                "amount_cents": cents,
                "order_id": order_id,
            }
        )
        for order_id, cents in sorted(shares.items())
    }


def status_of(orders: list[OrderState]) -> OrderStatus:
    """A checkout's status: PENDING_PAYMENT while an order waits for payment, CLOSED once all
    closed, else PENDING_SHIPMENT (paid: each order goes on by itself)."""
    if any(o.status is OrderStatus.PENDING_PAYMENT for o in orders):
        return OrderStatus.PENDING_PAYMENT
    if all(o.status is OrderStatus.CLOSED for o in orders):
        return OrderStatus.CLOSED
    return OrderStatus.PENDING_SHIPMENT
