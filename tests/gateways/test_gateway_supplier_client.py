"""SupplierClient against the supplier sandbox, in-process through httpx.ASGITransport."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

from gateways.supplier import SupplierClient, SupplierError, SupplierItem

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tests.gateways.conftest import HttpFactory, SupplierClientFactory, SupplierSandboxFactory

NOTIFY = "http://receiver.test/webhooks/suppliers/kepler"
ITEMS = [SupplierItem(sku="sku-1", quantity=2), SupplierItem(sku="sku-2", quantity=1)]


async def _calls(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await http.get("/v1/_calls")
    assert response.status_code == 200
    calls: list[dict[str, Any]] = response.json()
    return calls


async def _faults(http: httpx.AsyncClient, **faults: Any) -> None:
    response = await http.post("/v1/_faults", json=faults)
    assert response.status_code == 200, response.text


async def _advance(http: httpx.AsyncClient, order_id: str, state: str) -> httpx.Response:
    return await http.post(f"/v1/orders/{order_id}/advance", json={"state": state})


async def test_place_order(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_client: SupplierClientFactory,
    supplier_http: HttpFactory,
) -> None:
    app = make_supplier_sandbox()
    order = await supplier_client(app).place_order("pkg-1", ITEMS, NOTIFY)
    assert (order.external_ref, order.status, order.items) == ("pkg-1", "ACCEPTED", ITEMS)
    assert order.supplier_order_id
    assert await supplier_client(app).get_order(order.supplier_order_id) == order


async def test_same_external_ref_twice_buys_once(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_client: SupplierClientFactory,
    supplier_http: HttpFactory,
) -> None:
    app = make_supplier_sandbox()
    client = supplier_client(app)
    first = await client.place_order("pkg-1", ITEMS, NOTIFY)
    again = await client.place_order("pkg-1", ITEMS[:1], NOTIFY)  # whatever the body
    other = await client.place_order("pkg-2", ITEMS, NOTIFY)
    assert again == first
    assert other.supplier_order_id != first.supplier_order_id
    http = supplier_http(app)
    calls = [c for c in await _calls(http) if c["external_ref"] == "pkg-1"]
    assert [(c["method"], c["path"], c["outcome"]) for c in calls] == [
        ("POST", "/v1/orders", "created"),
        ("POST", "/v1/orders", "replayed"),
    ]
    assert {c["supplier_order_id"] for c in calls} == {first.supplier_order_id}
    listed = await http.get("/v1/orders", params={"external_ref": "pkg-1"})
    assert [o["supplier_order_id"] for o in listed.json()] == [first.supplier_order_id]
    assert len((await http.get("/v1/orders")).json()) == 2


async def test_sends_bearer_and_external_ref_as_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {"supplier_order_id": "ko_1", "external_ref": "pkg-9", "status": "ACCEPTED"}
        return httpx.Response(201, json={**body, "items": []})

    async with SupplierClient(
        "http://supplier.test", "k-1", transport=httpx.MockTransport(handler)
    ) as client:
        await client.place_order("pkg-9", ITEMS, NOTIFY)
    [request] = seen
    assert request.headers["Authorization"] == "Bearer k-1"
    assert request.headers["Idempotency-Key"] == "pkg-9"
    assert (request.method, request.url.path) == ("POST", "/v1/orders")


async def test_refused_order_is_refused_not_retryable(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_client: SupplierClientFactory,
    supplier_http: HttpFactory,
) -> None:
    app = make_supplier_sandbox()
    http = supplier_http(app)
    await _faults(http, refuse_next_orders=1)
    client = supplier_client(app)
    with pytest.raises(SupplierError) as info:
        await client.place_order("pkg-1", ITEMS, NOTIFY)
    error = info.value
    assert (error.refused, error.retryable, error.status_code) == (True, False, 409)
    assert error.message == "refused: out of stock at supplier"
    assert (await http.get("/v1/orders")).json() == []
    order = await client.place_order("pkg-1", ITEMS, NOTIFY)  # only the next order was refused
    assert order.status == "ACCEPTED"
    assert [c["outcome"] for c in await _calls(http)] == ["refused", "created"]


async def test_injected_503_is_retryable_and_the_retry_buys_once(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_client: SupplierClientFactory,
    supplier_http: HttpFactory,
) -> None:
    app = make_supplier_sandbox()
    http = supplier_http(app)
    await _faults(http, fail_next_orders=2)
    client = supplier_client(app)
    for _ in range(2):
        with pytest.raises(SupplierError) as info:
            await client.place_order("pkg-1", ITEMS, NOTIFY)
        error = info.value
        assert (error.retryable, error.refused, error.status_code) == (True, False, 503)
    order = await client.place_order("pkg-1", ITEMS, NOTIFY)
    assert await client.place_order("pkg-1", ITEMS, NOTIFY) == order
    assert [c["outcome"] for c in await _calls(http)] == ["failed", "failed", "created", "replayed"]


@pytest.mark.parametrize("status", [429, 500, 502])
async def test_429_and_5xx_are_retryable(status: int) -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(status, json={"detail": "busy"}))
    async with SupplierClient("http://supplier.test", "k", transport=transport) as client:
        with pytest.raises(SupplierError) as info:
            await client.cancel("ko_1", "buyer cancelled")
    assert (info.value.retryable, info.value.refused, info.value.status_code) == (
        True,
        False,
        status,
    )
    assert "busy" in info.value.message


async def test_connection_error_is_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with SupplierClient(
        "http://supplier.test", "k", transport=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(SupplierError) as info:
            await client.place_order("pkg-1", ITEMS, NOTIFY)
    assert (info.value.retryable, info.value.refused, info.value.status_code) == (True, False, None)


async def test_answer_for_another_external_ref_is_an_error() -> None:
    body = {"supplier_order_id": "ko_1", "external_ref": "pkg-OTHER", "status": "ACCEPTED"}
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json={**body, "items": []}))
    async with SupplierClient("http://supplier.test", "k", transport=transport) as client:
        with pytest.raises(SupplierError) as info:
            await client.place_order("pkg-1", ITEMS, NOTIFY)
    assert (info.value.retryable, info.value.refused) == (False, False)


async def test_unexpected_response_shape_is_not_retryable() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json={"nope": 1}))
    async with SupplierClient("http://supplier.test", "k", transport=transport) as client:
        with pytest.raises(SupplierError) as info:
            await client.get_order("ko_1")
    assert info.value.retryable is False


async def test_empty_items_is_422_not_refused(
    make_supplier_sandbox: SupplierSandboxFactory, supplier_client: SupplierClientFactory
) -> None:
    client = supplier_client(make_supplier_sandbox())
    with pytest.raises(SupplierError) as info:
        await client.place_order("pkg-1", [], NOTIFY)
    assert (info.value.status_code, info.value.retryable, info.value.refused) == (422, False, False)


async def test_cancel_accepted_order_is_idempotent(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_client: SupplierClientFactory,
    supplier_http: HttpFactory,
) -> None:
    app = make_supplier_sandbox()
    client = supplier_client(app)
    order = await client.place_order("pkg-1", ITEMS, NOTIFY)
    result = await client.cancel(order.supplier_order_id, "buyer cancelled")
    assert (result.supplier_order_id, result.cancelled, result.reason) == (
        order.supplier_order_id,
        True,
        "buyer cancelled",
    )
    assert (await client.cancel(order.supplier_order_id, "again")).cancelled is True
    assert (await client.get_order(order.supplier_order_id)).status == "CANCELLED"
    http = supplier_http(app)
    assert (await _advance(http, order.supplier_order_id, "AWAITING_RECEIPT")).status_code == 409
    cancels = [c for c in await _calls(http) if c["path"].endswith("/cancel")]
    assert [(c["supplier_order_id"], c["outcome"]) for c in cancels] == [
        (order.supplier_order_id, "cancelled")
    ] * 2


async def test_cancel_after_shipping_is_refused_with_reason(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_client: SupplierClientFactory,
    supplier_http: HttpFactory,
) -> None:
    app = make_supplier_sandbox(transport=httpx.MockTransport(lambda _: httpx.Response(200)))
    client = supplier_client(app)
    order = await client.place_order("pkg-1", ITEMS, NOTIFY)
    shipped = await _advance(supplier_http(app), order.supplier_order_id, "AWAITING_RECEIPT")
    assert shipped.status_code == 200, shipped.text
    result = await client.cancel(order.supplier_order_id, "buyer cancelled")
    assert (result.supplier_order_id, result.cancelled) == (order.supplier_order_id, False)
    assert "already shipped (AWAITING_RECEIPT)" in result.reason
    assert (await client.get_order(order.supplier_order_id)).status == "AWAITING_RECEIPT"


async def test_cancel_refused_by_fault_flag(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_client: SupplierClientFactory,
    supplier_http: HttpFactory,
) -> None:
    app = make_supplier_sandbox()
    http = supplier_http(app)
    client = supplier_client(app)
    order = await client.place_order("pkg-1", ITEMS, NOTIFY)
    await _faults(http, refuse_cancels=True)
    result = await client.cancel(order.supplier_order_id, "buyer cancelled")
    assert result.cancelled is False
    assert "refuses to cancel" in result.reason
    assert (await client.get_order(order.supplier_order_id)).status == "ACCEPTED"
    await _faults(http, refuse_cancels=False)
    assert (await client.cancel(order.supplier_order_id, "buyer cancelled")).cancelled is True


async def test_unknown_order_is_404_not_retryable(
    make_supplier_sandbox: SupplierSandboxFactory, supplier_client: SupplierClientFactory
) -> None:
    client = supplier_client(make_supplier_sandbox())
    with pytest.raises(SupplierError) as cancel:
        await client.cancel("ko_nope", "x")
    with pytest.raises(SupplierError) as get:
        await client.get_order("ko_nope")
    for info in (cancel, get):
        assert (info.value.status_code, info.value.retryable) == (404, False)
        assert "unknown supplier order ko_nope" in info.value.message


async def test_bad_api_key_is_401_and_logged(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_client: SupplierClientFactory,
    supplier_http: HttpFactory,
) -> None:
    app: FastAPI = make_supplier_sandbox()
    client = supplier_client(app, api_key="wrong")
    with pytest.raises(SupplierError) as info:
        await client.place_order("pkg-1", ITEMS, NOTIFY)
    assert (info.value.status_code, info.value.retryable, info.value.refused) == (401, False, False)
    assert "API key" in info.value.message
    http = supplier_http(app)
    assert (await http.get("/v1/orders")).json() == []
    [call] = await _calls(http)
    assert (call["external_ref"], call["status_code"], call["outcome"]) == (
        "pkg-1",
        401,
        "unauthorized",
    )
