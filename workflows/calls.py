"""Every activity the workflows call, with its options written once.

Each call has a schedule-to-close and a maximum number of attempts: nothing retries forever.
Database steps are local activities (short writes and reads, retried through an outage of a
few minutes, then failed visibly); partner calls are regular activities with their own
patience, and are never made with an order's lock held.
"""

from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

T = TypeVar("T")

DB_ATTEMPT = timedelta(seconds=10)
DB_PATIENCE = timedelta(minutes=5)  # a database down longer than this: ORDER_ERROR, visibly
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=100,
)

PARTNER_ATTEMPT = timedelta(seconds=30)
PARTNER_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5), maximum_attempts=500)
REFUND_PATIENCE = timedelta(days=1)  # a channel down this long: the refund is FAILED, visibly
SUPPLIER_PATIENCE = timedelta(hours=24)  # a supplier down this long: intercept and refund
SUPPLIER_CANCEL_PATIENCE = timedelta(minutes=2)  # then the cancel is refused (409)
START_CASE_PATIENCE = timedelta(days=1)  # a call to Temporal itself
SETTLE_INTENTS_PATIENCE = timedelta(minutes=10)  # then the unpaid order closes all the same


async def db(name: str, arg: Any, summary: str, result_type: type[T] | None = None) -> T:
    """A database step, run locally by the workflow's worker."""
    result: T = await workflow.execute_local_activity(
        name,
        arg,
        result_type=result_type,
        start_to_close_timeout=DB_ATTEMPT,
        schedule_to_close_timeout=DB_PATIENCE,
        retry_policy=DB_RETRY,
        summary=summary,
    )
    return result


async def partner(
    name: str, arg: Any, summary: str, patience: timedelta, result_type: type[T] | None = None
) -> T:
    """A call to a partner (or to Temporal): retried with backoff until `patience` is spent."""
    result: T = await workflow.execute_activity(
        name,
        arg,
        result_type=result_type,
        start_to_close_timeout=PARTNER_ATTEMPT,
        schedule_to_close_timeout=patience,
        retry_policy=PARTNER_RETRY,
        summary=summary,
    )
    return result
