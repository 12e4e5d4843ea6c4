"""What keeps every captured payment: an unpaid order's intents closed at the gateway (or
found paid), the gateway's captures swept against the ledger, and a late payment's refund
recorded whatever the gateway answers.

Gateway errors are classified by type: `PaymentRefused` (the gateway answered no) and any
other non-retryable `PaymentGatewayError` can never succeed and are raised non-retryable;
the rest (unreachable, 5xx, 429) are retried within the caller's bounds.
"""

import hashlib
import logging
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.common import MetricMeter
from temporalio.exceptions import ApplicationError

from activities.txn import txn
from domain.checkout import share_event
from domain.errors import ErrorCode
from domain.messages import (
    InboxEvent,
    PaymentNotice,
    RefundPaymentInput,
    SweepInput,
    SweepResult,
)
from domain.models import WALLET_CHANNELS, EventType, PaymentChannel, Refund, RefundStatus
from gateways.payments import (
    Capture,
    GatewayIntent,
    PaymentGatewayClient,
    PaymentGatewayError,
    PaymentRefused,
)
from runtime.metrics import BusinessMetrics
from runtime.relay import Relay
from store import intents, payments
from store.db import Database
from workflows import ids

log = logging.getLogger(__name__)


def is_final(err: PaymentGatewayError) -> bool:
    """No retry can help: the gateway refused, or answered what we cannot use."""
    return isinstance(err, PaymentRefused) or not err.retryable


def gateway_failure(err: PaymentGatewayError) -> ApplicationError:
    """A gateway error as the activity's failure: non-retryable when no retry can help."""
    return ApplicationError(
        str(err), type=ErrorCode.PAYMENT_GATEWAY_ERROR.value, non_retryable=is_final(err)
    )


def capture_notice(order_id: str, capture: Capture | GatewayIntent) -> PaymentNotice:
    """A capture as the payment the gateway's callback would have announced."""
    if isinstance(capture, GatewayIntent):
        if not capture.txn_id or capture.captured_cents is None or capture.paid_at is None:
            raise ApplicationError(
                f"the gateway says intent {capture.intent_id} is captured but not how",
                type=ErrorCode.PAYMENT_GATEWAY_ERROR.value,
                non_retryable=True,
            )
        txn_id, amount, paid_at = capture.txn_id, capture.captured_cents, capture.paid_at
    else:
        txn_id, amount, paid_at = capture.txn_id, capture.amount_cents, capture.paid_at
    return PaymentNotice(
        txn_id=txn_id,
        channel=PaymentChannel(capture.channel),
        amount_cents=amount,
        paid_at=paid_at,
        order_id=order_id,
    )


async def missing_captures(
    db: Database, gateway: PaymentGatewayClient, since: datetime, until: datetime | None = None
) -> tuple[int, list[Capture]]:
    """The gateway's captures paid from `since` (to `until`) that the payments ledger does
    not hold, with how many were listed: "every capture at the gateway is in the ledger"
    holds when the list is empty."""
    checked, missing = 0, []
    page: list[Capture] = []
    async for capture in gateway.captures(since, page_size=200):
        if until is not None and capture.paid_at >= until:
            break
        page.append(capture)
        if len(page) == 200:
            missing += await _not_in_ledger(db, page)
            checked, page = checked + len(page), []
    missing += await _not_in_ledger(db, page)
    return checked + len(page), missing


async def _not_in_ledger(db: Database, captures: list[Capture]) -> list[Capture]:
    async with db.sessions() as session:
        known = await payments.in_ledger(session, [c.txn_id for c in captures])
    return [c for c in captures if c.txn_id not in known]


