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
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from gateways.payments import PaymentGatewayClient
from gateways.sandbox_payments import create_app as create_sandbox
from settings import Settings
from store.db import Database
from store.migrate import upgrade
from worker import build_worker
from workflows.ids import SEARCH_ATTRIBUTES

BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"
PG_URL = os.environ.get(
    "ORDERS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
GATEWAY_KEY = "test-gateway-key"
PAYMENT_SECRET = "test-payment-secret"


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


# ---- Temporal -----------------------------------------------------------------------------


async def register_search_attributes(client: Client) -> None:
    kinds = {
        "KEYWORD": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "INT": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    }
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={k.name: kinds[k.indexed_value_type.name] for k in SEARCH_ATTRIBUTES},
        )
    )


@pytest.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server (one per session; workers use fresh task queues)."""
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
        "task_queue": f"tq-{uuid.uuid4().hex[:8]}",
        "payment_webhook_secret": PAYMENT_SECRET,
        "gateway_api_key": GATEWAY_KEY,
        "gateway_url": "http://gateway.test",
    }
    return Settings(**{**base, **overrides})  # type: ignore[arg-type]


@pytest.fixture
def settings() -> Settings:
    return test_settings()


@pytest.fixture
async def worker(
    ts_env: WorkflowEnvironment,
    settings: Settings,
    sqlite_db: Database,
    gateway: PaymentGatewayClient,
) -> AsyncIterator[Worker]:
    """A worker on the time-skipping server, over a fresh SQLite database."""
    w = build_worker(ts_env.client, settings, sqlite_db, gateway)
    async with w:
        yield w
