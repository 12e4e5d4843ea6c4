"""Local sandbox of the KEPLER goods supplier (JD Kepler style), as a FastAPI app.

Run: ``python -m sandboxes.supplier --port 8020 [--auto-ship-seconds 10]`` (reads
``ORDERS_SUPPLIER_WEBHOOK_SECRET`` and ``ORDERS_SUPPLIER_API_KEY``). State is in memory.

Endpoints (``/v1/*`` need ``Authorization: Bearer <api key>``):

* ``POST /v1/orders {external_ref, items: [{sku, quantity}], notify_url}`` -> 201 order,
  status ACCEPTED. The same external_ref (or ``Idempotency-Key``) again -> 200 with the same
  order, whatever the body. Empty items -> 422.
* ``POST /v1/orders/{id}/cancel {reason}`` -> 200 ``{supplier_order_id, cancelled: true,
  reason}`` while ACCEPTED (and again once CANCELLED); 409 ``{detail}`` once shipped or while
  cancels are refused. ``GET /v1/orders/{id}``, ``GET /v1/orders?external_ref=...``.
* ``POST /v1/orders/{id}/advance {state}``: ACCEPTED -> AWAITING_RECEIPT -> RECEIVED or
  REJECTED (any other move: 409). Sends the signed callback ``{event_id, supplier_order_id,
  package_id (= external_ref), state, at}`` to the order's notify_url and answers ``{state,
  delivered, status_code, event_id}`` after the first attempt; retries (5xx/429/unreachable)
  go on in the background. ``GET /orders/{id}`` is an HTML page with the moves as buttons
  (``POST /orders/{id}/advance/{state}``, no API key: a local convenience for people).
* ``auto_ship_seconds``: an accepted order ships (AWAITING_RECEIPT) after that delay unless
  cancelled first.
* ``POST /v1/_faults {fail_next_orders, refuse_next_orders, refuse_cancels,
  fail_next_cancels}`` (omitted fields unchanged): the next N order calls answer 503 / the next
  N new orders 409 "refused: out of stock at supplier"; cancels answer 409 while
  ``refuse_cancels``; the next N cancel calls answer 503.
* ``GET /v1/_calls``: every order and cancel call received, rejected ones (401, 422) too.
* ``GET /v1/deliveries?wait_seconds=S``: callback log, after waiting (at most S) for pending
  auto-ships and deliveries; ``idle`` is False if some were still pending.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

import httpx
import uvicorn
from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from gateways.supplier import SupplierCancel, SupplierOrder
from sandboxes.delivery import Deliverer, utc_now_rfc3339
from sandboxes.payments import IdempotencyKey
from sandboxes.state import SandboxRejection, bearer_auth

logger = logging.getLogger(__name__)

AdvanceState = Literal["AWAITING_RECEIPT", "RECEIVED", "REJECTED"]
ADVANCE_STATES: tuple[str, ...] = get_args(AdvanceState)
_MOVES: dict[str, tuple[str, ...]] = {
    "ACCEPTED": ("AWAITING_RECEIPT",),
    "AWAITING_RECEIPT": ("RECEIVED", "REJECTED"),
}
OUT_OF_STOCK = "refused: out of stock at supplier"
_CALL_PATHS = (
    ("order", re.compile(r"/v1/orders/?")),
    ("cancel", re.compile(r"/v1/orders/([^/]+)/cancel")),
)
_OUTCOMES = {("order", 201): "created", ("order", 200): "replayed", ("cancel", 200): "cancelled"}
_ERROR_OUTCOMES = {
    401: "unauthorized",
    404: "not_found",
    409: "refused",
    422: "invalid",
    503: "failed",
}


class ItemIn(BaseModel):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=10_000)


class OrderIn(BaseModel):
    external_ref: str = Field(min_length=1, max_length=128)
    items: list[ItemIn] = Field(min_length=1, max_length=100)
    notify_url: str = Field(pattern=r"^https?://\S+$")


class CancelIn(BaseModel):
    reason: str = Field(default="", max_length=256)


class AdvanceIn(BaseModel):
    state: AdvanceState


class Faults(BaseModel):
    fail_next_orders: int = Field(default=0, ge=0)
    refuse_next_orders: int = Field(default=0, ge=0)
    refuse_cancels: bool = False
    fail_next_cancels: int = Field(default=0, ge=0)


class FaultsIn(BaseModel):
    fail_next_orders: int | None = Field(default=None, ge=0)
    refuse_next_orders: int | None = Field(default=None, ge=0)
    refuse_cancels: bool | None = None
    fail_next_cancels: int | None = Field(default=None, ge=0)


class SupplierCall(BaseModel):
    at: str
    method: str
    path: str
    external_ref: str | None = None
    supplier_order_id: str | None = None
    status_code: int | None = None
    outcome: str | None = None


@dataclass
class _Order:
    order: SupplierOrder
    notify_url: str
    cancel_reason: str = ""


@dataclass
class SupplierState:
    """Orders and the partner's business rules (no HTTP here)."""

    orders: dict[str, _Order] = field(default_factory=dict)
    by_ref: dict[str, str] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    calls: list[SupplierCall] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)

    def place(self, req: OrderIn, key: str | None) -> tuple[SupplierOrder, bool]:
        """Return ``(order, created)``; a known external_ref or key returns that order."""
        if self.faults.fail_next_orders > 0:
            self.faults.fail_next_orders -= 1
            raise SandboxRejection(503, "injected fault: order service unavailable")
        known = self.by_key.get(key) if key is not None else None
        known = known or self.by_ref.get(req.external_ref)
        if known is not None:
            return self.orders[known].order, False
        if self.faults.refuse_next_orders > 0:
            self.faults.refuse_next_orders -= 1
            raise SandboxRejection(409, OUT_OF_STOCK)
        order = SupplierOrder.model_validate(
            {
                "supplier_order_id": f"ko_{uuid.uuid4().hex[:20]}",
                "external_ref": req.external_ref,
                "status": "ACCEPTED",
                "items": [item.model_dump() for item in req.items],
            }
        )
        self.orders[order.supplier_order_id] = _Order(order, req.notify_url)
        self.by_ref[req.external_ref] = order.supplier_order_id
        if key is not None:
            self.by_key[key] = order.supplier_order_id
        return order, True

    def get(self, order_id: str) -> _Order:
        if order_id not in self.orders:
            raise SandboxRejection(404, f"unknown supplier order {order_id}")
        return self.orders[order_id]

    def cancel(self, order_id: str, reason: str) -> SupplierCancel:
        if self.faults.fail_next_cancels > 0:
            self.faults.fail_next_cancels -= 1
            raise SandboxRejection(503, "injected fault: supplier unavailable")
        record = self.get(order_id)
        status = record.order.status
        if status != "CANCELLED":
            if status != "ACCEPTED":
                raise SandboxRejection(409, f"order already shipped ({status}); cannot cancel")
            if self.faults.refuse_cancels:
                raise SandboxRejection(409, "supplier refuses to cancel: already in fulfilment")
            record.order.status, record.cancel_reason = "CANCELLED", reason
        return SupplierCancel(
            supplier_order_id=order_id, cancelled=True, reason=record.cancel_reason
        )

    def advance(self, order_id: str, state: str) -> _Order:
        record = self.get(order_id)
        if state not in _MOVES.get(record.order.status, ()):
            raise SandboxRejection(
                409, f"cannot move order {order_id} from {record.order.status} to {state}"
            )
        record.order.status = state
        return record


