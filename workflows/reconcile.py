"""The reconciliation job, started every few minutes by a Temporal Schedule."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.messages import ReconcileInput, ReconcileResult, SweepInput, SweepResult
    from workflows import calls, compat, ids


@workflow.defn(name="ReconcileWorkflow")
class ReconcileWorkflow:
    @workflow.run
    async def run(self, inp: ReconcileInput) -> ReconcileResult:
        if inp.placements_within_seconds is not None:  # the placements' round (its own schedule)
            placements: ReconcileResult = await calls.partner(
                ids.RECONCILE_PLACEMENTS,
                inp,
                "look for the last minutes' placements whose workflow never started",
                calls.PLACEMENTS_ROUND,
                ReconcileResult,
            )
            return placements
        result: ReconcileResult = await calls.partner(
            ids.RECONCILE_ORDERS,
            inp,
            "compare stored orders with running workflows",
            calls.RECONCILE_ROUND,
            ReconcileResult,
        )
        if workflow.patched(compat.SWEEP_CAPTURES):  # each round delivers what the ledger lacks
            swept: SweepResult = await calls.partner(
                ids.SWEEP_CAPTURES,
                SweepInput(
                    lookback_seconds=inp.lookback_hours * 3600, grace_seconds=inp.grace_seconds
                ),
                "compare the gateway's captures with the payments ledger",
                calls.SWEEP_CAPTURES,
                SweepResult,
            )
            result.captures_delivered = swept.delivered
        return result
