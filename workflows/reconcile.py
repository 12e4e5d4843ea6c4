"""The reconciliation job, started every few minutes by a Temporal Schedule."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain.messages import ReconcileInput, ReconcileResult, SweepInput, SweepResult
    from workflows import ids

SWEEP_PATCH = "reconcile-sweeps-captures"  # each round also delivers captures the ledger lacks


# a database or Temporal outage of minutes delays a round, it does not fail it: retried with
# backoff up to a minute apart, for at most 15 minutes and 30 attempts
OUTLAST_OUTAGES = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=30,
)
ROUND_PATIENCE = timedelta(minutes=15)


@workflow.defn
class ReconcileWorkflow:
    @workflow.run
    async def run(self, inp: ReconcileInput) -> ReconcileResult:
        result: ReconcileResult = await workflow.execute_activity(
            ids.RECONCILE_ORDERS,
            inp,
            result_type=ReconcileResult,
            start_to_close_timeout=timedelta(minutes=10),
            schedule_to_close_timeout=ROUND_PATIENCE,
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=OUTLAST_OUTAGES,
            summary="compare stored orders with running workflows",
        )
        if workflow.patched(SWEEP_PATCH):
            swept: SweepResult = await workflow.execute_activity(
                ids.SWEEP_CAPTURES,
                SweepInput(
                    lookback_seconds=inp.lookback_hours * 3600, grace_seconds=inp.grace_seconds
                ),
                result_type=SweepResult,
                start_to_close_timeout=timedelta(minutes=10),
                schedule_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary="compare the gateway's captures with the payments ledger",
            )
            result.captures_delivered = swept.delivered
        return result
