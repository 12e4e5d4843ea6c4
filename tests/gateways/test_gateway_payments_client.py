"""PaymentGatewayClient against the sandbox, in-process through httpx.ASGITransport."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from gateways.payments import PaymentGatewayClient, PaymentGatewayError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tests.gateways.conftest import GatewayFactory, HttpFactory, SandboxFactory

NOTIFY = "http://receiver.test/webhooks/payments"


async def _paid_txn(app: FastAPI, http: HttpFactory, gw: GatewayFactory, amount: int) -> str:
    """Create an intent and have the buyer pay it (callbacks only recorded)."""
    intent = await gw(app).create_intent("order-1", "wechat", amount, NOTIFY)
    response = await http(app).post(f"/pay/{intent.intent_id}")
    assert response.status_code == 200, response.text
    txn_id: str = response.json()["txn_id"]
    assert txn_id.startswith("wechat-")
    return txn_id


async def test_create_intent(make_sandbox: SandboxFactory, gateway_client: GatewayFactory) -> None:
    app = make_sandbox(public_url="http://pay.example:8010/", deliver=False)
    intent = await gateway_client(app).create_intent("order-42", "alipay", 1999, NOTIFY)
    assert (intent.order_id, intent.channel, intent.amount_cents) == ("order-42", "alipay", 1999)
    assert intent.intent_id
    assert intent.pay_url == f"http://pay.example:8010/pay/{intent.intent_id}"


async def test_create_intent_is_idempotent_per_order_channel_amount(
    make_sandbox: SandboxFactory, gateway_client: GatewayFactory
) -> None:
    client = gateway_client(make_sandbox(deliver=False))
    first = await client.create_intent("order-1", "alipay", 500, NOTIFY)
    again = await client.create_intent("order-1", "alipay", 500, NOTIFY)
    other = await client.create_intent("order-1", "wechat", 500, NOTIFY)
    assert again == first
    assert other.intent_id != first.intent_id


async def test_sends_bearer_and_idempotency_key_on_posts() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            201,
            json={"refund_id": "r1", "txn_id": "alipay-1", "amount_cents": 5, "status": "ok"},
        )

    async with PaymentGatewayClient(
        "http://gw.test", "k-123", transport=httpx.MockTransport(handler)
    ) as client:
        await client.refund("alipay-1", "r1", 5, "damaged")
    assert seen[0].headers["Authorization"] == "Bearer k-123"
    assert seen[0].headers["Idempotency-Key"] == "r1"
    assert seen[0].url.path == "/v1/refunds"


async def test_bad_channel_is_not_retryable(
    make_sandbox: SandboxFactory, gateway_client: GatewayFactory
) -> None:
    client = gateway_client(make_sandbox(deliver=False))
    with pytest.raises(PaymentGatewayError) as info:
        await client.create_intent("order-1", "paypal", 500, NOTIFY)
    assert (info.value.status_code, info.value.retryable) == (422, False)


async def test_bad_api_key_is_401(
    make_sandbox: SandboxFactory, gateway_client: GatewayFactory
) -> None:
    client = gateway_client(make_sandbox(deliver=False), api_key="wrong")
    with pytest.raises(PaymentGatewayError) as info:
        await client.create_intent("order-1", "alipay", 500, NOTIFY)
    assert (info.value.status_code, info.value.retryable) == (401, False)
    assert "API key" in info.value.message


async def test_refund_is_idempotent_on_refund_id(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory, gateway_client: GatewayFactory
) -> None:
    app = make_sandbox(deliver=False)
    txn_id = await _paid_txn(app, sandbox_http, gateway_client, 1000)
    client = gateway_client(app)
    first = await client.refund(txn_id, "refund-1", 600, "customer cancelled")
    second = await client.refund(txn_id, "refund-1", 600, "customer cancelled")
    assert first == second
    assert (first.refund_id, first.txn_id, first.amount_cents) == ("refund-1", txn_id, 600)
    # Only one 600 refund was booked: the remaining 400 is still refundable, not more.
    assert (await client.refund(txn_id, "refund-2", 400, "rest")).amount_cents == 400
    with pytest.raises(PaymentGatewayError) as info:
        await client.refund(txn_id, "refund-3", 1, "too much")
    assert info.value.status_code == 409
    fetched = await sandbox_http(app).get("/v1/refunds/refund-1")
    assert fetched.status_code == 200
    assert fetched.json()["amount_cents"] == 600


async def test_over_refund_is_409_with_gateway_message(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory, gateway_client: GatewayFactory
) -> None:
    app = make_sandbox(deliver=False)
    txn_id = await _paid_txn(app, sandbox_http, gateway_client, 1000)
    with pytest.raises(PaymentGatewayError) as info:
        await gateway_client(app).refund(txn_id, "refund-1", 1001, "too much")
    assert (info.value.status_code, info.value.retryable) == (409, False)
    assert "exceeds refundable amount 1000" in info.value.message


async def test_refund_id_reused_with_other_amount_is_409(
    make_sandbox: SandboxFactory, gateway_client: GatewayFactory
) -> None:
    client = gateway_client(make_sandbox(deliver=False))
    await client.refund("alipay-abc", "refund-1", 100, "x")
    with pytest.raises(PaymentGatewayError) as info:
        await client.refund("alipay-abc", "refund-1", 200, "x")
    assert info.value.status_code == 409


async def test_unknown_txn_is_404_but_channel_like_ids_are_accepted(
    make_sandbox: SandboxFactory, gateway_client: GatewayFactory
) -> None:
    client = gateway_client(make_sandbox(deliver=False))
    with pytest.raises(PaymentGatewayError) as info:
        await client.refund("paypal-123", "refund-1", 100, "x")
    assert (info.value.status_code, info.value.retryable) == (404, False)
    refund = await client.refund("alipay-never-seen", "refund-2", 100, "x")
    assert refund.status == "succeeded"


async def test_injected_503_is_retryable_then_refund_succeeds_once(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory, gateway_client: GatewayFactory
) -> None:
    app = make_sandbox(deliver=False)
    txn_id = await _paid_txn(app, sandbox_http, gateway_client, 1000)
    faults = await sandbox_http(app).post("/v1/_faults", json={"fail_next_refunds": 2})
    assert faults.status_code == 200
    client = gateway_client(app)
    for _ in range(2):
        with pytest.raises(PaymentGatewayError) as info:
            await client.refund(txn_id, "refund-1", 1000, "retry me")
        assert (info.value.status_code, info.value.retryable) == (503, True)
    assert (await client.refund(txn_id, "refund-1", 1000, "retry me")).amount_cents == 1000
    assert (await client.refund(txn_id, "refund-1", 1000, "retry me")).amount_cents == 1000


async def test_idempotency_key_header_is_honoured(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory
) -> None:
    http = sandbox_http(make_sandbox(deliver=False))
    body = {"txn_id": "alipay-x", "refund_id": "r-1", "amount_cents": 10, "reason": ""}
    first = await http.post("/v1/refunds", json=body, headers={"Idempotency-Key": "k1"})
    replay = await http.post(
        "/v1/refunds", json={**body, "refund_id": "r-2"}, headers={"Idempotency-Key": "k1"}
    )
    assert first.status_code == 201
    assert replay.status_code == 409  # same key, different request
    again = await http.post("/v1/refunds", json=body, headers={"Idempotency-Key": "k1"})
    assert (again.status_code, again.json()) == (200, first.json())


async def test_connection_error_is_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = PaymentGatewayClient("http://gw.test", "k", transport=httpx.MockTransport(handler))
    with pytest.raises(PaymentGatewayError) as info:
        await client.create_intent("order-1", "alipay", 1, NOTIFY)
    await client.aclose()
    assert info.value.retryable is True
    assert info.value.status_code is None


async def test_unexpected_response_shape_is_not_retryable() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json={"nope": 1}))
    client = PaymentGatewayClient("http://gw.test", "k", transport=transport)
    with pytest.raises(PaymentGatewayError) as info:
        await client.refund("alipay-1", "r1", 1, "x")
    await client.aclose()
    assert info.value.retryable is False
