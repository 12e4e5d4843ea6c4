"""The order workflow's calls for what no captured payment may be lost for, with their
bounds (deterministic: activity calls only)."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain.messages import PaymentNotice
    from workflows import ids

SETTLE_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1), maximum_attempts=20)


async def settle_open_intents(order_id: str) -> list[PaymentNotice]:
    """Before an unpaid order closes: close its intents at the gateway; the payments made on
    them anyway (their callbacks lost or late) come back, to be taken as payments. Bounded:
    10 minutes, 20 attempts; a gateway refusal fails at once (non-retryable)."""
    captured: list[PaymentNotice] = await workflow.execute_activity(
        ids.SETTLE_OPEN_INTENTS,
        order_id,
        result_type=list[PaymentNotice],
        start_to_close_timeout=timedelta(seconds=30),
        schedule_to_close_timeout=timedelta(minutes=10),
        heartbeat_timeout=timedelta(seconds=30),
        retry_policy=SETTLE_RETRY,
        summary=f"close the payment intents of order {order_id}",
    )
    return captured
