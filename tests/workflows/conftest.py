"""Workflow tests: the real API in process (ASGI) against the time-skipping server."""

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from api.auth import Role, mint
from domain.models import FreightPolicy, FreightRule, OrderState, ProductType, SkuInfo, StockPolicy
from domain.order import due_purchases
from gateways.payments import PaymentGatewayClient
from runtime.settings import Settings
from sandboxes.signed import post_signed
from scripts.seed import Catalog, seed_catalog
from store.blobs import FileBlobStore
from store.db import Database
from store.tables import StockRow
from tests.conftest import PAYMENT_SECRET, Supplier
from workflows.ids import order_workflow_id
from workflows.order import OrderWorkflow

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
ADDRESS = {
    "name": "Li Lei",
    "phone": "+86 138 0000 0000",
    "line1": "1 Nanjing Rd",
    "city": "Shanghai",
    "country": "CN",
}


@dataclass
class Shop:
    """One test's world: the API client, its database and tokens."""

    http: httpx.AsyncClient
    db: Database
    env: WorkflowEnvironment
    settings: Settings
    gateway: PaymentGatewayClient
    buyer: str
    merchant: str
    started: list[str]
    supplier: Supplier
    buyer_id: str = ""

    def as_buyer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.buyer}"}

    def as_merchant(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.merchant}"}

    async def place(self, lines: list[tuple[str, int]], key: str | None = None) -> dict[str, Any]:
        headers = self.as_buyer() | ({"Idempotency-Key": key} if key else {})
        body = {"lines": [{"sku": s, "quantity": q} for s, q in lines], "address": ADDRESS}
        r = await self.http.post("/orders", json=body, headers=headers)
        assert r.status_code == 201, r.text
        self.started.append(order_workflow_id(r.json()["id"]))
        return dict(r.json())

    async def order(self, order_id: str) -> dict[str, Any]:
        r = await self.http.get(f"/orders/{order_id}", headers=self.as_buyer())
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def post(
        self, path: str, body: dict[str, Any] | None = None, *, merchant: bool = False
    ) -> httpx.Response:
        headers = self.as_merchant() if merchant else self.as_buyer()
        return await self.http.post(path, json=body or {}, headers=headers)

    async def pay_callback(
        self, order: dict[str, Any], *, amount: int | None = None, txn_id: str | None = None
    ) -> httpx.Response:
        """What the gateway sends when the buyer has paid: a signed webhook."""
        payload = {
            "event_id": f"evt-{uuid.uuid4().hex}",
            "order_id": order["id"],
            "txn_id": txn_id or f"alipay-{uuid.uuid4().hex}",
            "channel": "alipay",
            "amount_cents": order["total_cents"] if amount is None else amount,
            "paid_at": datetime.now(UTC).isoformat(),
        }
        self.started.append(f"orphan-payment-{payload['txn_id']}")
        return await post_signed("/webhooks/payments", payload, PAYMENT_SECRET, client=self.http)

    def handle(self, order_id: str) -> WorkflowHandle[OrderWorkflow, OrderState | None]:
        return self.env.client.get_workflow_handle_for(
            OrderWorkflow.run, order_workflow_id(order_id)
        )

    async def settle(self, order_id: str) -> OrderState:
        """The order once every message sent so far is handled: a no-op update queues
        behind earlier handlers on the workflow's lock (no polling)."""
        handle = self.handle(order_id)
        try:
            await self._purchases_done(handle)
            # twice: a timer that fired with the first may only then be queued on the lock
            await handle.execute_update(OrderWorkflow.place)
            await self._refunds_done(handle)
            await handle.execute_update(OrderWorkflow.place)
            state = await handle.query(OrderWorkflow.current)
            assert state is not None
            return state
        except RPCError:  # the workflow has ended
            final = await handle.result()
        assert final is not None
        return final

    async def _purchases_done(self, handle: WorkflowHandle[OrderWorkflow, Any]) -> None:
        """Supplier purchases run outside the order's lock: wait (bounded) until none that
        is due is still in flight."""
        for _ in range(500):
            state = await handle.query(OrderWorkflow.current)
            now = await self.env.get_current_time()
            if state is None or not due_purchases(state, now):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("a supplier purchase never finished")

    async def _refunds_done(self, handle: WorkflowHandle[OrderWorkflow, Any]) -> None:
        """Refunds are made outside the order's lock: wait (bounded) until the channel has
        answered every PENDING one."""
        for _ in range(500):
            state = await handle.query(OrderWorkflow.current)
            if state is None or all(r.status != "PENDING" for r in state.refunds):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("a refund never got the channel's answer")

    async def carrier_callback(self, carrier: str, tracking_no: str, event: str) -> httpx.Response:
        payload = {
            "event_id": f"evt-{uuid.uuid4().hex}",
            "carrier": carrier,
            "tracking_no": tracking_no,
            "event": event,
            "at": datetime.now(UTC).isoformat(),
        }
        secret = self.settings.carrier_webhook_secret
        return await post_signed("/webhooks/carriers", payload, secret, client=self.http)

    async def pay(self, order: dict[str, Any], channel: str = "balance") -> dict[str, Any]:
        r = await self.post(f"/orders/{order['id']}/pay", {"channel": channel})
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def ship(
        self, order_id: str, package_id: str, tracking_no: str | None = None
    ) -> dict[str, Any]:
        body = {"carrier": "SF", "tracking_no": tracking_no} if tracking_no else {}
        r = await self.post(f"/orders/{order_id}/packages/{package_id}/ship", body, merchant=True)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def wallet(self) -> dict[str, Any]:
        buyer_id = self.buyer_id
        r = await self.http.get(f"/wallets/{buyer_id}", headers=self.as_buyer())
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def stock(self, sku: str) -> dict[str, tuple[int, int]]:
        async with self.db.sessions() as s:
            rows = (await s.execute(StockRow.__table__.select().where(StockRow.sku == sku))).all()
        return {r.location: (r.on_hand, r.locked) for r in rows}


