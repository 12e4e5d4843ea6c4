"""Local sandbox of the payment gateway (alipay/wechat style), as a FastAPI app.

Run: ``python -m sandboxes.payments --port 8010`` (reads
``ORDERS_PAYMENT_WEBHOOK_SECRET`` and ``ORDERS_GATEWAY_API_KEY``).

Endpoints (``/v1/*`` need ``Authorization: Bearer <api key>``):

* ``POST /v1/intents`` -> 201 intent; ``pay_url = <public_url>/pay/<intent_id>``.
  A repeated ``Idempotency-Key`` returns the same intent (200).
* ``GET /pay/{intent_id}``: HTML page with a Pay button. ``POST /pay/{intent_id}``: the buyer
  pays; a signed callback ``{event_id, order_id, txn_id, channel, amount_cents, paid_at}`` is
  sent to the intent's notify_url. Options (query or form): ``duplicates=N`` (N extra
  deliveries of the same payment, each with a new event_id), ``amount_cents=X`` (report and
  charge a different amount), ``delay_seconds=S`` (wait before sending). The answer
  ``{txn_id, event_ids, delivered, status_code}`` comes after the delay and the first delivery
  attempt; retries (5xx/429/unreachable, backoff doubling) continue in the background.
* ``POST /v1/refunds``: idempotent on refund_id (and on ``Idempotency-Key``); 404 for an
  unknown txn, 409 above the txn amount minus earlier refunds. ``GET /v1/refunds/{id}``.
* ``GET /v1/intents/{id}`` (trade query): ``{status: open|closed|captured, txn_id,
  captured_cents, paid_at, ...}``. ``POST /v1/intents/{id}/close`` (trade close): an unpaid
  intent is closed and can never be paid (its pay page answers 409); closing it again gives
  the same answer; a captured intent is refused with 409 ``{detail, intent}``, the intent
  naming its capture.
* ``GET /v1/captures?since=<RFC 3339>&limit=N&cursor=C``: the captures paid at or after
  ``since``, oldest first, ``{items: [{txn_id, intent_id, order_id, channel, amount_cents,
  paid_at}], next_cursor}`` (``next_cursor`` null on the last page).
* ``POST /v1/_faults {fail_next_refunds: N, refuse_next_refunds: M, drop_next_callbacks: K,
  refuse_next_closes: C}``: the next N refund calls answer 503 (retried), the next M after
  them 422 (refused for good); the next K callbacks are never sent (the payment is captured
  all the same, and the pay answer lists them as ``dropped``); the next C trade closes of
  an unpaid intent answer 422 (refused: the order closes all the same, its intent open).
* ``GET /v1/deliveries?wait_seconds=S``: delivery log (optionally waits for pending ones).

Sandbox leniency: a refund for a txn id the sandbox never issued is accepted when it looks
like ``alipay-...`` or ``wechat-...`` (tests create payments without the pay page); such a
txn has no known amount, so over-refunds of it are not detected.
"""

from __future__ import annotations

import argparse
import html
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field, ValidationError

from gateways.payments import CapturePage, GatewayIntent, GatewayRefund, PaymentIntent
from sandboxes.delivery import Deliverer
from sandboxes.state import (
    IntentCaptured,
    IntentIn,
    RefundIn,
    SandboxRejection,
    SandboxState,
    bearer_auth,
)

logger = logging.getLogger(__name__)

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


class PayOptions(BaseModel):
    duplicates: int = Field(default=0, ge=0, le=20)
    amount_cents: int | None = Field(default=None, ge=0)
    delay_seconds: float = Field(default=0.0, ge=0, le=300)


class FaultsIn(BaseModel):
    fail_next_refunds: int = Field(0, ge=0, le=1000)  # answered 503: retried
    refuse_next_refunds: int = Field(0, ge=0, le=1000)  # answered 422: refused for good
    drop_next_callbacks: int = Field(0, ge=0, le=1000)  # captured, never notified
    refuse_next_closes: int = Field(0, ge=0, le=1000)  # trade closes of unpaid intents answer 422


