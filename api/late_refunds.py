"""An admin's retry of a late payment's FAILED refund: the payment came after its order's
workflow ended, so the late-payment workflow runs the refund again, and its real outcome is
the answer."""

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from domain.messages import PaymentNotice
from domain.models import Refund
from store import payments
from store.db import Database
from workflows import ids
from workflows.orphan_payment import OrphanPaymentWorkflow

PATIENCE = timedelta(seconds=40)  # the retry's own budget is 20 s of gateway calls


async def retry(client: Client, db: Database, task_queue: str, refund_id: str) -> Refund | None:
    """Run a late payment's refund again; None when this refund is not one."""
    async with db.sessions() as session:
        notice = await _late_payment(session, refund_id)
    if notice is None:
        return None
    handle = await client.start_workflow(  # one retry at a time; a finished one can run again
        OrphanPaymentWorkflow.run,
        notice,
        id=ids.orphan_refund_retry_id(notice.txn_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Retry refund {refund_id} of late payment {notice.txn_id}",
    )  # the start is bounded by the API client's deadline (ORDERS_TEMPORAL_RPC_TIMEOUT_SECONDS)
    refund: Refund = await handle.result(rpc_timeout=PATIENCE)
    return refund


async def _late_payment(session: AsyncSession, refund_id: str) -> PaymentNotice | None:
    """The payment a late payment's refund gives back, as its callback announced it."""
    txn_id = await payments.refund_txn(session, refund_id)
    if txn_id is None or refund_id != ids.late_refund_id(txn_id):
        return None
    found = await payments.payment_of(session, txn_id)
    if found is None:
        return None
    order_id, payment = found
    return PaymentNotice(
        txn_id=payment.txn_id,
        channel=payment.channel,
        amount_cents=payment.amount_cents,
        paid_at=payment.paid_at,
        order_id=order_id,
    )
