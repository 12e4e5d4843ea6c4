"""Wallets, the payments ledger and the refunds ledger."""

from datetime import UTC, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.checkout import SHARE, gateway_txn
from domain.errors import DomainError, ErrorCode
from domain.messages import AcceptPaymentInput, PaymentNotice
from domain.models import (
    WALLET_CHANNELS,
    Actor,
    EventType,
    OrderEvent,
    OrderState,
    Payment,
    PaymentChannel,
    Refund,
)
from domain.order import add_refund, mark_paid
from domain.refunds import retried
from store import orders
from store.sql import insert_ignore
from store.stock import deduct_for_payment
from store.tables import OrderEventRow, PaymentRow, RefundRow, TopUpRow, WalletRow

CAPTURED, REFUNDED = "CAPTURED", "REFUNDED"


async def wallet(session: AsyncSession, buyer_id: str) -> WalletRow:
    await insert_ignore(
        session,
        WalletRow,
        buyer_id=buyer_id,
        balance_cents=0,
        credit_limit_cents=0,
        credit_used_cents=0,
    )
    row = await session.get(WalletRow, buyer_id, with_for_update=True, populate_existing=True)
    assert row is not None
    return row


async def _move_wallet(
    session: AsyncSession, buyer_id: str, channel: PaymentChannel, cents: int
) -> None:
    """Debit (cents > 0) or credit back (cents < 0); refused when funds or credit run short."""
    w = WalletRow
    if channel is PaymentChannel.BALANCE:
        stmt = (
            update(w)
            .where(w.buyer_id == buyer_id, w.balance_cents >= cents)
            .values(balance_cents=w.balance_cents - cents)
        )
    else:
        stmt = (
            update(w)
            .where(
                w.buyer_id == buyer_id,
                w.credit_limit_cents - w.credit_used_cents >= cents,
                w.credit_used_cents >= -cents,
            )
            .values(credit_used_cents=w.credit_used_cents + cents)
        )
    result = await session.execute(stmt)
    if not getattr(result, "rowcount", 0):
        what = "balance" if channel is PaymentChannel.BALANCE else "credit line"
        raise DomainError(
            ErrorCode.INSUFFICIENT_FUNDS,
            f"not enough {what} for {cents} cents",
            {"channel": channel.value, "amount_cents": cents},
        )


async def accept_payment(session: AsyncSession, inp: AcceptPaymentInput) -> OrderState:
    """Charge (wallets), record the payment, deduct stock, write the PAID snapshot: one txn.

    Idempotent on txn_id: a retry after a crash returns the order as it was saved.
    """
    p = inp.payment
    # Record the payment before charging: a concurrent attempt with the same txn_id waits on
    # this insert (PostgreSQL) and then finds the payment accepted instead of charging again;
    # a retry after a crash finds it accepted at once.
    if not await _record_payment(session, inp.state.id, p, CAPTURED):
        saved = await _accepted(session, inp)
        if saved is not None:
            return saved
        _reused(await txn_owner(session, p.txn_id), inp.state.id, p.txn_id)
    if inp.charge_wallet:  # (a buyer without a wallet row has nothing to pay with)
        await _move_wallet(session, inp.state.buyer_id, p.channel, p.amount_cents)
    # the payment is new in this transaction, so no deduction of it was made before
    allocations = await deduct_for_payment(session, inp.state, fresh=True)
    change = mark_paid(inp.state, p, allocations, inp.now, inp.actor)
    await orders.save(session, change.state, change.event, write_seq=inp.write_seq)
    return change.state


async def debit_once(session: AsyncSession, buyer_id: str, parts: dict[str, PaymentNotice]) -> bool:
    """A checkout paid from the wallet in one debit: each order's share recorded in the
    ledger (its order takes it as it takes any payment), and the buyer's balance or credit
    line charged their sum, once. False: these shares were recorded before (a retry), so
    nothing is charged again. Too little money: refused, nothing written."""
    fresh = False
    for order_id, part in parts.items():
        payment = Payment(
            channel=part.channel,
            txn_id=part.txn_id,
            amount_cents=part.amount_cents,
            paid_at=part.paid_at,
        )
        fresh = await _record_payment(session, order_id, payment, CAPTURED) or fresh
    if fresh:
        channel = next(iter(parts.values())).channel
        await _move_wallet(session, buyer_id, channel, sum(p.amount_cents for p in parts.values()))
    return fresh


async def txn_owner(session: AsyncSession, txn_id: str) -> str | None:
    """The order a gateway transaction already belongs to in the ledger, if any."""
    row = await session.get(PaymentRow, txn_id)
    return row.order_id if row is not None else None


