"""The FastAPI application: `uvicorn api.app:app` (or `create_app(...)` in tests)."""

import argparse
import asyncio
import re
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from uvicorn.supervisors import Multiprocess

from api import (
    after_sales,
    catalog,
    checkouts,
    console,
    deps,
    errors,
    openapi,
    orders,
    packages,
    refunds,
    reviews,
    sessions,
    shops,
    wallets,
    webhooks,
)
from api.auth import decode, token_rules
from api.deps import Clock, wall_clock
from api.errors import Problem, problem_response
from api.purge import purge_forever
from domain.errors import ErrorCode
from gateways.payments import PaymentGatewayClient
from runtime import logs
from runtime.metrics import RequestMetrics, api_round_trip, metrics_endpoint
from runtime.relay import Relay
from runtime.settings import Settings, get_settings
from runtime.temporal_client import connect, with_deadline
from store.blobs import BlobStore, FileBlobStore
from store.db import Database

UPLOADS = re.compile(r"^/orders/[^/]+/after-sales$")  # evidence images: a larger body limit


class BodyLimit:
    """Refuse bodies over `max_bytes` with 413, whether or not Content-Length is sent.

    A declared length is checked up front (the server never reads past it). A body without
    one (chunked) is counted as the app reads it, never buffered here: the read that passes
    the limit raises a 413 where it happens (FastAPI passes an HTTPException raised while
    reading a body on to its handler). Evidence uploads, which may be large, need a valid
    bearer token before a byte of them is read; their files stream to disk as they arrive.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        max_upload_bytes: int = 0,
        authenticate: Callable[[str], object] | None = None,
    ) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.max_upload_bytes = max(max_bytes, max_upload_bytes)
        self.authenticate = authenticate  # raises Problem for a missing or bad bearer token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        upload = bool(UPLOADS.match(scope["path"]))
        limit = self.max_upload_bytes if upload else self.max_bytes
        headers = dict(scope["headers"])
        if upload and self.authenticate is not None:  # a stranger's upload is never read
            header = headers.get(b"authorization", b"").decode("latin-1")
            scheme, _, token = header.partition(" ")
            try:
                if scheme.lower() != "bearer" or not token.strip():
                    raise Problem(ErrorCode.UNAUTHENTICATED, "missing bearer token")
                self.authenticate(token.strip())
            except Problem as problem:
                response = problem_response(problem.code, problem.detail, problem.status)
                return await response(scope, receive, send)
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > limit:
                return await _too_large(limit)(scope, receive, send)
            return await self.app(scope, receive, send)
        seen, started = 0, False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, _too_large_detail(limit))
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except HTTPException as err:  # read outside a route (no handler took it)
            if err.status_code != 413 or started:
                raise
            await _too_large(limit)(scope, receive, send)


def _too_large_detail(limit: int) -> str:
    return f"request bodies are limited to {limit} bytes"


def _too_large(limit: int) -> JSONResponse:
    return problem_response(ErrorCode.PAYLOAD_TOO_LARGE, _too_large_detail(limit), 413)


READY_TIMEOUT = 2.0


async def _database_ready(db: Database) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT), db.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as err:  # any failure is "not ready", said in its own words
        return f"unavailable: {type(err).__name__}"
    return "ok"


async def _temporal_ready(client: Client) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await client.workflow_service.get_system_info(
                GetSystemInfoRequest(), timeout=timedelta(seconds=READY_TIMEOUT)
            )
    except Exception as err:
        return f"unavailable: {type(err).__name__}"
    return "ok"


def create_app(
    settings: Settings | None = None,
    *,
    temporal: Client | None = None,
    db: Database | None = None,
    gateway: PaymentGatewayClient | None = None,
    blobs: BlobStore | None = None,
    clock: Clock = wall_clock,
) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.clock = clock
        app.state.db = db or Database(settings.database_url, count=api_round_trip)
        app.state.blobs = blobs or FileBlobStore(settings.blob_dir)
        app.state.gateway = gateway or PaymentGatewayClient(
            settings.gateway_url, settings.gateway_api_key
        )
        app.state.temporal = with_deadline(
            temporal or await connect(), settings.temporal_rpc_timeout_seconds
        )
        app.state.relay = Relay(
            app.state.db,
            app.state.temporal,
            settings.task_queue,
            sender_patience=settings.relay_sender_patience_seconds,
        )
        purge = (
            asyncio.create_task(purge_forever(app.state.db, app.state.blobs, settings))
            if settings.image_purge_every_seconds
            else None
        )
        try:
            yield
        finally:
            if purge is not None:
                purge.cancel()
            if db is None:
                await app.state.db.dispose()
            if gateway is None:
                await app.state.gateway.aclose()

    about: dict[str, Any] = {
        "redoc_url": None,
        "dependencies": [Depends(openapi.known_query_only)],
        "title": "Order saga",
        "version": "0.1.0",
        "lifespan": lifespan,
        "description": "Orders as Temporal workflows. Money in integer cents, times UTC.",
    }
    if settings.is_dev or settings.public_docs:  # outside dev: no docs unless asked for
        app = FastAPIOffline(**about)  # /docs with Swagger UI's assets from a package
    else:
        app = FastAPI(docs_url=None, openapi_url=None, **about)
    errors.install(app)
    openapi.install(app)
    routers = [orders, checkouts, refunds, after_sales, reviews, webhooks, catalog, wallets]
    routers += [sessions, shops, packages]
    for module in routers:
        app.include_router(module.router)
    app.include_router(webhooks.admin)
    app.include_router(console.router)
    app.state.problem_page = console.problem_page  # refusals under /console: HTML pages
    app.router.routes.append(console.static)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Alive: the process answers (for a liveness probe)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "a dependency is down"}})
    async def readyz(request: Request) -> JSONResponse:
        """Ready: the database and Temporal both answer within 2 s (for a readiness probe);
        503 names what does not."""
        checks = {
            "database": _database_ready(request.app.state.db),
            "temporal": _temporal_ready(request.app.state.temporal),
        }
        results = await asyncio.gather(*checks.values())
        body = dict(zip(checks, results, strict=True)) if settings.is_dev else {}  # dev only
        ready = all(r == "ok" for r in results)
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", **body}, 200 if ready else 503
        )

    # outside dev the API's metrics are an admin's (Prometheus sends a bearer token)
    guard = [] if settings.is_dev else [deps.admin_only]
    app.add_api_route("/metrics", metrics_endpoint, include_in_schema=False, dependencies=guard)
    app.add_middleware(RequestMetrics)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        authenticate=lambda token: decode(token, settings.jwt_secret, token_rules(settings)),
    )
    return app


def main() -> None:
    """`orders-api [--host H] [--port P] [--workers N]`: the API (ORDERS_* settings)."""
    parser = argparse.ArgumentParser(description="the order API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    args = parser.parse_args()
    if args.workers == 1:
        uvicorn.run("api.app:app", host=args.host, port=args.port, access_log=False)
        return
    config = uvicorn.Config(
        "api.app:app", host=args.host, port=args.port, workers=args.workers, access_log=False
    )
    Multiprocess(config, sockets=[tcp_listener(config)]).run()


def tcp_listener(config: uvicorn.Config) -> socket.socket:
    """The listening socket the API's processes share, marked as TCP. uvicorn binds it with
    `proto` 0, which accepted connections inherit, and asyncio turns Nagle's algorithm off
    (TCP_NODELAY) only on a socket that says IPPROTO_TCP: without this, each request on a
    kept-alive connection waited ~40 ms for the client's delayed ACK."""
    sock = config.bind_socket()
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return sock
    return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())


def __getattr__(name: str) -> FastAPI:
    """`uvicorn api.app:app` builds the app on first access, not at import."""
    if name == "app":
        logs.setup("api")
        return create_app()
    raise AttributeError(name)
