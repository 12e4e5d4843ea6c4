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

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.messages import PaymentNotice, RefundPaymentInput
    from domain.models import Actor, EventType, OrderEvent, Payment, Refund, RefundStatus
    from workflows import calls, compat, ids


@workflow.defn(name="OrphanPaymentWorkflow")
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
            type=EventType.LATE_PAYMENT_REFUNDED,
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
        if workflow.patched(compat.LATE_REFUND_RECORDED):
            return await self._refund_recorded(inp)
        refunded: Refund = await calls.partner(
            ids.REFUND_PAYMENT, inp, "refund a late payment", calls.LATE_REFUND, Refund
        )
        return refunded

    async def _refund_recorded(self, inp: RefundPaymentInput) -> Refund:
        """Refund within bounds; whatever the outcome, it is in the ledger and on the order."""
        retry = workflow.info().workflow_id == ids.orphan_refund_retry_id(inp.refund.txn_id)
        try:
            refund: Refund = await calls.partner(
                ids.REFUND_LATE_PAYMENT,
                inp,
                f"refund late payment {inp.refund.txn_id}",
                calls.LATE_REFUND_RETRY if retry else calls.LATE_REFUND,
                Refund,
            )
        except ActivityError as err:  # the gateway unreachable past the budget: FAILED
            cause = err.cause or err
            failed = inp.refund.model_copy(
                update={
                    "status": RefundStatus.FAILED,
                    "failure": f"not refunded within its bounds: {cause}"[:500],
                }
            )
            refund = await calls.partner(
                ids.RECORD_LATE_REFUND,
                inp.model_copy(update={"refund": failed}),
                f"record late refund {inp.refund.id} FAILED",
                calls.RECORD_LATE_REFUND,
                Refund,
            )
        outcome = "refunded" if refund.status != RefundStatus.FAILED else "refund FAILED"
        workflow.set_current_details(f"Late payment {inp.refund.txn_id}: {outcome}")
        return refund
