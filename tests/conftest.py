"""Shared fixtures: fresh databases (SQLite and PostgreSQL, both migrated by alembic), the
time-skipping Temporal server, and a worker per test on its own task queue.

PostgreSQL is required, not optional: ORDERS_TEST_POSTGRES_URL (default: the local server,
user postgres, database test) must be reachable, or the Postgres tests fail — CI never skips.
"""

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.orders import OrderActivities
from domain.messages import PurchaseInput
from gateways.payments import PaymentGatewayClient
from gateways.supplier import SupplierClient
from runtime.settings import Settings
from sandboxes.payments import create_app as create_sandbox
from sandboxes.supplier import create_app as create_supplier_sandbox
from store.db import Database
from store.migrate import upgrade
from worker import build_worker
from workflows import ids
from workflows.ids import SEARCH_ATTRIBUTES

BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"
PG_URL = os.environ.get(
    "ORDERS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
GATEWAY_KEY = "test-gateway-key"
PAYMENT_SECRET = "test-payment-secret"
SUPPLIER_KEY = "test-supplier-key"
SUPPLIER_SECRET = "test-supplier-secret"


def binary(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: run `make test` (it installs the dev server)")
    return found


# ---- databases ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


async def _pg_exec(sql: str) -> None:
    engine = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


def _pg_url(name: str) -> str:
    return PG_URL.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
async def pg_template() -> AsyncIterator[str]:
    name = f"orders_tmpl_{os.getpid()}"
    try:
        await _pg_exec(f"DROP DATABASE IF EXISTS {name}")
    except OSError as err:
        pytest.fail(f"PostgreSQL at {PG_URL} is required for these tests: {err}")
    await _pg_exec(f"CREATE DATABASE {name}")
    await asyncio.to_thread(upgrade, _pg_url(name))
    yield name
    await _pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def fresh_db_url(
    kind: str, tmp_path: Path, sqlite_template: Path, pg_template: str | None
) -> tuple[str, str | None]:
    if kind == "sqlite":
        path = tmp_path / "orders.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}", None
    assert pg_template is not None
    name = f"orders_t_{uuid.uuid4().hex[:12]}"
    await _pg_exec(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    return _pg_url(name), name


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, pg_template: str
) -> AsyncIterator[Database]:
    """A migrated, empty database of each kind."""
    template = pg_template if request.param == "postgres" else None
    url, pg_name = await fresh_db_url(request.param, tmp_path, sqlite_template, template)
    database = Database(url)
    yield database
    await database.dispose()
    if pg_name:
        await _pg_exec(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")


@pytest.fixture
async def pg_db(tmp_path: Path, sqlite_template: Path, pg_template: str) -> AsyncIterator[Database]:
    """A migrated, empty PostgreSQL database (for concurrency tests)."""
    url, pg_name = await fresh_db_url("postgres", tmp_path, sqlite_template, pg_template)
    database = Database(url, pool_size=60, max_overflow=10)
    yield database
    await database.dispose()
    await _pg_exec(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")


@pytest.fixture
async def sqlite_db(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Database]:
    url, _ = await fresh_db_url("sqlite", tmp_path, sqlite_template, None)
    database = Database(url)
    yield database
    await database.dispose()


# ---- the payment gateway sandbox, in process ----------------------------------------------


@pytest.fixture
async def gateway() -> AsyncIterator[PaymentGatewayClient]:
    """The real client against the sandbox gateway app (no sockets, no callbacks)."""
    sandbox = create_sandbox(
        PAYMENT_SECRET, GATEWAY_KEY, public_url="http://gateway.test", deliver=False
    )
    client = PaymentGatewayClient(
        "http://gateway.test", GATEWAY_KEY, transport=httpx.ASGITransport(app=sandbox)
    )
    client.sandbox = sandbox  # type: ignore[attr-defined]  # tests inspect the sandbox
    yield client
    await client.aclose()


class LateApp:
    """An ASGI app whose target is set later: the sandbox supplier's callbacks reach the API
    that a later fixture builds."""

    def __init__(self) -> None:
        self.target: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.target is not None, "no API is listening for supplier callbacks"
        await self.target(scope, receive, send)


@dataclass
class Supplier:
    """The real supplier client against the sandbox supplier, in process."""

    client: SupplierClient
    sandbox: FastAPI
    callbacks: LateApp

    async def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.sandbox), base_url="http://supplier.test"
        ) as http:
            r = await http.request(
                method, path, json=body, headers={"Authorization": f"Bearer {SUPPLIER_KEY}"}
            )
        assert r.status_code < 300, r.text
        return r.json()

    async def calls(self) -> list[dict[str, Any]]:
        body = await self._admin("GET", "/v1/_calls")
        return list(body["calls"] if isinstance(body, dict) else body)

    async def orders_for(self, external_ref: str) -> list[dict[str, Any]]:
        body = await self._admin("GET", f"/v1/orders?external_ref={external_ref}")
        return list(body["orders"] if isinstance(body, dict) else body)

    async def faults(self, **faults: object) -> None:
        await self._admin("POST", "/v1/_faults", dict(faults))

    async def advance(self, supplier_order_id: str, state: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._admin(
            "POST", f"/v1/orders/{supplier_order_id}/advance", {"state": state}
        )
        return body


@pytest.fixture
async def supplier() -> AsyncIterator[Supplier]:
    callbacks = LateApp()
    sandbox = create_supplier_sandbox(
        SUPPLIER_SECRET,
        SUPPLIER_KEY,
        transport=httpx.ASGITransport(app=callbacks),
        retry_base_delay=0.01,
    )
    async with sandbox.router.lifespan_context(sandbox):
        client = SupplierClient(
            "http://supplier.test", SUPPLIER_KEY, transport=httpx.ASGITransport(app=sandbox)
        )
        yield Supplier(client, sandbox, callbacks)
        await client.aclose()


class CrashAfterSupplierAccepts(OrderActivities):
    """The worker dies after the supplier accepted, before the activity completes."""

    @activity.defn(name=ids.PURCHASE_FROM_SUPPLIER)
    async def purchase_from_supplier(self, inp: PurchaseInput) -> str:
        supplier_order_id = await super().purchase_from_supplier(inp)
        if activity.info().attempt == 1:
            raise RuntimeError(f"crashed after the supplier accepted {supplier_order_id}")
        return supplier_order_id


# ---- Temporal -----------------------------------------------------------------------------


async def register_search_attributes(client: Client) -> None:
    kinds = {
        "KEYWORD": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "INT": IndexedValueType.INDEXED_VALUE_TYPE_INT,
        "BOOL": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
        "DATETIME": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    }
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={k.name: kinds[k.indexed_value_type.name] for k in SEARCH_ATTRIBUTES},
        )
    )


@pytest.fixture(scope="module")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, one per test module (workers use fresh task queues):
    a module that leaves the server's clock held (an activity it thinks still runs) cannot
    stall the time skipping of the next."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=binary("temporal-test-server"),
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


def test_settings(**overrides: object) -> Settings:
    base: dict[str, object] = {
        "env": "dev",
        "workflow_sandbox": True,
        # no relay loop runs beside these tests: a callback waits for its signal, as long as
        # a loaded CI machine may need, instead of being left "queued"
        "relay_sender_patience_seconds": 30.0,
        "task_queue": f"tq-{uuid.uuid4().hex[:8]}",
        "payment_webhook_secret": PAYMENT_SECRET,
        "gateway_api_key": GATEWAY_KEY,
        "gateway_url": "http://gateway.test",
        "supplier_webhook_secret": SUPPLIER_SECRET,
        "supplier_api_key": SUPPLIER_KEY,
    }
    return Settings(**{**base, **overrides})  # type: ignore[arg-type]


@pytest.fixture
def settings() -> Settings:
    return test_settings()


@pytest.fixture
async def worker(
    request: pytest.FixtureRequest,
    ts_env: WorkflowEnvironment,
    settings: Settings,
    sqlite_db: Database,
    gateway: PaymentGatewayClient,
    supplier: Supplier,
) -> AsyncIterator[Worker]:
    """A worker on the time-skipping server, over a fresh SQLite database. Mark a test
    `crash_after_supplier_accepts` to fail each purchase's first attempt after it succeeded."""
    notify = f"{settings.api_public_url}/webhooks/suppliers/kepler"
    crash = request.node.get_closest_marker("crash_after_supplier_accepts")
    kind = CrashAfterSupplierAccepts if crash else OrderActivities
    acts = kind(sqlite_db, gateway, supplier.client, notify)
    w = build_worker(ts_env.client, settings, sqlite_db, gateway, activities=acts)
    async with w:
        yield w
