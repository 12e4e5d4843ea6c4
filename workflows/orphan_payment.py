"""A payment for an order whose workflow has ended (or never existed): refund and record it.

Started by the payments webhook when the order's workflow can no longer take the signal;
its id is derived from the txn id, so a gateway's repeated callback refunds only once. An
admin's retry of its FAILED refund runs it again under `ids.orphan_refund_retry_id`.

It never ends Failed: the refund is bounded, and a refund the gateway refuses for good, or
cannot make within its bounds, is recorded as a FAILED refund with the reason, for an admin
to retry. Patches (one id per change; old histories replay on the old path):

* `late-refund-recorded`: the refund runs `refund_late_payment` (bounded; a refusal is a
  FAILED refund in the ledger and on the order) instead of `refund_payment` (a refusal
  failed the workflow). Old path: `orphan_payment_refunded`; new path:
  `orphan_payment_refund_failed` and `orphan_payment_refund_retried` (tests/histories/).
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.messages import PaymentNotice, RefundPaymentInput
    from domain.models import Actor, OrderEvent, Payment, Refund, RefundStatus
    from workflows import ids

LATE_REFUND_RECORDED = "late-refund-recorded"
# the refund of a late payment: a day of tries (an admin's retry: seconds, they wait for it)
REFUND_BUDGET = timedelta(days=1)
REFUND_ATTEMPTS = 300
RETRY_BUDGET = timedelta(seconds=20)
RETRY_ATTEMPTS = 4
RECORD_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1), maximum_attempts=100)


@workflow.defn
class OrphanPaymentWorkflow:
    @workflow.run
    async def run(self, notice: PaymentNotice) -> Refund:
        now = workflow.now()
        payment = Payment(
            channel=notice.channel,
            txn_id=notice.txn_id,
            amount_cents=notice.amount_cents,
            paid_at=notice.paid_at,
        )
        refund = Refund(
            id=ids.late_refund_id(notice.txn_id),
            txn_id=notice.txn_id,
            channel=notice.channel,
            amount_cents=notice.amount_cents,
            reason="ORDER_CLOSED",
            created_at=now,
        )
        note = OrderEvent(
            order_id=notice.order_id,
            version=0,
            type="LATE_PAYMENT_REFUNDED",
            actor=Actor(kind="system", id="late-payment"),
            at=now,
            data=refund.model_dump(mode="json"),
        )
        workflow.set_current_details(
            f"Payment {notice.txn_id} arrived after order {notice.order_id} ended: refunding"
        )
        inp = RefundPaymentInput(
            order_id=notice.order_id, refund=refund, payment=payment, note_event=note
        )
        if workflow.patched(LATE_REFUND_RECORDED):
            return await self._refund_recorded(inp)
        refunded: Refund = await workflow.execute_activity(
            ids.REFUND_PAYMENT,
            inp,
            result_type=Refund,
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=REFUND_BUDGET,
            retry_policy=RetryPolicy(
                maximum_interval=timedelta(minutes=5), maximum_attempts=REFUND_ATTEMPTS
            ),
        )
        return refunded

    async def _refund_recorded(self, inp: RefundPaymentInput) -> Refund:
        """Refund within bounds; whatever the outcome, it is in the ledger and on the order."""
        retry = workflow.info().workflow_id == ids.orphan_refund_retry_id(inp.refund.txn_id)
        try:
            refund: Refund = await workflow.execute_activity(
                ids.REFUND_LATE_PAYMENT,
                inp,
                result_type=Refund,
                start_to_close_timeout=timedelta(seconds=30 if not retry else 10),
                schedule_to_close_timeout=RETRY_BUDGET if retry else REFUND_BUDGET,
                retry_policy=RetryPolicy(
                    maximum_interval=timedelta(minutes=5),
                    maximum_attempts=RETRY_ATTEMPTS if retry else REFUND_ATTEMPTS,
                ),
                summary=f"refund late payment {inp.refund.txn_id}",
            )
        except ActivityError as err:  # the gateway unreachable past the budget: FAILED
            cause = err.cause or err
            failed = inp.refund.model_copy(
                update={
                    "status": RefundStatus.FAILED.value,
                    "failure": f"not refunded within its bounds: {cause}"[:500],
                }
            )
            refund = await workflow.execute_activity(
                ids.RECORD_LATE_REFUND,
                inp.model_copy(update={"refund": failed}),
                result_type=Refund,
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=REFUND_BUDGET,
                retry_policy=RECORD_RETRY,
                summary=f"record late refund {inp.refund.id} FAILED",
            )
        outcome = "refunded" if refund.status != RefundStatus.FAILED.value else "refund FAILED"
        workflow.set_current_details(f"Late payment {inp.refund.txn_id}: {outcome}")
        return refund