class PaymentActivities:
    def __init__(
        self,
        db: Database,
        gateway: PaymentGatewayClient | None,
        relay: Relay | None = None,
        metrics: BusinessMetrics | None = None,
    ) -> None:
        self.db = db
        self._gateway = gateway
        self.relay = relay
        self.metrics = metrics or BusinessMetrics(MetricMeter.noop)

    @property
    def gateway(self) -> PaymentGatewayClient:
        if self._gateway is None:
            raise ApplicationError("no payment gateway configured", non_retryable=True)
        return self._gateway

    @activity.defn(name=ids.SETTLE_OPEN_INTENTS)
    async def settle_open_intents(self, order_id: str) -> list[PaymentNotice]:
        """Close every intent opened for the order at the gateway, so none can be paid from
        now on; those the buyer already paid come back as the payments they are (their
        callbacks may never have come). Idempotent: closing a closed intent again is the
        same answer, and a paid one is the same capture."""
        async with self.db.sessions() as session:
            opened = await intents.of_order(session, order_id)
        captured: list[PaymentNotice] = []
        for intent_id in opened:
            activity.heartbeat(intent_id)
            try:
                found = await self.gateway.close_intent(intent_id)
            except PaymentGatewayError as err:
                raise gateway_failure(err) from err
            if found.status == "captured":
                captured.append(capture_notice(order_id, found))
        return captured

    @activity.defn(name=ids.SWEEP_CAPTURES)
    async def sweep_captures(self, inp: SweepInput) -> SweepResult:
        """Compare the gateway's captures with the payments ledger; each one missing (its
        callbacks lost) is delivered the way a callback is: recorded in the inbox and sent
        to its order's workflow by the relay (or, the order's workflow ended, refunded)."""
        if self.relay is None:
            raise ApplicationError("no callback relay configured", non_retryable=True)
        now = datetime.now(UTC)  # the gateway's times are wall-clock times
        since = now - timedelta(seconds=inp.lookback_seconds)
        until = now - timedelta(seconds=inp.grace_seconds)
        try:
            checked, missing = await missing_captures(self.db, self.gateway, since, until)
        except PaymentGatewayError as err:
            raise gateway_failure(err) from err
        delivered = []
        for capture in missing:
            activity.heartbeat(capture.txn_id)
            async with self.db.sessions() as session:  # a checkout's: each order's share
                parts = await intents.parts_of(session, capture_notice(capture.order_id, capture))
            event_id = f"capture:{capture.txn_id}"  # one inbox row per capture (share) swept
            for order_id, notice in parts.items():
                event = InboxEvent(
                    source="payment",
                    event_id=event_id if len(parts) == 1 else share_event(event_id, order_id),
                    order_id=order_id,
                    payload=notice.model_dump_json(),
                )
                outcome = await self.relay.accept(event)
                log.warning(
                    "capture %s of order %s was not in the ledger: %s",
                    notice.txn_id,
                    order_id,
                    outcome,
                    extra={"order_id": order_id},
                )
            delivered.append(capture.txn_id)
        return SweepResult(checked=checked, delivered=delivered)

    @activity.defn(name=ids.REFUND_LATE_PAYMENT)
    async def refund_late_payment(self, inp: RefundPaymentInput) -> Refund:
        """Refund a payment that came after its order's workflow ended, and record the
        outcome: SUCCEEDED, or FAILED with the gateway's reason when it refuses for good
        (not an error: an admin retries it). Idempotent on the refund id."""
        refund = inp.refund.model_copy(update={"status": RefundStatus.SUCCEEDED, "failure": None})
        async with txn(self.db, write=False) as session:  # never move another's money
            await payments.check_txn_is(session, refund.txn_id, inp.order_id)
        try:  # a wallet's money (a checkout's share) goes back in the ledger's transaction
            if refund.channel not in WALLET_CHANNELS:
                await self.gateway.refund(
                    refund.txn_id, refund.id, refund.amount_cents, refund.reason
                )
        except PaymentGatewayError as err:
            if not is_final(err):
                raise gateway_failure(err) from err
            refund = refund.model_copy(
                update={"status": RefundStatus.FAILED, "failure": err.message[:500]}
            )
        self.metrics.refund(refund, "SUCCEEDED" if refund.status != "FAILED" else "REFUSED")
        return await self.record_late_refund(inp.model_copy(update={"refund": refund}))

    @activity.defn(name=ids.RECORD_LATE_REFUND)
    async def record_late_refund(self, inp: RefundPaymentInput) -> Refund:
        """Write a late payment's refund as it ended (FAILED when the gateway could not be
        reached within the refund's bounds)."""
        if inp.note_event is None:
            raise ApplicationError("a late refund is recorded with its note", non_retryable=True)
        failed = inp.refund.status == RefundStatus.FAILED
        note = inp.note_event.model_copy(
            update={
                "type": EventType.LATE_PAYMENT_REFUND_FAILED if failed else inp.note_event.type,
                "data": inp.refund.model_dump(mode="json"),
            }
        )
        async with txn(self.db) as session:
            await payments.record_late_refund(
                session, inp.order_id, inp.payment, inp.refund, note, _attempt(inp.refund.id)
            )
        return inp.refund


def _attempt(refund_id: str) -> str:
    """The event key of this workflow run's outcome of a refund: written once."""
    info = activity.info()
    run = f"{refund_id}\x00{info.workflow_id}\x00{info.workflow_run_id}"
    return f"late-refund:{hashlib.sha256(run.encode()).hexdigest()[:40]}"
