"""A payment for an order whose workflow has ended (or never existed): refund and record it.

Started by the payments webhook when the order's workflow can no longer take the signal;
its id is derived from the txn id, so a gateway's repeated callback refunds only once.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain.messages import PaymentNotice, RefundPaymentInput
    from domain.models import Actor, OrderEvent, Payment, Refund
    from workflows import ids


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
            id=f"{notice.txn_id}-R",
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
        refunded: Refund = await workflow.execute_activity(
            ids.REFUND_PAYMENT,
            RefundPaymentInput(
                order_id=notice.order_id, refund=refund, payment=payment, note_event=note
            ),
            result_type=Refund,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
        )
        return refunded
