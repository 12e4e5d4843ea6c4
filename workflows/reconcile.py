"""The reconciliation job, started every few minutes by a Temporal Schedule."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain.messages import ReconcileInput, ReconcileResult
    from workflows import ids


@workflow.defn
class ReconcileWorkflow:
    @workflow.run
    async def run(self, inp: ReconcileInput) -> ReconcileResult:
        result: ReconcileResult = await workflow.execute_activity(
            ids.RECONCILE_ORDERS,
            inp,
            result_type=ReconcileResult,
            start_to_close_timeout=timedelta(minutes=10),
            schedule_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="compare stored orders with running workflows",
        )
        return result
