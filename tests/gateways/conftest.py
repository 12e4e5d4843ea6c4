"""Fixtures for gateway tests: an in-process callback receiver, payment and supplier sandboxes."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from api.app import create_app as create_api
from gateways.payments import PaymentGatewayClient
from gateways.signing import SIGNATURE_HEADER, SignatureError, verify
from gateways.supplier import SupplierClient
from runtime.settings import Settings
from runtime.temporal_client import connect
from sandboxes.payments import create_app
from sandboxes.supplier import create_app as create_supplier_app
from store.db import Database

WEBHOOK_SECRET = "test-webhook-secret"
API_KEY = "test-api-key"
PUBLIC_URL = "http://sandbox.test"
NOTIFY_URL = "http://receiver.test/webhooks/payments"
SUPPLIER_SECRET = "test-supplier-secret"
SUPPLIER_KEY = "test-supplier-key"
SUPPLIER_URL = "http://supplier.test"


@dataclass
class Received:
    body: bytes
    payload: dict[str, Any]
    signature_error: str | None


@dataclass
class Receiver:
    """A partner-callback receiver that answers scripted status codes (then 200)."""

    secret: str
    statuses: deque[int] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/webhooks/{kind:path}")
        async def hook(kind: str, request: Request) -> Response:
            body = await request.body()
            try:
                verify(request.headers.get(SIGNATURE_HEADER), body, self.secret)
                error = None
            except SignatureError as exc:
                error = exc.reason
            self.received.append(Received(body, json.loads(body), error))
            if error is not None:
                return Response(status_code=401)
            return Response(status_code=self.statuses.popleft() if self.statuses else 200)

        return app

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self.app())


@pytest.fixture
def receiver() -> Receiver:
    return Receiver(secret=WEBHOOK_SECRET)


SandboxFactory = Callable[..., FastAPI]


@pytest.fixture
async def make_sandbox() -> AsyncIterator[SandboxFactory]:
    """Build sandboxes (lifespan entered, so background deliveries are cleaned up)."""
    stack: list[Any] = []

    def build(**kwargs: Any) -> FastAPI:
        kwargs.setdefault("public_url", PUBLIC_URL)
        kwargs.setdefault("retry_base_delay", 0.01)
        app = create_app(WEBHOOK_SECRET, API_KEY, **kwargs)
        stack.append(app)
        return app

    yield build
    for app in stack:
        async with app.router.lifespan_context(app):
            pass


HttpFactory = Callable[..., httpx.AsyncClient]
GatewayFactory = Callable[..., PaymentGatewayClient]


@pytest.fixture
async def sandbox_http() -> AsyncIterator[HttpFactory]:
    """Raw HTTP clients to a sandbox app (bearer key set), closed after the test."""
    clients: list[httpx.AsyncClient] = []

    def build(app: FastAPI, api_key: str = API_KEY) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=PUBLIC_URL,
            headers={"Authorization": f"Bearer {api_key}"},
        )
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


@pytest.fixture
async def gateway_client() -> AsyncIterator[GatewayFactory]:
    """PaymentGatewayClient instances talking to a sandbox app in-process."""
    clients: list[PaymentGatewayClient] = []

    def build(app: FastAPI, api_key: str = API_KEY) -> PaymentGatewayClient:
        client = PaymentGatewayClient(PUBLIC_URL, api_key, transport=httpx.ASGITransport(app=app))
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


# ---- supplier (KEPLER) sandbox -------------------------------------------------------------


@pytest.fixture
def supplier_receiver() -> Receiver:
    """A callback receiver that verifies with the supplier's webhook secret."""
    return Receiver(secret=SUPPLIER_SECRET)


SupplierSandboxFactory = Callable[..., FastAPI]
SupplierClientFactory = Callable[..., SupplierClient]


@pytest.fixture
async def make_supplier_sandbox() -> AsyncIterator[SupplierSandboxFactory]:
    """Build supplier sandboxes; their lifespan shutdown stops timers and deliveries."""
    apps: list[FastAPI] = []

    def build(**kwargs: Any) -> FastAPI:
        kwargs.setdefault("retry_base_delay", 0.01)
        app = create_supplier_app(SUPPLIER_SECRET, SUPPLIER_KEY, **kwargs)
        apps.append(app)
        return app

    yield build
    for app in apps:
        async with app.router.lifespan_context(app):
            pass


@pytest.fixture
async def supplier_http() -> AsyncIterator[HttpFactory]:
    """Raw HTTP clients to a supplier sandbox (supplier bearer key unless told otherwise)."""
    clients: list[httpx.AsyncClient] = []

    def build(app: FastAPI, api_key: str | None = SUPPLIER_KEY) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key is not None else {}
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=SUPPLIER_URL, headers=headers
        )
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


@pytest.fixture
async def supplier_client() -> AsyncIterator[SupplierClientFactory]:
    """SupplierClient instances talking to a supplier sandbox in-process."""
    clients: list[SupplierClient] = []

    def build(app: FastAPI, api_key: str = SUPPLIER_KEY) -> SupplierClient:
        client = SupplierClient(SUPPLIER_URL, api_key, transport=httpx.ASGITransport(app=app))
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


@pytest.fixture
async def api(
    settings: Settings, sqlite_db: Database, gateway: PaymentGatewayClient
) -> AsyncIterator[httpx.AsyncClient]:
    """The API in process, Temporal unreachable (nothing listens): what needs no workflow."""
    dead = await connect(target_host="127.0.0.1:9", namespace="default")  # nothing listens
    app = create_api(settings, temporal=dead, db=sqlite_db, gateway=gateway)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
    ):
        yield http
