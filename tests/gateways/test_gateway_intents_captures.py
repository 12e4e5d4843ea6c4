"""The sandbox's trade query, trade close, capture listing and dropped-callback fault, through
the production client (and raw HTTP where the client has no say)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from gateways.payments import PaymentRefused

if TYPE_CHECKING:
    from tests.gateways.conftest import GatewayFactory, HttpFactory, Receiver, SandboxFactory

NOTIFY = "http://receiver.test/webhooks/payments"


async def test_an_open_intent_closed_can_never_be_paid(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory, gateway_client: GatewayFactory
) -> None:
    app = make_sandbox(deliver=False)
    client, http = gateway_client(app), sandbox_http(app)
    intent = await client.create_intent("order-1", "alipay", 1200, NOTIFY)
    assert (await client.query_intent(intent.intent_id)).status == "open"

    closed = await client.close_intent(intent.intent_id)
    assert (closed.status, closed.txn_id, closed.order_id) == ("closed", None, "order-1")
    assert await client.close_intent(intent.intent_id) == closed  # closing again: same answer
    assert await client.query_intent(intent.intent_id) == closed

    pay = await http.post(f"/pay/{intent.intent_id}")
    assert pay.status_code == 409 and "closed" in pay.json()["detail"]
    listed = await client.list_captures(datetime.now(UTC) - timedelta(hours=1))
    assert listed.items == []


async def test_closing_a_captured_intent_answers_with_the_capture(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory, gateway_client: GatewayFactory
) -> None:
    app = make_sandbox(deliver=False)
    client, http = gateway_client(app), sandbox_http(app)
    intent = await client.create_intent("order-2", "wechat", 990, NOTIFY)
    paid = (await http.post(f"/pay/{intent.intent_id}", params={"amount_cents": 900})).json()

    raw = await http.post(f"/v1/intents/{intent.intent_id}/close")
    assert raw.status_code == 409  # the gateway refuses: it was paid
    assert raw.json()["intent"]["txn_id"] == paid["txn_id"]

    found = await client.close_intent(intent.intent_id)
    assert (found.status, found.txn_id, found.captured_cents) == ("captured", paid["txn_id"], 900)
    assert found.amount_cents == 990  # what was asked; 900 is what was taken
    assert found.paid_at is not None and found.paid_at.utcoffset() == timedelta(0)
    assert await client.query_intent(intent.intent_id) == found


async def test_an_unknown_intent_is_refused_for_good(
    make_sandbox: SandboxFactory, gateway_client: GatewayFactory
) -> None:
    client = gateway_client(make_sandbox(deliver=False))
    with pytest.raises(PaymentRefused) as info:
        await client.query_intent("pi_nope")
    assert (info.value.status_code, info.value.retryable) == (404, False)
    with pytest.raises(PaymentRefused):
        await client.close_intent("pi_nope")


async def test_captures_are_listed_oldest_first_page_by_page(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory, gateway_client: GatewayFactory
) -> None:
    app = make_sandbox(deliver=False)
    client, http = gateway_client(app), sandbox_http(app)
    before = datetime.now(UTC) - timedelta(seconds=1)
    txns = []
    for n in range(5):
        intent = await client.create_intent(f"order-{n}", "alipay", 100 + n, NOTIFY)
        txns.append((await http.post(f"/pay/{intent.intent_id}")).json()["txn_id"])
    await client.create_intent("order-unpaid", "alipay", 7, NOTIFY)  # no capture

    first = await client.list_captures(before, limit=2)
    assert [c.txn_id for c in first.items] == txns[:2] and first.next_cursor
    second = await client.list_captures(before, cursor=first.next_cursor, limit=2)
    assert [c.txn_id for c in second.items] == txns[2:4]
    everything = [c async for c in client.captures(before, page_size=2)]
    assert [c.txn_id for c in everything] == txns
    head = everything[0]
    assert (head.order_id, head.amount_cents, head.channel) == ("order-0", 100, "alipay")
    assert [c async for c in client.captures(datetime.now(UTC) + timedelta(hours=1))] == []

    bad = await http.get("/v1/captures", params={"since": "yesterday"})
    assert bad.status_code == 422
    naive = await http.get("/v1/captures", params={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422
    bad_cursor = {"since": before.isoformat(), "cursor": "%%"}
    assert (await http.get("/v1/captures", params=bad_cursor)).status_code == 422


async def test_dropped_callbacks_are_captured_but_never_sent(
    make_sandbox: SandboxFactory,
    sandbox_http: HttpFactory,
    gateway_client: GatewayFactory,
    receiver: Receiver,
) -> None:
    app = make_sandbox(transport=receiver.transport())
    client, http = gateway_client(app), sandbox_http(app)
    assert (await http.post("/v1/_faults", json={"drop_next_callbacks": 1})).status_code == 200
    intent = await client.create_intent("order-9", "alipay", 500, NOTIFY)

    paid = (await http.post(f"/pay/{intent.intent_id}", params={"duplicates": 1})).json()
    assert len(paid["dropped"]) == 1 and len(paid["event_ids"]) == 1  # one of two swallowed
    log = (await http.get("/v1/deliveries", params={"wait_seconds": 5})).json()
    assert [r["event_id"] for r in log["deliveries"]] == paid["event_ids"]
    assert [r.payload["event_id"] for r in receiver.received] == paid["event_ids"]

    other = await client.create_intent("order-10", "alipay", 600, NOTIFY)
    assert (await http.post("/v1/_faults", json={"drop_next_callbacks": 1})).status_code == 200
    silent = (await http.post(f"/pay/{other.intent_id}")).json()
    assert (silent["event_ids"], silent["delivered"], silent["status_code"]) == ([], False, None)
    assert len(receiver.received) == 1  # nothing more was sent
    captured = await client.query_intent(other.intent_id)
    assert (captured.status, captured.txn_id) == ("captured", silent["txn_id"])
    assert (await http.post("/v1/_faults", json={"drop_next_callbacks": -1})).status_code == 422
