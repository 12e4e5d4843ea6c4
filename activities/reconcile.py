"""Reconciliation: stored orders whose workflow was terminated or lost are started again, to
be closed (locks released, payment refunded) or, past cancelling, carried on."""

import logging
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from domain.messages import ReconcileInput, ReconcileResult, order_input
from domain.models import OrderState, OrderStatus
from store import orders
from store.db import Database
from workflows import details, ids
from workflows.order import OrderWorkflow

log = logging.getLogger(__name__)
ORDERS = "WorkflowType = 'OrderWorkflow'"
ENDED_BY_HAND = "ExecutionStatus IN ('Terminated', 'Canceled', 'Failed', 'TimedOut')"


class ReconcileActivities:
    def __init__(self, db: Database, client: Client, task_queue: str) -> None:
        self.db = db
        self.client = client
        self.task_queue = task_queue

    @activity.defn(name=ids.RECONCILE_ORDERS)
    async def reconcile_orders(self, inp: ReconcileInput) -> ReconcileResult:
        now = datetime.now(UTC)
        async with self.db.sessions() as session:
            in_flight = await orders.in_flight(session, now - timedelta(seconds=inp.grace_seconds))
        running = await self._order_ids(f"{ORDERS} AND ExecutionStatus = 'Running'")
        since = (now - timedelta(hours=inp.lookback_hours)).isoformat()
        ended = await self._order_ids(f"{ORDERS} AND {ENDED_BY_HAND} AND CloseTime > '{since}'")
        suspects = sorted({o for o in in_flight if o not in running} | ended)
        repaired = []
        for order_id in suspects:
            activity.heartbeat(order_id)
            if await self._repair(order_id):
                repaired.append(order_id)
        if repaired:
            log.warning("reconciliation started %d lost orders again: %s", len(repaired), repaired)
        return ReconcileResult(checked=len(in_flight), repaired=repaired)

    @activity.defn(name=ids.RECONCILE_PLACEMENTS)
    async def reconcile_placements(self, inp: ReconcileInput) -> ReconcileResult:
        """The orders placed in the last `placements_within_seconds` whose workflow never
        started: one read of the database and one visibility query (whatever the workflows'
        status) per round; only the few it does not list are asked about one by one."""
        assert inp.placements_within_seconds is not None
        now = datetime.now(UTC)
        since = now - timedelta(seconds=inp.placements_within_seconds)
        async with self.db.sessions() as session:
            placed = await orders.in_flight(
                session, now - timedelta(seconds=inp.grace_seconds), placed_after=since
            )
        if not placed:
            return ReconcileResult(checked=0, repaired=[])
        # a workflow starts after its order is placed: listed by its start time
        started = await self._order_ids(f"{ORDERS} AND StartTime > '{since.isoformat()}'")
        repaired = []
        for order_id in sorted(set(placed) - started):
            activity.heartbeat(order_id)
            if await self._repair(order_id):
                repaired.append(order_id)
        if repaired:
            log.warning(
                "reconciliation closed %d unstarted placements: %s", len(repaired), repaired
            )
        return ReconcileResult(checked=len(placed), repaired=repaired)

    async def _order_ids(self, query: str) -> set[str]:
        prefix = len(ids.ORDER_WORKFLOW_PREFIX)
        return {w.id[prefix:] async for w in self.client.list_workflows(query, page_size=1000)}

    async def _repair(self, order_id: str) -> bool:
        """Start the order's workflow again if its last run is not running (visibility may
        lag: ask the workflow itself), and the stored order is not over."""
        handle = self.client.get_workflow_handle(ids.order_workflow_id(order_id))
        try:
            status = (await handle.describe()).status
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            status = None  # gone: deleted, or past retention
        if status is WorkflowExecutionStatus.RUNNING:
            return False
        async with self.db.sessions() as session:  # read after describe: its last write is in
            state = await orders.get(session, order_id)
        if state is None or not _needs_workflow(state, status):
            return False
        await self.client.start_workflow(
            OrderWorkflow.run,
            order_input(state, resume=True),
            id=ids.order_workflow_id(order_id),
            task_queue=self.task_queue,
            search_attributes=TypedSearchAttributes(details.start_attributes(state)),
            static_summary=f"Order {order_id} started again by reconciliation",
        )
        return True


def _needs_workflow(state: OrderState, status: WorkflowExecutionStatus | None) -> bool:
    if state.status is OrderStatus.CLOSED:
        return False
    # a completed order whose workflow ended by itself (its after-sales window over) is done
    return not (
        state.status is OrderStatus.COMPLETED and status is WorkflowExecutionStatus.COMPLETED
    )
