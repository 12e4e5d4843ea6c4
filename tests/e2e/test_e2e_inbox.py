"""The callback inbox: a payment made while the API cannot reach Temporal is answered 2xx
once recorded, waits in the inbox, and reaches its order when the relay runs again."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api.app import create_app
from gateways.payments import PaymentGatewayClient
from runtime.relay import Relay
from runtime.temporal_client import connect
from sandboxes.signed import post_signed
from scripts.serve import listening_socket, serving, url_of
from store.db import Database
from tests.e2e.harness import Stack, expect_problem, ok

pytestmark = pytest.mark.e2e


async def test_a_payment_during_an_outage_is_recorded_then_delivered(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5}, price_cents=2500)
    order = await stack.placed(buyer, [(sku, 1)])

    # the same API, but its Temporal is unreachable (nothing listens on port 1)
    sock = listening_socket()
    settings = stack.settings.model_copy(
        update={"api_public_url": url_of(sock), "relay_sender_patience_seconds": 2.0}
    )
    db = Database(settings.database_url)
    gateway = PaymentGatewayClient(settings.gateway_url, settings.gateway_api_key)
    dead = await connect(target_host="127.0.0.1:1")
    app = create_app(settings, temporal=dead, db=db, gateway=gateway)
    try:
        async with (
            serving(app, sock, "api-without-temporal"),
            httpx.AsyncClient(base_url=url_of(sock), timeout=30) as down,
        ):
            # not ready, and saying why; alive all the same
            not_ready = await down.get("/readyz")
            assert not_ready.status_code == 503
            assert not_ready.json()["database"] == "ok"
            assert not_ready.json()["temporal"].startswith("unavailable")
            assert ok(await down.get("/healthz")) == {"status": "ok"}
            assert ok(await stack.http.get("/readyz")) == {
                "status": "ok",
                "database": "ok",
                "temporal": "ok",
            }
            # reads and the intent (a database read and a gateway call) still work
            assert ok(await down.get(f"/orders/{order['id']}", headers=buyer.headers)) == order
            expect_problem(
                await down.post(
                    f"/orders/{order['id']}/pay", json={"channel": "balance"}, headers=buyer.headers
                ),
                503,
                "TEMPORAL_UNAVAILABLE",
            )
            intent = ok(
                await down.post(
                    f"/orders/{order['id']}/payment-intents",
                    json={"channel": "alipay"},
                    headers=buyer.headers,
                ),
                201,
            )
            # the buyer pays; the gateway notifies twice (two event ids, one transaction)
            paid = ok(await stack.http.post(intent["pay_url"], params={"duplicates": 1}))
            # each answered 2xx at its first attempt: recorded, not yet delivered
            assert (paid["delivered"], paid["status_code"]) == (True, 200), paid
            log = ok(await stack.gateway("GET", "/v1/deliveries", params={"wait_seconds": 30}))
            records = [r for r in log["deliveries"] if r["event_id"] in paid["event_ids"]]
            assert [[a["status_code"] for a in r["attempts"]] for r in records] == [[200], [200]]

            pending = ok(await down.get("/admin/callbacks/pending", headers=stack.admin.headers))[
                "items"
            ]
            waiting = [e for e in pending if e["order_id"] == order["id"]]
            assert sorted(e["event_id"] for e in waiting) == sorted(paid["event_ids"])
            assert {(e["source"], e["attempts"]) for e in waiting} == {("payment", 1)}
            assert all(e["last_error"] for e in waiting)
            expect_problem(
                await down.get("/admin/callbacks/pending", headers=buyer.headers),
                403,
                "FORBIDDEN",
            )
            assert ok(await down.get(f"/orders/{order['id']}", headers=buyer.headers)) == order

            relay = Relay(db, stack.temporal, settings.task_queue)
            assert await relay.run_once() == 0  # not due yet: it backs off
            later = datetime.now(UTC) + timedelta(minutes=10)
            assert await relay.run_once(now=later) == 2  # Temporal is back: delivered
            assert await relay.run_once(now=later) == 0  # and only once
    finally:
        await gateway.aclose()
        await db.dispose()

    settled = await stack.wait_order(
        buyer, order["id"], lambda o: o["status"] != "PENDING_PAYMENT", "the relayed payment"
    )
    assert settled["status"] == "PENDING_SHIPMENT"
    assert settled["payment"]["txn_id"] == paid["txn_id"]
    assert settled["refunds"] == []  # the second notice of the same transaction: no effect
    assert settled["paid_cents"] == order["total_cents"]
    pending = ok(await stack.http.get("/admin/callbacks/pending", headers=stack.admin.headers))
    assert [e for e in pending["items"] if e["order_id"] == order["id"]] == []


async def test_readiness_names_a_database_that_does_not_answer(stack: Stack) -> None:
    db = Database("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")  # nothing listens
    app = create_app(stack.settings, temporal=stack.temporal, db=db, gateway=None)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            answer = await c.get("/readyz")
            assert answer.status_code == 503
            assert answer.json()["temporal"] == "ok"
            assert answer.json()["database"].startswith("unavailable")
    finally:
        await db.dispose()


async def test_an_event_id_reused_for_another_payment_is_refused_and_listed(
    stack: Stack,
) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5}, price_cents=2500)
    order, other = await stack.placed(buyer, [(sku, 1)]), await stack.placed(buyer, [(sku, 2)])
    intent = ok(
        await stack.act(buyer, f"/orders/{order['id']}/payment-intents", {"channel": "alipay"}),
        201,
    )
    paid = ok(await stack.http.post(intent["pay_url"]))
    assert (paid["delivered"], paid["status_code"]) == (True, 200), paid
    log = ok(await stack.gateway("GET", "/v1/deliveries", params={"wait_seconds": 10}))
    [sent] = [r["payload"] for r in log["deliveries"] if r["event_id"] in paid["event_ids"]]
    settled = await stack.wait_order(
        buyer, order["id"], lambda o: o["status"] != "PENDING_PAYMENT", "the payment"
    )
    url, secret = f"{stack.base_url}/webhooks/payments", stack.settings.payment_webhook_secret

    # the gateway's retry of what it sent: the same event, answered as a duplicate
    again = await post_signed(url, sent, secret, client=stack.http)
    assert ok(again)["status"] == "duplicate"

    # the same event id for another order, transaction and channel: not the same event
    reused = {
        **sent,
        "order_id": other["id"],
        "txn_id": f"wechat-{uuid.uuid4().hex}",
        "channel": "wechat",
        "amount_cents": other["total_cents"],
    }
    answer = await post_signed(url, reused, secret, client=stack.http)
    body = expect_problem(answer, 409, "EVENT_ID_REUSED")
    assert "different payload" in body["detail"]
    expect_problem(
        await post_signed(url, reused, secret, client=stack.http), 409, "EVENT_ID_REUSED"
    )

    listed = ok(await stack.http.get("/admin/callbacks/pending", headers=stack.admin.headers))
    mine = [e for e in listed["reused"] if e["event_id"] == sent["event_id"]]
    assert len(mine) == 1  # kept once, however often it is sent
    assert (mine[0]["source"], mine[0]["order_id"], mine[0]["first_order_id"]) == (
        "payment",
        other["id"],
        order["id"],
    )
    assert json.loads(mine[0]["payload"])["txn_id"] == reused["txn_id"]
    assert json.loads(mine[0]["first_payload"])["txn_id"] == paid["txn_id"]
    # nothing moved: the other order is unpaid, the first paid once
    assert await stack.order(buyer, other["id"]) == other
    assert await stack.order(buyer, order["id"]) == settled
    assert await stack.signals(other["id"]) == []
