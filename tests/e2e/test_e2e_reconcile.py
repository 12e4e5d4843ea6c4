"""Reconciliation on the dev server: orders whose workflow an operator terminated are found
by comparing the stored orders with Temporal, and closed (locks released, money back) or,
past cancelling, carried on; running orders are left alone. And its schedule."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client, ScheduleActionStartWorkflow, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter

from api import messaging
from api.errors import Problem
from domain.messages import PlaceOrderInput, ReconcileInput, ReconcileResult
from domain.models import Address, LineRequest
from store import orders, placement
from store.db import Database
from tests.e2e.harness import ADDRESS, Stack, ok
from worker import ensure_schedules
from workflows import ids
from workflows.reconcile import ReconcileWorkflow

pytestmark = pytest.mark.e2e


async def _reconcile(stack: Stack, **inp: int) -> ReconcileResult:
    return await stack.temporal.execute_workflow(
        ReconcileWorkflow.run,
        ReconcileInput(**{"grace_seconds": 0, **inp}),
        id=f"reconcile-test-{uuid.uuid4().hex[:8]}",
        task_queue=stack.settings.task_queue,
    )


async def test_terminated_orders_are_closed_or_carried_on(stack: Stack) -> None:
    buyer = stack.buyer()
    await stack.top_up(buyer, 100_000)
    sku = await stack.put_sku({"WH-A": 10}, price_cents=1000)
    unpaid = await stack.placed(buyer, [(sku, 2)])
    paid = await stack.paid(buyer, [(sku, 3)])
    shipped = await stack.ship(await stack.paid(buyer, [(sku, 1)]))
    untouched = await stack.placed(buyer, [(sku, 1)])
    assert await stack.stock(sku) == {"WH-A": (6, 3)}  # 3 + 1 paid and deducted; 2 + 1 locked
    wallet = (await stack.wallet(buyer))["balance_cents"]

    for order in (unpaid, paid, shipped):
        handle = stack.temporal.get_workflow_handle(ids.order_workflow_id(order["id"]))
        await handle.terminate("pressed Terminate in the Web UI")

    result = await _reconcile(stack)
    ours = {unpaid["id"], paid["id"], shipped["id"]}
    assert ours <= set(result.repaired)
    assert untouched["id"] not in result.repaired

    closed = await stack.wait_order(
        buyer, unpaid["id"], lambda o: o["status"] == "CLOSED", "the unpaid order to close"
    )
    assert closed["close_reason"] == "WORKFLOW_LOST"
    refunded = await stack.wait_order(
        buyer, paid["id"], lambda o: o["status"] == "CLOSED", "the paid order to close"
    )
    assert (refunded["close_reason"], refunded["refunded_cents"]) == (
        "WORKFLOW_LOST",
        paid["total_cents"],
    )
    events = await stack.wait_events(
        buyer,
        shipped["id"],
        lambda es: es[-1]["type"] == "CANCEL_REFUSED",
        "the shipped order to be carried on",
    )
    assert events[-1]["data"]["reason"] == "WORKFLOW_LOST"
    assert events[-1]["actor"] == {"kind": "system", "id": "reconciler"}
    assert (await stack.wallet(buyer))["balance_cents"] == wallet + paid["total_cents"]
    assert await stack.stock(sku) == {"WH-A": (9, 1)}  # the 3 restored; the untouched lock

    # the carried-on order works again, and a second round finds nothing of ours to do
    received = ok(await stack.act(buyer, f"/orders/{shipped['id']}/confirm-receipt"))
    assert received["status"] == "COMPLETED"
    assert ours.isdisjoint((await _reconcile(stack)).repaired)
    untouched_handle = stack.temporal.get_workflow_handle(ids.order_workflow_id(untouched["id"]))
    assert (await untouched_handle.describe()).status is WorkflowExecutionStatus.RUNNING
    assert (await stack.order(buyer, untouched["id"]))["version"] == untouched["version"]


async def _place_without_workflow(stack: Stack, buyer_id: str, sku: str, ago: float = 0) -> str:
    """What the API does when it stops between placing an order and starting its workflow."""
    db = Database(stack.settings.database_url)
    try:
        order_id = f"never-started-{uuid.uuid4().hex[:8]}"
        await placement.place(
            db,
            PlaceOrderInput(
                order_id=order_id,
                buyer_id=buyer_id,
                lines=[LineRequest(sku=sku, quantity=2)],
                address=Address(**ADDRESS),
                timings=stack.settings.timings(),
                now=datetime.now(UTC) - timedelta(seconds=ago),
            ),
            stack.settings.max_unpaid_orders,
        )
    finally:
        await db.dispose()
    return order_id


async def test_a_placement_whose_workflow_never_started_is_closed(stack: Stack) -> None:
    """The API places an order in the database before it starts the order's workflow; if
    it stops in between (or Temporal is away: a 503 that names the order), reconciliation
    finds the order without a workflow and closes it, its stock released. The placements'
    round (every half minute) looks only at the last minutes' placements, the full round at
    all of them; an order whose workflow started is left alone by both."""
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 10}, price_cents=1000)
    started = await stack.placed(buyer, [(sku, 1)])
    fresh = await _place_without_workflow(stack, buyer.id, sku)
    old = await _place_without_workflow(stack, buyer.id, sku, ago=120)
    assert await stack.stock(sku) == {"WH-A": (10, 5)}

    result = await _reconcile(stack, placements_within_seconds=60)
    assert fresh in result.repaired
    assert old not in result.repaired and started["id"] not in result.repaired
    await stack.wait_order(buyer, fresh, lambda o: o["status"] == "CLOSED", "the fresh one closed")
    assert await stack.stock(sku) == {"WH-A": (10, 3)}

    result = await _reconcile(stack)
    assert old in result.repaired and started["id"] not in result.repaired
    closed = await stack.wait_order(
        buyer, old, lambda o: o["status"] == "CLOSED", "the old one to close"
    )
    assert closed["close_reason"] == "WORKFLOW_LOST"
    assert await stack.stock(sku) == {"WH-A": (10, 1)}
    assert (await stack.order(buyer, started["id"]))["version"] == started["version"]


async def test_the_reconciliation_schedules_are_created_once_and_kept_current(
    stack: Stack,
) -> None:
    settings = stack.settings.model_copy(update={"reconcile_every_seconds": 600})
    placements = stack.temporal.get_schedule_handle(ids.PLACEMENTS_SCHEDULE_ID)
    await ensure_schedules(stack.temporal, settings)
    await ensure_schedules(stack.temporal, settings)  # every worker start: no error, no copy
    handle = stack.temporal.get_schedule_handle(ids.RECONCILE_SCHEDULE_ID)
    described = await handle.describe()
    assert [i.every for i in described.schedule.spec.intervals] == [timedelta(seconds=600)]

    faster = settings.model_copy(update={"reconcile_every_seconds": 120})
    await ensure_schedules(stack.temporal, faster)
    described = await handle.describe()
    assert [i.every for i in described.schedule.spec.intervals] == [timedelta(seconds=120)]
    await handle.pause(note="the tests drive reconciliation themselves")
    await placements.pause(note="the tests drive reconciliation themselves")
    described = await placements.describe()
    assert [i.every for i in described.schedule.spec.intervals] == [timedelta(seconds=30)]
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    (inp,) = await stack.temporal.data_converter.decode(action.args)
    assert (inp["placements_within_seconds"], inp["grace_seconds"]) == (900, 20)


async def test_a_placement_its_client_retries_through_an_outage_is_left_open(
    stack: Stack,
) -> None:
    """A placement answered 503 because Temporal was away marks its order as just asked for:
    reconciliation's grace counts from the client's last attempt, so an order its client is
    still retrying is not closed under it when Temporal comes back (a full-size `make chaos`
    caught that race); an order nobody asks for again still is."""
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 10}, price_cents=1000)
    retried = await _place_without_workflow(stack, buyer.id, sku, ago=120)
    abandoned = await _place_without_workflow(stack, buyer.id, sku, ago=120)
    db = Database(stack.settings.database_url)
    try:
        async with db.sessions() as session:
            state = await orders.get(session, retried)
        assert state is not None
        away = await Client.connect(  # nothing listens there
            "127.0.0.1:9", lazy=True, data_converter=pydantic_data_converter
        )
        with pytest.raises(Problem) as refused:
            await messaging.start_placed(
                away, db, stack.settings.task_queue, [state], f"order {retried}"
            )
        assert (refused.value.status, refused.value.code) == (503, "TEMPORAL_UNAVAILABLE")

        result = await _reconcile(stack, placements_within_seconds=600, grace_seconds=20)
        assert abandoned in result.repaired and retried not in result.repaired
        # the client's next attempt, Temporal back: its order starts and goes on
        await messaging.start_placed(
            stack.temporal, db, stack.settings.task_queue, [state], f"order {retried}"
        )
        top = await stack.top_up(buyer, 10_000)
        assert top["balance_cents"] >= 2000
        paid = ok(await stack.act(buyer, f"/orders/{retried}/pay", {"channel": "balance"}))
        assert paid["status"] == "PENDING_SHIPMENT"
        closed = await stack.wait_order(
            buyer, abandoned, lambda o: o["status"] == "CLOSED", "the abandoned one closed"
        )
        assert closed["close_reason"] == "WORKFLOW_LOST"
    finally:
        await db.dispose()