async def note_anomaly(session: AsyncSession, notice: PaymentNotice, owner: str) -> None:
    """A PAYMENT_ANOMALY on the order a reused transaction named (once per txn and order)."""
    event = OrderEvent(
        order_id=notice.order_id,
        version=0,
        type=EventType.PAYMENT_ANOMALY,
        actor=Actor(kind="gateway", id=notice.channel.value),
        at=datetime.now(UTC),
        data={
            "txn_id": notice.txn_id,
            "amount_cents": notice.amount_cents,
            "belongs_to_order": owner,
            "action": "recorded; nothing applied, nothing refunded",
        },
    )
    await orders.append_event(session, event, f"anomaly:{notice.txn_id}")


async def check_txn_is(session: AsyncSession, txn_id: str, order_id: str) -> None:
    """Refuse (TXN_REUSED) when the ledger gives this transaction to another order."""
    _reused(await txn_owner(session, txn_id), order_id, txn_id)


def _reused(owner: str | None, order_id: str, txn_id: str) -> None:
    if owner is not None and owner != order_id:
        raise DomainError(
            ErrorCode.TXN_REUSED,
            f"transaction {txn_id} already settled order {owner}",
            {"txn_id": txn_id, "order_id": owner},
        )


async def _accepted(session: AsyncSession, inp: AcceptPaymentInput) -> OrderState | None:
    """The saved order, when this very payment was already accepted for it (a retry)."""
    known = await session.get(PaymentRow, inp.payment.txn_id, populate_existing=True)
    if known is None or known.order_id != inp.state.id or known.status != CAPTURED:
        return None
    saved = await orders.get(session, inp.state.id)
    return saved if saved is not None and saved.payment is not None else None


async def _record_payment(session: AsyncSession, order_id: str, p: Payment, status: str) -> bool:
    """True when the payment was not in the ledger yet."""
    return await insert_ignore(
        session,
        PaymentRow,
        txn_id=p.txn_id,
        order_id=order_id,
        channel=p.channel.value,
        amount_cents=p.amount_cents,
        status=status,
        paid_at=p.paid_at,
    )


async def record_refund(
    session: AsyncSession,
    order_id: str,
    payment: Payment,
    refund: Refund,
    note: OrderEvent | None = None,
) -> bool:
    """Ledger the refund (and the payment it returns, if it was never kept); wallets are
    credited here, gateways were already called. Idempotent on the refund id."""
    await _record_payment(session, order_id, payment, REFUNDED)
    _reused(await txn_owner(session, payment.txn_id), order_id, payment.txn_id)
    fresh = await _insert_refund(session, order_id, refund)
    if not fresh and refund.status != "FAILED":  # a FAILED refund tried again: it counts now
        result = await session.execute(
            update(RefundRow)
            .where(RefundRow.id == refund.id, RefundRow.status == "FAILED")
            .values(status=refund.status)
        )
        fresh = bool(getattr(result, "rowcount", 0))
    if fresh and refund.channel in WALLET_CHANNELS:
        owner = await _owner(session, order_id)
        await wallet(session, owner)
        await _move_wallet(session, owner, refund.channel, -refund.amount_cents)
    if fresh and note is not None:
        await _note_on_order(session, order_id, refund, note)
    return fresh


async def refund_status(session: AsyncSession, refund_id: str) -> tuple[str, str] | None:
    """(order id, status) of a refund in the ledger."""
    row = await session.get(RefundRow, refund_id)
    return (row.order_id, row.status) if row is not None else None


async def refund_txn(session: AsyncSession, refund_id: str) -> str | None:
    """The gateway transaction a refund in the ledger gives money back from."""
    row = await session.get(RefundRow, refund_id)
    return row.txn_id if row is not None else None


async def note_failed_refunds(session: AsyncSession, state: OrderState) -> None:
    """Refunds the channel refused for good go in the ledger as FAILED: operators find them
    there, and an admin's retry finds their order."""
    for refund in state.refunds:
        if refund.status == "FAILED" and refund.amount_cents > 0:
            await _insert_refund(session, state.id, refund)


async def _insert_refund(session: AsyncSession, order_id: str, refund: Refund) -> bool:
    return await insert_ignore(
        session,
        RefundRow,
        id=refund.id,
        order_id=order_id,
        txn_id=refund.txn_id,
        channel=refund.channel.value,
        amount_cents=refund.amount_cents,
        goods_cents=refund.goods_cents,
        freight_cents=refund.freight_cents,
        borne_by=refund.borne_by,
        freight_borne_by=refund.freight_borne_by,
        package_id=refund.package_id,
        reason=refund.reason,
        status=refund.status,
        failure=refund.failure,
        created_at=refund.created_at,
    )


async def _note_on_order(
    session: AsyncSession, order_id: str, refund: Refund, note: OrderEvent
) -> None:
    """A refund made after the order's workflow ended: the stored order is its record now,
    so the refund goes on its snapshot too (or only in the event log, for an unknown order)."""
    saved = await orders.get(session, order_id)
    if saved is None:
        await orders.append_event(session, note, f"refund:{refund.id}")
        return
    change = add_refund(saved, refund, note.at, note.actor)
    await orders.save(session, change.state, change.event.model_copy(update={"type": note.type}))


