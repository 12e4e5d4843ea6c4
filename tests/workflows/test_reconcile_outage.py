"""A reconciliation round outlasts a database outage of minutes (time skipped), and gives up
within its bound when the outage lasts longer."""

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.messages import ReconcileInput, ReconcileResult, SweepInput, SweepResult
from store.db import Database, unreachable
from tests.workflows.conftest import record
from workflows import ids
from workflows.calls import RECONCILE_ROUND
from workflows.reconcile import ReconcileWorkflow

NOWHERE = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1


class DatabaseAwayFor:
    """The round's activity while the database is away for `outage` after the round began:
    each attempt meanwhile reaches for the database and fails as the real one does."""

    def __init__(self, outage: timedelta) -> None:
        self.outage = outage
        self.away = Database(NOWHERE)
        self.attempts = 0
        self.errors: list[BaseException] = []

    @activity.defn(name=ids.RECONCILE_ORDERS)
    async def reconcile_orders(self, inp: ReconcileInput) -> ReconcileResult:
        info = activity.info()
        self.attempts = info.attempt
        if info.current_attempt_scheduled_time - info.scheduled_time < self.outage:
            try:
                async with self.away.sessions() as session:
                    await session.execute(text("SELECT 1"))
            except Exception as err:
                self.errors.append(err)
                raise
        return ReconcileResult(checked=0, repaired=[])

    @activity.defn(name=ids.SWEEP_CAPTURES)
    async def sweep_captures(self, inp: SweepInput) -> SweepResult:
        return SweepResult(checked=0, delivered=[])  # no gateway here: nothing captured


async def reconcile_through(env: WorkflowEnvironment, acts: DatabaseAwayFor) -> None:
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    try:
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[ReconcileWorkflow],
            activities=[acts.reconcile_orders, acts.sweep_captures],
        ):
            handle = await env.client.start_workflow(
                ReconcileWorkflow.run, ReconcileInput(), id=f"reconcile-{queue}", task_queue=queue
            )
            assert await handle.result() == ReconcileResult(checked=0, repaired=[])
            await record(handle, "reconcile_round_outlasted_an_outage")
    finally:
        await acts.away.dispose()


async def test_a_round_outlasts_a_database_outage_of_minutes(ts_env: WorkflowEnvironment) -> None:
    acts = DatabaseAwayFor(timedelta(minutes=5))
    await reconcile_through(ts_env, acts)
    assert acts.attempts > 3  # three attempts were all a round had before
    assert acts.errors and all(unreachable(err) for err in acts.errors)


async def test_a_round_gives_up_within_its_bound(ts_env: WorkflowEnvironment) -> None:
    acts = DatabaseAwayFor(RECONCILE_ROUND.patience + timedelta(minutes=5))
    with pytest.raises(WorkflowFailureError) as failed:
        await reconcile_through(ts_env, acts)
    cause = failed.value.cause
    assert isinstance(cause, ActivityError)  # its last failure: the database still away
    assert isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "ConnectionRefusedError"
    # stopped by the 15 minutes, not by the attempts
    assert 3 < acts.attempts < (RECONCILE_ROUND.retry.maximum_attempts or 0)
