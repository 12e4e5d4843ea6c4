"""After-sales case activities: start a case's workflow; save a case's snapshot."""

from temporalio import activity
from temporalio.client import Client
from temporalio.common import MetricMeter, WorkflowIDConflictPolicy

from activities.txn import txn
from domain.after_sales import AfterSalesCase
from runtime.metrics import BusinessMetrics
from store import cases
from store.db import Database
from workflows import case_details, ids
from workflows.after_sales import AfterSalesWorkflow


class CaseActivities:
    def __init__(
        self,
        db: Database,
        client: Client,
        task_queue: str,
        metrics: BusinessMetrics | None = None,
    ) -> None:
        self.db = db
        self.client = client
        self.task_queue = task_queue
        self.metrics = metrics or BusinessMetrics(MetricMeter.noop)

    @activity.defn(name=ids.START_CASE)
    async def start_case(self, case: AfterSalesCase) -> None:
        """Idempotent on the case id: a retry finds the workflow already running."""
        await self.client.start_workflow(
            AfterSalesWorkflow.run,
            case,
            id=ids.case_workflow_id(case.id),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=case_details.initial_attributes(case),
            static_summary=case_details.summary(case),
        )

    @activity.defn(name=ids.SAVE_CASE)
    async def save_case(self, case: AfterSalesCase) -> None:
        async with txn(self.db) as session:
            await cases.save(session, case)
        self.metrics.case(case.status.value)