_INDEX_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<title>Payment gateway sandbox</title></head><body>
<h1>Payment gateway sandbox</h1>
<p>A stand-in for Alipay/WeChat Pay. <code>POST /orders/&lt;id&gt;/payment-intents</code> on
the API creates an intent; open its pay link to pay it.</p>
<table border="1" cellpadding="4"><tr><th>intent</th><th>order</th><th>channel</th>
<th>amount (cents)</th><th>paid as</th></tr>{rows}</table></body></html>"""

_PAY_PAGE = """<!doctype html><html><head><title>Sandbox pay</title></head><body>
<h1>{channel}: pay {amount} cents for order {order_id}</h1>
<form method="post" action="/pay/{intent_id}">
<p>duplicates <input name="duplicates"> amount_cents <input name="amount_cents">
delay_seconds <input name="delay_seconds"> (optional misbehaviour)</p>
<button type="submit">Pay</button></form></body></html>"""


async def _pay_options(request: Request) -> PayOptions:
    values: dict[str, str] = dict(request.query_params)
    if request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        values.update({k: v for k, v in form.items() if isinstance(v, str)})
    try:
        return PayOptions.model_validate({k: v for k, v in values.items() if v != ""})
    except ValidationError as exc:
        raise HTTPException(422, exc.errors(include_url=False, include_context=False)) from exc


def create_app(
    webhook_secret: str,
    api_key: str,
    *,
    public_url: str,
    deliver: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
    retry_base_delay: float = 0.2,
    max_attempts: int = 8,
) -> FastAPI:
    """Build a sandbox. ``deliver=False`` records callbacks without sending them;
    ``transport`` is used for outbound callbacks (tests route them to an in-process app)."""
    state = SandboxState(public_url=public_url.rstrip("/"))
    deliverer = Deliverer(
        webhook_secret,
        enabled=deliver,
        transport=transport,
        base_delay=retry_base_delay,
        max_attempts=max_attempts,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await deliverer.aclose()

    app = FastAPI(title="Payment gateway sandbox", lifespan=lifespan)
    auth = bearer_auth(api_key)

    @app.exception_handler(SandboxRejection)
    async def rejected(_: Request, exc: SandboxRejection) -> JSONResponse:
        body: dict[str, Any] = {"detail": exc.detail}
        if isinstance(exc, IntentCaptured):
            body["intent"] = exc.intent.model_dump(mode="json")
        return JSONResponse(body, status_code=exc.status_code)

    @app.post("/v1/intents", status_code=201, dependencies=[auth])
    async def create_intent(
        body: IntentIn, response: Response, key: IdempotencyKey = None
    ) -> PaymentIntent:
        intent, created = state.create_intent(body, key)
        response.status_code = 201 if created else 200
        return intent

    @app.get("/v1/intents/{intent_id}", dependencies=[auth])
    async def query_intent(intent_id: str) -> GatewayIntent:
        return state.intent_status(intent_id)

    @app.post("/v1/intents/{intent_id}/close", dependencies=[auth])
    async def close_intent(intent_id: str) -> GatewayIntent:
        return state.close_intent(intent_id)

    @app.get("/v1/captures", dependencies=[auth])
    async def captures(
        since: Annotated[str, Query(min_length=1, max_length=64)],
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: Annotated[str | None, Query(max_length=400)] = None,
    ) -> CapturePage:
        return state.captures(since, cursor, limit)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        """The sandbox's front page: every payment intent, newest first, with its pay link."""
        rows = "".join(
            f'<tr><td><a href="/pay/{html.escape(i.intent_id)}">{html.escape(i.intent_id)}</a>'
            f"</td><td>{html.escape(i.order_id)}</td><td>{html.escape(i.channel)}</td>"
            f"<td>{i.amount_cents}</td><td>{html.escape(state.paid_intents.get(i.intent_id, ''))}"
            "</td></tr>"
            for i in reversed(list(state.intents.values()))
        )
        return _INDEX_PAGE.format(rows=rows or '<tr><td colspan="5">none yet</td></tr>')

    @app.get("/pay/{intent_id}", response_class=HTMLResponse)
    async def pay_page(intent_id: str) -> str:
        intent = state.get_intent(intent_id)
        return _PAY_PAGE.format(
            channel=html.escape(intent.channel),
            amount=intent.amount_cents,
            order_id=html.escape(intent.order_id),
            intent_id=html.escape(intent.intent_id),
        )

    @app.post("/pay/{intent_id}")
    async def pay(intent_id: str, options: Annotated[PayOptions, Depends(_pay_options)]) -> Any:
        txn = state.capture(intent_id, options.amount_cents)
        payloads = [
            {
                "event_id": f"evt_{uuid.uuid4().hex}",
                "order_id": txn.order_id,
                "txn_id": txn.txn_id,
                "channel": txn.channel,
                "amount_cents": txn.amount_cents,
                "paid_at": txn.paid_at,
            }
            for _ in range(1 + options.duplicates)
        ]
        dropped = state.drop_callbacks(len(payloads))
        sent = payloads[dropped:]
        code = None
        if sent:
            first = await deliverer.send(
                state.notify_urls[intent_id], sent, delay=options.delay_seconds
            )
            code = first.attempts[0].status_code if first.attempts else None
        return {
            "txn_id": txn.txn_id,
            "event_ids": [p["event_id"] for p in sent],
            "dropped": [p["event_id"] for p in payloads[:dropped]],
            "delivered": code is not None and 200 <= code < 300,
            "status_code": code,
        }

    @app.post("/v1/refunds", status_code=201, dependencies=[auth])
    async def refund(
        body: RefundIn, response: Response, key: IdempotencyKey = None
    ) -> GatewayRefund:
        result, created = state.refund(body, key)
        response.status_code = 201 if created else 200
        return result

    @app.get("/v1/transactions/{txn_id}", dependencies=[auth])
    async def transaction(txn_id: str) -> dict[str, object]:
        return state.transaction(txn_id)

    @app.get("/v1/refunds/{refund_id}", dependencies=[auth])
    async def get_refund(refund_id: str) -> GatewayRefund:
        return state.get_refund(refund_id)

    @app.post("/v1/_faults", dependencies=[auth])
    async def faults(body: FaultsIn) -> FaultsIn:
        state.fail_next_refunds = body.fail_next_refunds
        state.refuse_next_refunds = body.refuse_next_refunds
        state.drop_next_callbacks = body.drop_next_callbacks
        state.refuse_next_closes = body.refuse_next_closes
        return body

    @app.get("/v1/deliveries", dependencies=[auth])
    async def deliveries(wait_seconds: Annotated[float, Query(ge=0, le=60)] = 0) -> Any:
        idle = await deliverer.wait_idle(wait_seconds)
        return {"idle": idle, "deliveries": [r.model_dump() for r in deliverer.records]}

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local payment gateway sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--public-url", help="default http://127.0.0.1:<port>")
    parser.add_argument("--no-deliver", action="store_true", help="record callbacks only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = create_app(
        os.environ.get("ORDERS_PAYMENT_WEBHOOK_SECRET", "dev-payment-secret"),
        os.environ.get("ORDERS_GATEWAY_API_KEY", "dev-gateway-key"),
        public_url=args.public_url or f"http://127.0.0.1:{args.port}",
        deliver=not args.no_deliver,
    )
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