_PAGE = """<!doctype html><html><head><title>Supplier sandbox</title></head><body>
<h1>Supplier order {order_id}</h1><p>package {ref}: <b>{status}</b></p>{buttons}</body></html>"""
_BUTTON = (
    '<form method="post" action="/orders/{id}/advance/{state}"><button>{state}</button></form>'
)


def _page(order: SupplierOrder) -> str:
    order_id = html.escape(order.supplier_order_id)
    buttons = "".join(_BUTTON.format(id=order_id, state=s) for s in ADVANCE_STATES)
    return _PAGE.format(
        order_id=order_id,
        ref=html.escape(order.external_ref),
        status=html.escape(order.status),
        buttons=buttons,
    )


def _note(request: Request, **fields: str) -> None:
    """Add details to the call-log entry of this request (if it has one)."""
    call: SupplierCall | None = getattr(request.state, "supplier_call", None)
    if call is not None:
        for name, value in fields.items():
            setattr(call, name, value)


def _start_call(request: Request) -> tuple[str, SupplierCall] | None:
    path = request.scope["path"]
    for kind, pattern in _CALL_PATHS:
        match = pattern.fullmatch(path)
        if request.method == "POST" and match:
            call = SupplierCall(at=utc_now_rfc3339(), method=request.method, path=path)
            if kind == "cancel":
                call.supplier_order_id = match.group(1)
            else:
                call.external_ref = request.headers.get("Idempotency-Key")
            request.state.supplier_call = call
            return kind, call
    return None