async def in_ledger(session: AsyncSession, txn_ids: list[str]) -> set[str]:
    """Which of these gateway transactions the payments ledger holds (kept or refunded): as
    themselves, or, a checkout's, as its orders' shares (`<txn>#<order>`)."""
    if not txn_ids:
        return set()
    shares = [PaymentRow.txn_id.startswith(t + SHARE, autoescape=True) for t in txn_ids]
    rows = await session.scalars(
        select(PaymentRow.txn_id).where(or_(PaymentRow.txn_id.in_(txn_ids), *shares))
    )
    return {gateway_txn(txn_id) for txn_id in rows}


async def payment_of(session: AsyncSession, txn_id: str) -> tuple[str, Payment] | None:
    """(order id, payment) of a transaction in the ledger."""
    row = await session.get(PaymentRow, txn_id)
    if row is None:
        return None
    payment = Payment(
        channel=PaymentChannel(row.channel),
        txn_id=row.txn_id,
        amount_cents=row.amount_cents,
        paid_at=row.paid_at,
    )
    return row.order_id, payment


async def record_late_refund(
    session: AsyncSession,
    order_id: str,
    payment: Payment,
    refund: Refund,
    note: OrderEvent,
    key: str,
) -> None:
    """The outcome of refunding a payment that came after its order's workflow ended: the
    payment (never kept) and the refund, SUCCEEDED or FAILED with the channel's reason, in
    the ledgers and on the stored order (its record now). A FAILED refund tried again is
    replaced by the new outcome. `key` names this attempt: writing it twice is a no-op."""
    known = await session.scalar(
        select(OrderEventRow.id).where(
            OrderEventRow.order_id == order_id, OrderEventRow.event_key == key
        )
    )
    if known is not None:
        return
    await _record_payment(session, order_id, payment, REFUNDED)
    _reused(await txn_owner(session, payment.txn_id), order_id, payment.txn_id)
    row = await session.get(RefundRow, refund.id, with_for_update=True, populate_existing=True)
    if row is None:
        await _insert_refund(session, order_id, refund)
    elif row.status == "FAILED":
        row.status, row.failure = refund.status, refund.failure
        await session.flush()
    else:  # it went through already: nothing to record
        return
    if refund.status != "FAILED" and refund.channel in WALLET_CHANNELS:  # (a checkout's share)
        owner = await _owner(session, order_id)
        await wallet(session, owner)
        await _move_wallet(session, owner, refund.channel, -refund.amount_cents)
    saved = await orders.get(session, order_id)
    if saved is None:
        await orders.append_event(session, note, key)
        return
    if any(r.id == refund.id and r.status == "FAILED" for r in saved.refunds):
        change = retried(saved, refund, note.at, note.actor)
        event = change.event
    else:
        change = add_refund(saved, refund, note.at, note.actor)
        event = change.event.model_copy(update={"type": note.type})
    await orders.save(session, change.state, event, key)


async def _owner(session: AsyncSession, order_id: str) -> str:
    saved = await orders.get(session, order_id)
    if saved is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no order {order_id} to refund to a wallet")
    return saved.buyer_id


async def top_up(
    session: AsyncSession,
    buyer_id: str,
    cents: int,
    key: str | None = None,
    now: datetime | None = None,
) -> WalletRow:
    """Credit the balance; under an Idempotency-Key, once (the same key with another amount is
    refused: it is not the same request)."""
    if key is not None:
        fresh = await insert_ignore(
            session,
            TopUpRow,
            buyer_id=buyer_id,
            idempotency_key=key,
            amount_cents=cents,
            created_at=now or datetime.now(UTC),
        )
        if not fresh:
            first = await session.get(TopUpRow, (buyer_id, key))
            if first is not None and first.amount_cents != cents:
                raise DomainError(
                    ErrorCode.IDEMPOTENCY_CONFLICT,
                    f"this Idempotency-Key topped up {first.amount_cents} cents, not {cents}",
                    {"amount_cents": first.amount_cents},
                )
            return await wallet(session, buyer_id)
    row = await wallet(session, buyer_id)
    row.balance_cents += cents
    await session.flush()
    return row


async def read_wallet(session: AsyncSession, buyer_id: str) -> WalletRow:
    """A wallet as it is, without writing (a buyer never seen has an empty one)."""
    row = await session.get(WalletRow, buyer_id)
    return row or WalletRow(
        buyer_id=buyer_id, balance_cents=0, credit_limit_cents=0, credit_used_cents=0
    )


async def set_credit_limit(session: AsyncSession, buyer_id: str, cents: int) -> WalletRow:
    row = await wallet(session, buyer_id)
    if cents < row.credit_used_cents:
        raise DomainError(
            ErrorCode.INVALID_TRANSITION,
            f"{row.credit_used_cents} cents of credit are in use",
            {"credit_used_cents": row.credit_used_cents},
        )
    row.credit_limit_cents = cents
    await session.flush()
    return row
