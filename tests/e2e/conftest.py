"""The whole system once per session: a Temporal dev server, a fresh PostgreSQL database, the
worker, the sandbox payment gateway and the API, the last two served by uvicorn on free
127.0.0.1 ports (the gateway calls the API back on its real URL)."""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from gateways.payments import PaymentGatewayClient
from gateways.sandbox_payments import create_app as create_sandbox
from store.db import Database
from tests.conftest import _pg_exec, binary, fresh_db_url, test_settings

pytest.register_assert_rewrite("tests.e2e.harness")  # before its import: readable failures
from tests.e2e.harness import FREIGHT_CENTS, Stack, ok  # noqa: E402
from worker import build_worker  # noqa: E402
from workflows.ids import SEARCH_ATTRIBUTES  # noqa: E402

STARTUP_TIMEOUT = 30.0


def _listening_socket() -> socket.socket:
    """Bound before the app is built, so its URL is known and no other process takes it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()
    return f"http://{host}:{port}"


@asynccontextmanager
async def _serving(app: FastAPI, sock: socket.socket, name: str) -> AsyncIterator[None]:
    """Run uvicorn as a task until the block ends; enter only once its lifespan has run."""
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn-{name}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    while not server.started:  # uvicorn offers a flag, not an event: watch it, bounded
        if task.done():
            task.result()  # re-raise the startup failure
            raise RuntimeError(f"{name} server stopped during startup")
        if loop.time() > deadline:
            raise TimeoutError(f"{name} server did not start in {STARTUP_TIMEOUT} s")
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
async def stack(pg_template: str) -> AsyncIterator[Stack]:
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

        api_sock, gateway_sock = _listening_socket(), _listening_socket()
        stack.callback(api_sock.close)
        stack.callback(gateway_sock.close)
        settings = test_settings(
            database_url=db_url,
            api_public_url=_url(api_sock),
            gateway_url=_url(gateway_sock),
            jwt_secret="e2e-jwt-secret-0123456789abcdef0123",
            carrier_webhook_secret="e2e-carrier-secret",
            max_body_bytes=64 * 1024,
        )

        # the worker: in process, on the dev server's client, with its own pool and gateway client
        worker_db = Database(db_url)
        stack.push_async_callback(worker_db.dispose)
        worker_gateway = PaymentGatewayClient(settings.gateway_url, settings.gateway_api_key)
        stack.push_async_callback(worker_gateway.aclose)
        await stack.enter_async_context(
            build_worker(env.client, settings, worker_db, worker_gateway)
        )

        # the payment sandbox, calling the API back with signed callbacks
        sandbox = create_sandbox(
            settings.payment_webhook_secret,
            settings.gateway_api_key,
            public_url=settings.gateway_url,
            retry_base_delay=0.05,
        )
        await stack.enter_async_context(_serving(sandbox, gateway_sock, "gateway"))

        # the API
        api_db = Database(db_url)
        stack.push_async_callback(api_db.dispose)
        api_gateway = PaymentGatewayClient(settings.gateway_url, settings.gateway_api_key)
        stack.push_async_callback(api_gateway.aclose)
        api = create_app(settings, temporal=env.client, db=api_db, gateway=api_gateway)
        await stack.enter_async_context(_serving(api, api_sock, "api"))

        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=settings.api_public_url, timeout=30)
        )
        shop = Stack(
            base_url=settings.api_public_url,
            gateway_url=settings.gateway_url,
            settings=settings,
            temporal=env.client,
            http=http,
        )
        rule = {"flat_cents": FREIGHT_CENTS, "free_above_cents": None, "policy": "ONE_PACKAGE"}
        assert ok(await http.put("/freight-rule", json=rule, headers=shop.merchant.headers)) == rule
        yield shop