def create_app(
    webhook_secret: str,
    api_key: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    auto_ship_seconds: float | None = None,
    retry_base_delay: float = 0.2,
    max_attempts: int = 8,
) -> FastAPI:
    """Build a sandbox; ``transport`` carries outbound callbacks (tests: an in-process app)."""
    if auto_ship_seconds is not None and auto_ship_seconds < 0:
        raise ValueError("auto_ship_seconds must be >= 0")
    state = SupplierState()
    deliverer = Deliverer(
        webhook_secret, transport=transport, base_delay=retry_base_delay, max_attempts=max_attempts
    )
    timers: dict[str, asyncio.Task[None]] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        pending = list(timers.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await deliverer.aclose()

    app = FastAPI(title="Supplier (KEPLER) sandbox", lifespan=lifespan)
    auth = bearer_auth(api_key)

    @app.exception_handler(SandboxRejection)
    async def rejected(_: Request, exc: SandboxRejection) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.middleware("http")
    async def log_calls(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = _start_call(request)
        if started is None:
            return await call_next(request)
        kind, call = started
        state.calls.append(call)
        response = await call_next(request)
        code = response.status_code
        call.status_code = code
        call.outcome = _OUTCOMES.get((kind, code)) or _ERROR_OUTCOMES.get(code, f"http_{code}")
        return response

    async def move(order_id: str, new_state: str) -> dict[str, Any]:
        record = state.advance(order_id, new_state)
        payload = {
            "event_id": f"evt_{uuid.uuid4().hex}",
            "supplier_order_id": order_id,
            "package_id": record.order.external_ref,
            "state": new_state,
            "at": utc_now_rfc3339(),
        }
        logger.info("supplier order %s -> %s", order_id, new_state)
        first = await deliverer.send(record.notify_url, [payload])
        code = first.attempts[0].status_code if first.attempts else None
        delivered = code is not None and 200 <= code < 300
        return {
            "state": new_state,
            "delivered": delivered,
            "status_code": code,
            "event_id": payload["event_id"],
        }

    async def ship_later(order_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await move(order_id, "AWAITING_RECEIPT")
        except SandboxRejection as exc:
            logger.info("auto-ship of %s skipped: %s", order_id, exc.detail)
        except Exception:
            logger.exception("auto-ship of %s crashed", order_id)

    def schedule_ship(order_id: str, delay: float) -> None:
        task = asyncio.create_task(ship_later(order_id, delay))
        timers[order_id] = task
        task.add_done_callback(lambda _: timers.pop(order_id, None))

    async def wait_idle(timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while timers:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.wait(set(timers.values()), timeout=remaining)
        return await deliverer.wait_idle(max(0.0, deadline - loop.time()))

    @app.post("/v1/orders", status_code=201, dependencies=[auth])
    async def place(
        body: OrderIn, request: Request, response: Response, key: IdempotencyKey = None
    ) -> SupplierOrder:
        _note(request, external_ref=body.external_ref)
        order, created = state.place(body, key)
        _note(request, supplier_order_id=order.supplier_order_id)
        response.status_code = 201 if created else 200
        if created and auto_ship_seconds is not None:
            schedule_ship(order.supplier_order_id, auto_ship_seconds)
        return order

    @app.get("/v1/orders", dependencies=[auth])
    async def find(external_ref: str | None = None) -> list[SupplierOrder]:
        orders = [record.order for record in state.orders.values()]
        if external_ref is None:
            return orders
        return [order for order in orders if order.external_ref == external_ref]

    @app.get("/v1/orders/{order_id}", dependencies=[auth])
    async def get(order_id: str) -> SupplierOrder:
        return state.get(order_id).order

    @app.post("/v1/orders/{order_id}/cancel", dependencies=[auth])
    async def cancel(order_id: str, body: CancelIn) -> SupplierCancel:
        result = state.cancel(order_id, body.reason)
        timer = timers.pop(order_id, None)
        if timer is not None:
            timer.cancel()
        return result

    @app.post("/v1/orders/{order_id}/advance", dependencies=[auth])
    async def advance(order_id: str, body: AdvanceIn) -> dict[str, Any]:
        return await move(order_id, body.state)

    @app.get("/orders/{order_id}", response_class=HTMLResponse)
    async def order_page(order_id: str) -> str:
        return _page(state.get(order_id).order)

    @app.post("/orders/{order_id}/advance/{new_state}")
    async def advance_by_hand(order_id: str, new_state: AdvanceState) -> dict[str, Any]:
        return await move(order_id, new_state)

    @app.post("/v1/_faults", dependencies=[auth])
    async def set_faults(body: FaultsIn) -> Faults:
        for name, value in body.model_dump(exclude_none=True).items():
            setattr(state.faults, name, value)
        return state.faults

    @app.get("/v1/_calls", dependencies=[auth])
    async def calls() -> list[SupplierCall]:
        return state.calls

    @app.get("/v1/deliveries", dependencies=[auth])
    async def deliveries(wait_seconds: Annotated[float, Query(ge=0, le=60)] = 0) -> Any:
        idle = await wait_idle(wait_seconds)
        return {"idle": idle, "deliveries": [r.model_dump() for r in deliverer.records]}

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local KEPLER supplier sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8020)
    parser.add_argument(
        "--auto-ship-seconds", type=float, help="ship accepted orders after this delay"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = create_app(
        os.environ.get("ORDERS_SUPPLIER_WEBHOOK_SECRET", "dev-supplier-secret"),
        os.environ.get("ORDERS_SUPPLIER_API_KEY", "dev-supplier-key"),
        auto_ship_seconds=args.auto_ship_seconds,
    )
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
