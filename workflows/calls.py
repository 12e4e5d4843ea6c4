"""Every activity the workflows call, with its options written once.

Each call has a schedule-to-close and a maximum number of attempts: nothing retries forever.
Database steps are local activities (short writes and reads, retried through an outage of a
few minutes, then failed visibly); partner calls are regular activities with their own
patience, and are never made with an order's lock held.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

T = TypeVar("T")


@dataclass(frozen=True)
class Bounds:
    attempt: timedelta  # start-to-close of one attempt
    patience: timedelta  # schedule-to-close: all attempts and their backoff
    retry: RetryPolicy  # always with a maximum number of attempts
    heartbeat: timedelta | None = None

    def options(self) -> dict[str, Any]:
        return {
            "start_to_close_timeout": self.attempt,
            "schedule_to_close_timeout": self.patience,
            "retry_policy": self.retry,
        }


def _retry(first: timedelta, most: timedelta, attempts: int) -> RetryPolicy:
    return RetryPolicy(initial_interval=first, maximum_interval=most, maximum_attempts=attempts)


SECOND, MINUTE = timedelta(seconds=1), timedelta(minutes=1)

# a database down longer than this: ORDER_ERROR, visibly
DB = Bounds(10 * SECOND, 5 * MINUTE, _retry(timedelta(milliseconds=200), 10 * SECOND, 100))
PARTNER_RETRY = _retry(SECOND, 5 * MINUTE, 500)
REFUND = Bounds(30 * SECOND, timedelta(days=1), PARTNER_RETRY)  # then FAILED, visibly
SUPPLIER_PURCHASE = Bounds(30 * SECOND, timedelta(hours=24), PARTNER_RETRY)  # then intercept
SUPPLIER_CANCEL = Bounds(30 * SECOND, 2 * MINUTE, PARTNER_RETRY)  # then refused (409)
START_CASE = Bounds(30 * SECOND, timedelta(days=1), PARTNER_RETRY)  # a call to Temporal
SETTLE_INTENTS = Bounds(30 * SECOND, 10 * MINUTE, _retry(SECOND, MINUTE, 20))  # then close
LATE_REFUND = Bounds(30 * SECOND, timedelta(days=1), _retry(SECOND, 5 * MINUTE, 300))
LATE_REFUND_RETRY = Bounds(10 * SECOND, 20 * SECOND, _retry(SECOND, 5 * MINUTE, 4))  # an admin
RECORD_LATE_REFUND = Bounds(30 * SECOND, timedelta(days=1), _retry(SECOND, MINUTE, 100))
# reconciliation outlasts an outage of minutes: a round is delayed, not failed
RECONCILE_ROUND = Bounds(10 * MINUTE, 15 * MINUTE, _retry(SECOND, MINUTE, 30), 2 * MINUTE)
# the placements' round: a round is due again in half a minute
PLACEMENTS_ROUND = Bounds(MINUTE, 2 * MINUTE, _retry(SECOND, 10 * SECOND, 10), 30 * SECOND)
SWEEP_CAPTURES = Bounds(
    10 * MINUTE, 30 * MINUTE, RetryPolicy(maximum_attempts=3), heartbeat=2 * MINUTE
)


async def db(name: str, arg: Any, summary: str, result_type: type[T] | None = None) -> T:
    """A database step, run locally by the workflow's worker."""
    result: T = await workflow.execute_local_activity(
        name, arg, result_type=result_type, summary=summary, **DB.options()
    )
    return result


async def partner(
    name: str, arg: Any, summary: str, bounds: Bounds, result_type: type[T] | None = None
) -> T:
    """A call to a partner (or to Temporal, or a long job): retried within its bounds."""
    result: T = await workflow.execute_activity(
        name,
        arg,
        result_type=result_type,
        summary=summary,
        heartbeat_timeout=bounds.heartbeat,
        **bounds.options(),
    )
    return result
