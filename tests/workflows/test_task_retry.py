"""A workflow task that saved and then failed (the worker died there) is tried again, and the
retry decides otherwise because a deadline passed in between: the database must end equal to
the workflow, not to the snapshot the failed task left (on the time-skipping server)."""

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.orders import OrderActivities
from domain.messages import OrderWorkflowInput
from domain.models import OrderState
from domain.order import Change
from gateways.payments import PaymentGatewayClient
from runtime.settings import Settings
from store.db import Database
from store.tables import OrderEventRow, OrderRow
from tests.conftest import Supplier
from tests.workflows.conftest import Shop
from worker import WORKFLOWS, build_worker
from workflows.order import OrderWorkflow

FAIL_UNTIL: list[datetime] = []  # the task fails after saving a receipt before this time


@workflow.defn(name="OrderWorkflow", sandboxed=False)
class DiesAfterSaving(OrderWorkflow):
    """The order's workflow, whose worker dies right after a receipt is saved while the
    test says so: the task fails after its database write, and is tried again."""

    @workflow.init
    def __init__(self, inp: OrderWorkflowInput) -> None:
        super().__init__(inp)

    @workflow.run
    async def run(self, inp: OrderWorkflowInput) -> OrderState | None:
        return await super().run(inp)

    async def _commit(self, change: Change, **effects: object) -> bool:
        saved = await super()._commit(change, **effects)  # type: ignore[arg-type]
        dying = FAIL_UNTIL and workflow.now() < FAIL_UNTIL[0]
        if change.event.type == "RECEIPT_CONFIRMED" and dying:
            raise RuntimeError("the worker died after the save")  # fails the task
        return saved


@pytest.fixture
async def worker(
    ts_env: WorkflowEnvironment,
    settings: Settings,
    sqlite_db: Database,
    gateway: PaymentGatewayClient,
    supplier: Supplier,
) -> AsyncIterator[Worker]:
    acts = OrderActivities(sqlite_db, gateway, supplier.client)
    workflows = [DiesAfterSaving if w is OrderWorkflow else w for w in WORKFLOWS]
    w = build_worker(
        ts_env.client, settings, sqlite_db, gateway, activities=acts, workflows=workflows
    )
    async with w:
        yield w


async def stored(shop: Shop, order_id: str) -> OrderRow:
    async with shop.db.sessions() as s:
        row = await s.get(OrderRow, order_id)
    assert row is not None
    return row


async def test_a_retried_task_that_decides_otherwise_replaces_the_failed_tasks_write(
    shop: Shop,
) -> None:
    order = await shop.place([("MUG", 1), ("BOOK", 1)])  # one own package, one drop-shipped
    paid = await shop.pay(order)
    first, second = paid["packages"]
    await shop.ship(order["id"], first["id"], "P1")
    await shop.env.sleep(timedelta(seconds=2))
    shipped = await shop.ship(order["id"], second["id"], "P2")
    d1, d2 = sorted(datetime.fromisoformat(p["auto_confirm_at"]) for p in shipped["packages"])
    await shop.env.sleep(d1 - await shop.env.get_current_time() - timedelta(seconds=1))
    FAIL_UNTIL[:] = [d2]
    try:
        # from here time runs as a clock does: the first package's auto-confirm fires; its
        # task saves "one package received" and dies, again, until the second deadline has
        # passed too; the task that then completes receives both packages at once
        saw_the_failed_write = False
        for _ in range(750):  # bounded: 15 s; the database alone (a client call would skip time)
            row = await stored(shop, order["id"])
            saw_the_failed_write |= row.status == "SHIPPED" and row.version > shipped["version"]
            if row.status == "COMPLETED":
                break
            await asyncio.sleep(0.02)
        state = await shop.settle(order["id"])
    finally:
        FAIL_UNTIL.clear()
    assert saw_the_failed_write  # the failed task's snapshot was there for a while

    assert state.status == "COMPLETED" and state.version == shipped["version"] + 1
    row = await stored(shop, order["id"])
    assert (row.status, row.version) == (state.status, state.version)
    assert OrderState.model_validate(row.snapshot) == state
    async with shop.db.sessions() as s:
        events = list(
            await s.scalars(
                select(OrderEventRow)
                .where(OrderEventRow.order_id == order["id"])
                .order_by(OrderEventRow.id)
            )
        )
    last = [e for e in events if e.version == state.version]
    assert [(e.type, sorted(e.data["package_ids"])) for e in last] == [
        ("RECEIPT_CONFIRMED", sorted([first["id"], second["id"]]))
    ]