SKUS: Catalog = [
    (
        SkuInfo(
            sku="TEA",
            title="Tea",
            price_cents=5900,
            product_type=ProductType.SELF,
            stock_policy=StockPolicy.LOCK_ON_ORDER,
        ),
        {"WH-A": 3, "WH-B": 5},
    ),
    (
        SkuInfo(
            sku="MUG",
            title="Mug",
            price_cents=2500,
            product_type=ProductType.SELF,
            stock_policy=StockPolicy.DEDUCT_ON_PAYMENT,
        ),
        {"WH-A": 10},
    ),
    (
        SkuInfo(
            sku="FLASH",
            title="Flash teapot",
            price_cents=9900,
            product_type=ProductType.SELF,
            stock_policy=StockPolicy.LOCK_ON_ORDER,
            payment_window_minutes=15,
        ),
        {"WH-B": 2},
    ),
    (
        SkuInfo(
            sku="BOOK",
            title="Book",
            price_cents=3000,
            product_type=ProductType.DROPSHIP,
            stock_policy=StockPolicy.LOCK_ON_ORDER,
        ),
        {"VENDOR-1": 10},
    ),
    (
        SkuInfo(
            sku="KBOX",
            title="Kepler gift box",
            price_cents=4000,
            product_type=ProductType.KEPLER,
            stock_policy=StockPolicy.LOCK_ON_ORDER,
        ),
        {"SUP-JD": 20},
    ),
    (
        SkuInfo(
            sku="CARD",
            title="Gift card",
            price_cents=1000,
            product_type=ProductType.VIRTUAL,
            stock_policy=StockPolicy.DEDUCT_ON_PAYMENT,
        ),
        {"DIGITAL": 100},
    ),
    (
        SkuInfo(
            sku="GIFT",
            title="Free sample",
            price_cents=0,
            product_type=ProductType.DROPSHIP,
            stock_policy=StockPolicy.LOCK_ON_ORDER,
        ),
        {"VENDOR-2": 10},
    ),
]


async def seed(db: Database, buyer_id: str) -> None:
    rule = FreightRule(flat_cents=800, free_above_cents=10_000, policy=FreightPolicy.ONE_PACKAGE)
    async with db.transaction() as s:
        await seed_catalog(s, SKUS, rule, {buyer_id: (1_000_000, 500_000)})


@pytest.fixture
async def shop(
    ts_env: WorkflowEnvironment,
    worker: Worker,
    settings: Settings,
    sqlite_db: Database,
    gateway: PaymentGatewayClient,
    supplier: Supplier,
    tmp_path: Path,
) -> AsyncIterator[Shop]:
    buyer_id = f"b-{uuid.uuid4().hex[:6]}"
    await seed(sqlite_db, buyer_id)
    app = create_app(
        settings,
        temporal=ts_env.client,
        db=sqlite_db,
        gateway=gateway,
        blobs=FileBlobStore(tmp_path / "blobs"),
        clock=ts_env.get_current_time,  # the skipped time the workflows live in
    )
    supplier.callbacks.target = app  # the sandbox supplier calls this API back
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test"
        ) as http,
    ):
        world = Shop(
            http,
            sqlite_db,
            ts_env,
            settings,
            gateway,
            mint(settings.jwt_secret, buyer_id, Role.BUYER),
            mint(settings.jwt_secret, "m-1", Role.MERCHANT),
            [],
            supplier,
            buyer_id,
        )
        yield world
    # a workflow left running with no worker would stall time skipping for later tests
    for workflow_id in world.started:
        with contextlib.suppress(RPCError):
            await ts_env.client.get_workflow_handle(workflow_id).terminate("test over")


async def record(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """With RECORD_HISTORIES=1, keep this run's history for the replay test. A recorded
    history is never overwritten: a changed path gets a new name (and a patch id)."""
    if os.environ.get("RECORD_HISTORIES") == "1":
        path = HISTORIES / f"{name}.json"
        if path.exists():
            raise FileExistsError(
                f"{path.name} is recorded already and is never overwritten: record the new "
                "path under a new name (and version the change with workflow.patched)"
            )
        history = await handle.fetch_history()
        path.write_text(history.to_json())
