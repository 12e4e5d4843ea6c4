"""Wiring only: settings -> database and gateway -> Temporal client -> worker, and the
callback relay beside it."""

import asyncio
import logging

from temporalio.client import Client
from temporalio.worker import Worker

from activities.cases import CaseActivities
from activities.orders import OrderActivities
from gateways.payments import PaymentGatewayClient
from gateways.supplier import SupplierClient
from relay import Relay
from settings import Settings, get_settings
from store.db import Database
from temporal_client import connect
from workflows.after_sales import AfterSalesWorkflow
from workflows.order import OrderWorkflow
from workflows.orphan_payment import OrphanPaymentWorkflow

WORKFLOWS = [OrderWorkflow, OrphanPaymentWorkflow, AfterSalesWorkflow]


def build_worker(
    client: Client,
    settings: Settings,
    db: Database,
    gateway: PaymentGatewayClient | None,
    supplier: SupplierClient | None = None,
    activities: OrderActivities | None = None,
) -> Worker:
    acts = activities or OrderActivities(
        db, gateway, supplier, f"{settings.api_public_url}/webhooks/suppliers/kepler"
    )
    case_acts = CaseActivities(db, client, settings.task_queue)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=[
            acts.place_order,
            acts.accept_payment,
            acts.save_order,
            acts.refund_payment,
            acts.purchase_from_supplier,
            acts.cancel_supplier_order,
            case_acts.save_case,
            case_acts.start_case,
        ],
    )


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    settings = get_settings()
    db = Database(settings.database_url)
    gateway = PaymentGatewayClient(settings.gateway_url, settings.gateway_api_key)
    supplier = SupplierClient(settings.supplier_url, settings.supplier_api_key)
    client = await connect(lazy=False)  # a worker needs a connected client
    relay = asyncio.create_task(  # callbacks Temporal did not take at once
        Relay(db, client, settings.task_queue).run(settings.relay_every_seconds)
    )
    try:
        await build_worker(client, settings, db, gateway, supplier).run()
    finally:
        relay.cancel()
        await supplier.aclose()
        await gateway.aclose()
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
