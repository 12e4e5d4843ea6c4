"""The whole system once per session: a Temporal dev server, a fresh PostgreSQL database, the
worker, the sandbox payment gateway, the sandbox (KEPLER) supplier and the API, the last three
served by uvicorn on free 127.0.0.1 ports (the sandboxes call the API back on its real URL)."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, async_playwright
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from gateways.payments import PaymentGatewayClient
from gateways.supplier import SupplierClient
from sandboxes.payments import create_app as create_sandbox
from sandboxes.supplier import create_app as create_supplier_sandbox
from store.db import Database
from tests.conftest import _pg_exec, binary, fresh_db_url, test_settings

pytest.register_assert_rewrite("tests.e2e.harness")  # before its import: readable failures
from scripts.serve import listening_socket, serving, url_of  # noqa: E402
from tests.e2e.harness import (  # noqa: E402
    FAST_DEADLINES,
    FREIGHT_CENTS,
    SUPPLIER_CANCEL_WINDOW_SECONDS,
    Stack,
    ok,
)
from worker import build_worker  # noqa: E402
from workflows.ids import SEARCH_ATTRIBUTES  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
QUIET = [  # no sandbox as root; nothing reaches out to the network on its own
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, started by Playwright (no browser is downloaded)."""
    assert CHROMIUM.exists(), "Debian's chromium package: make test installs it"
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=QUIET)
        yield chromium
        await chromium.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context()
    ctx.set_default_timeout(30_000)
    yield ctx
    await ctx.close()


@pytest.fixture(scope="session")
async def stack(pg_template: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with AsyncExitStack() as stack:
        env, (db_url, db_name) = await asyncio.gather(
            WorkflowEnvironment.start_local(
                dev_server_existing_path=binary("temporal"),
                data_converter=pydantic_data_converter,
                search_attributes=SEARCH_ATTRIBUTES,
                dev_server_extra_args=[
                    "--dynamic-config-value",
                    "system.forceSearchAttributesCacheRefreshOnRead=true",
                ],
            ),
            fresh_db_url("postgres", Path(), Path(), pg_template),
        )
        stack.push_async_callback(env.shutdown)
        assert db_name is not None
        stack.push_async_callback(_pg_exec, f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")

        api_sock, gateway_sock, supplier_sock, fast_sock = (listening_socket() for _ in range(4))
        for sock in (api_sock, gateway_sock, supplier_sock, fast_sock):
            stack.callback(sock.close)
        settings = test_settings(
            database_url=db_url,
            api_public_url=url_of(api_sock),
            gateway_url=url_of(gateway_sock),
            supplier_url=url_of(supplier_sock),
            supplier_api_key="e2e-supplier-key",
            supplier_webhook_secret="e2e-supplier-secret",
            supplier_cancel_window_seconds=SUPPLIER_CANCEL_WINDOW_SECONDS,
            jwt_secret="e2e-jwt-secret-0123456789abcdef0123",
            carrier_webhook_secret="e2e-carrier-secret",
            max_body_bytes=64 * 1024,
            blob_dir=str(tmp_path_factory.mktemp("blobs")),
        )
        # orders carry their timings from the settings: the short window must reach them
        assert settings.timings().supplier_cancel_window_seconds == SUPPLIER_CANCEL_WINDOW_SECONDS

        # the worker: in process, on the dev server's client, with its own pool and gateway client
        worker_db = Database(db_url)
        stack.push_async_callback(worker_db.dispose)
        worker_gateway = PaymentGatewayClient(settings.gateway_url, settings.gateway_api_key)
        stack.push_async_callback(worker_gateway.aclose)
        worker_supplier = SupplierClient(settings.supplier_url, settings.supplier_api_key)
        stack.push_async_callback(worker_supplier.aclose)
        await stack.enter_async_context(
            build_worker(env.client, settings, worker_db, worker_gateway, worker_supplier)
        )

        # the payment sandbox, calling the API back with signed callbacks
        sandbox = create_sandbox(
            settings.payment_webhook_secret,
            settings.gateway_api_key,
            public_url=settings.gateway_url,
            retry_base_delay=0.05,
        )
        await stack.enter_async_context(serving(sandbox, gateway_sock, "gateway"))

        # the supplier sandbox, calling the API back (the worker's notify_url) with signed
        # callbacks; it ships only when a test advances an order
        supplier = create_supplier_sandbox(
            settings.supplier_webhook_secret, settings.supplier_api_key, retry_base_delay=0.05
        )
        await stack.enter_async_context(serving(supplier, supplier_sock, "supplier"))

        # the API
        api_db = Database(db_url)
        stack.push_async_callback(api_db.dispose)
        api_gateway = PaymentGatewayClient(settings.gateway_url, settings.gateway_api_key)
        stack.push_async_callback(api_gateway.aclose)
        api = create_app(settings, temporal=env.client, db=api_db, gateway=api_gateway)
        await stack.enter_async_context(serving(api, api_sock, "api"))

        # the same API with after-sales deadlines of seconds, as an operator would shorten
        # them with ORDERS_*_SECONDS: orders placed through it carry these timings
        fast_settings = settings.model_copy(update=FAST_DEADLINES)
        fast = create_app(fast_settings, temporal=env.client, db=api_db, gateway=api_gateway)
        await stack.enter_async_context(serving(fast, fast_sock, "fast-api"))
        fast_http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=url_of(fast_sock), timeout=30)
        )

        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=settings.api_public_url, timeout=30)
        )
        shop = Stack(
            base_url=settings.api_public_url,
            gateway_url=settings.gateway_url,
            supplier_url=settings.supplier_url,
            settings=settings,
            temporal=env.client,
            http=http,
            fast_http=fast_http,
        )
        rule = {"flat_cents": FREIGHT_CENTS, "free_above_cents": None, "policy": "ONE_PACKAGE"}
        assert ok(await http.put("/freight-rule", json=rule, headers=shop.merchant.headers)) == rule
        yield shop
