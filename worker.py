"""Wiring only: settings -> database and gateway -> Temporal client -> worker, and the
callback relay beside it."""

import asyncio
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
)
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.cases import CaseActivities
from activities.orders import OrderActivities
from activities.payments import PaymentActivities
from activities.reconcile import ReconcileActivities
from domain.messages import ReconcileInput
from gateways.payments import PaymentGatewayClient
from gateways.supplier import SupplierClient
from runtime import logs
from runtime.metrics import BusinessMetrics
from runtime.relay import Relay
from runtime.settings import Settings, get_settings
from runtime.temporal_client import connect
from store.db import Database
from workflows import ids
from workflows.after_sales import AfterSalesWorkflow
from workflows.order import OrderWorkflow
from workflows.orphan_payment import OrphanPaymentWorkflow
from workflows.reconcile import ReconcileWorkflow

PLACEMENTS_WINDOW_SECONDS = 15 * 60  # older placements are the full round's
WORKFLOWS = [OrderWorkflow, OrphanPaymentWorkflow, AfterSalesWorkflow, ReconcileWorkflow]


def build_worker(
    client: Client,
    settings: Settings,
    db: Database,
    gateway: PaymentGatewayClient | None,
    supplier: SupplierClient | None = None,
    activities: OrderActivities | None = None,
    meter: MetricMeter | None = None,
    workflows: list[type] | None = None,  # a test's stand-in of one of WORKFLOWS
) -> Worker:
    metrics = BusinessMetrics(meter or MetricMeter.noop)
    acts = activities or OrderActivities(
        db,
        gateway,
        supplier,
        f"{settings.api_public_url}/webhooks/suppliers/kepler",
        metrics,
        settings.max_unpaid_orders,
    )
    case_acts = CaseActivities(db, client, settings.task_queue, metrics)
    reconcile = ReconcileActivities(db, client, settings.task_queue)
    pays = PaymentActivities(db, gateway, Relay(db, client, settings.task_queue), metrics)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=workflows or WORKFLOWS,
        # the sandbox re-imports each workflow's module for every new run (a profile put it
        # at an eighth of the worker's time); the tests run sandboxed and replay recorded
        # histories, which is what keeps the workflow code deterministic
        workflow_runner=SandboxedWorkflowRunner()
        if settings.workflow_sandbox
        else UnsandboxedWorkflowRunner(),
        activities=[
            acts.place_order,
            acts.accept_payment,
            acts.save_order,
            acts.close_unless_intents,
            acts.note_order_error,
            acts.load_order,
            acts.refund_payment,
            acts.purchase_from_supplier,
            acts.cancel_supplier_order,
            case_acts.save_case,
            case_acts.start_case,
            reconcile.reconcile_orders,
            reconcile.reconcile_placements,
            pays.settle_open_intents,
            pays.sweep_captures,
            pays.refund_late_payment,
            pays.record_late_refund,
        ],
    )


async def ensure_schedules(client: Client, settings: Settings) -> None:
    """The reconciliation schedules, created, or brought up to date with the settings (every
    worker does it at start: the same schedules each time): the full round, and the cheap
    round over the last quarter hour's placements."""
    await _ensure_schedule(
        client,
        ids.RECONCILE_SCHEDULE_ID,
        ids.RECONCILE_WORKFLOW_ID,
        ReconcileInput(grace_seconds=settings.reconcile_grace_seconds),
        settings.reconcile_every_seconds,
        settings.task_queue,
    )
    await _ensure_schedule(
        client,
        ids.PLACEMENTS_SCHEDULE_ID,
        ids.PLACEMENTS_WORKFLOW_ID,
        ReconcileInput(
            grace_seconds=settings.reconcile_placements_grace_seconds,
            placements_within_seconds=PLACEMENTS_WINDOW_SECONDS,
        ),
        settings.reconcile_placements_every_seconds,
        settings.task_queue,
    )


async def _ensure_schedule(
    client: Client,
    schedule_id: str,
    workflow_id: str,
    inp: ReconcileInput,
    every_seconds: int,
    task_queue: str,
) -> None:
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            ReconcileWorkflow.run, inp, id=workflow_id, task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=every_seconds))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(schedule_id)
        await handle.update(lambda _: ScheduleUpdate(schedule=schedule))


async def main() -> None:
    logs.setup("worker")
    settings = get_settings()
    runtime = None
    if settings.metrics_bind:  # the SDK serves its metrics and ours on one /metrics
        runtime = Runtime(
            telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=settings.metrics_bind))
        )
    meter = runtime.metric_meter if runtime else None
    db = Database(settings.database_url, count=BusinessMetrics(meter).round_trip if meter else None)
    gateway = PaymentGatewayClient(settings.gateway_url, settings.gateway_api_key)
    supplier = SupplierClient(settings.supplier_url, settings.supplier_api_key)
    client = await connect(lazy=False, **({"runtime": runtime} if runtime else {}))
    await ensure_schedules(client, settings)
    relay = asyncio.create_task(  # callbacks Temporal did not take at once
        Relay(db, client, settings.task_queue).run(settings.relay_every_seconds)
    )
    try:
        await build_worker(client, settings, db, gateway, supplier, meter=meter).run()
    finally:
        relay.cancel()
        await supplier.aclose()
        await gateway.aclose()
        await db.dispose()


def run() -> None:
    """`orders-worker`: one worker process (the standard TEMPORAL_* and ORDERS_* settings)."""
    asyncio.run(main())


if __name__ == "__main__":
    run()
