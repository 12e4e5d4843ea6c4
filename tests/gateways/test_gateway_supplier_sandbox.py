"""Supplier sandbox: state moves, signed callbacks, auto-shipping, HTML page, CLI."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn

from gateways.signing import verify
from sandboxes import supplier as sandbox_supplier

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tests.gateways.conftest import HttpFactory, Receiver, SupplierSandboxFactory

NOTIFY = "http://receiver.test/webhooks/suppliers/kepler"
ORDER = {"external_ref": "pkg-7", "items": [{"sku": "sku-1", "quantity": 1}], "notify_url": NOTIFY}


async def _order(http: httpx.AsyncClient, external_ref: str = "pkg-7") -> str:
    response = await http.post("/v1/orders", json={**ORDER, "external_ref": external_ref})
    assert response.status_code == 201, response.text
    order_id: str = response.json()["supplier_order_id"]
    return order_id


async def _advance(http: httpx.AsyncClient, order_id: str, state: str) -> httpx.Response:
    return await http.post(f"/v1/orders/{order_id}/advance", json={"state": state})


async def _deliveries(http: httpx.AsyncClient, wait: float = 5) -> list[dict[str, Any]]:
    response = await http.get("/v1/deliveries", params={"wait_seconds": wait})
    assert response.status_code == 200
    assert response.json()["idle"] is True
    records: list[dict[str, Any]] = response.json()["deliveries"]
    return records


async def _status(http: httpx.AsyncClient, order_id: str) -> str:
    status: str = (await http.get(f"/v1/orders/{order_id}")).json()["status"]
    return status


def _app(make: SupplierSandboxFactory, receiver: Receiver, **kwargs: Any) -> FastAPI:
    app: FastAPI = make(transport=receiver.transport(), **kwargs)
    return app


async def test_advance_sends_signed_callback_with_package_id(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_http: HttpFactory,
    supplier_receiver: Receiver,
) -> None:
    http = supplier_http(_app(make_supplier_sandbox, supplier_receiver))
    order_id = await _order(http)
    response = await _advance(http, order_id, "AWAITING_RECEIPT")
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["state"], result["delivered"], result["status_code"]) == (
        "AWAITING_RECEIPT",
        True,
        200,
    )
    [got] = supplier_receiver.received
    assert got.signature_error is None
    assert set(got.payload) == {"event_id", "supplier_order_id", "package_id", "state", "at"}
    assert got.payload["event_id"] == result["event_id"]
    assert (got.payload["supplier_order_id"], got.payload["package_id"]) == (order_id, "pkg-7")
    assert got.payload["state"] == "AWAITING_RECEIPT"
    assert got.payload["at"].endswith("Z")
    assert datetime.fromisoformat(got.payload["at"]).utcoffset() is not None
    assert (await _advance(http, order_id, "RECEIVED")).json()["delivered"] is True
    assert [r.payload["state"] for r in supplier_receiver.received] == [
        "AWAITING_RECEIPT",
        "RECEIVED",
    ]
    assert await _status(http, order_id) == "RECEIVED"


async def test_callback_is_signed_with_the_supplier_secret(
    make_supplier_sandbox: SupplierSandboxFactory, supplier_http: HttpFactory
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    app = make_supplier_sandbox(transport=httpx.MockTransport(handler))
    http = supplier_http(app)
    order_id = await _order(http)
    assert (await _advance(http, order_id, "AWAITING_RECEIPT")).json()["delivered"] is True
    [request] = seen
    assert str(request.url) == NOTIFY
    verify(request.headers["X-Signature"], request.content, "test-supplier-secret")
    assert json.loads(request.content)["package_id"] == "pkg-7"


async def test_receiver_with_another_secret_rejects(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_http: HttpFactory,
    supplier_receiver: Receiver,
) -> None:
    supplier_receiver.secret = "payment-secret"
    http = supplier_http(_app(make_supplier_sandbox, supplier_receiver))
    result = (await _advance(http, await _order(http), "AWAITING_RECEIPT")).json()
    assert (result["delivered"], result["status_code"]) == (False, 401)
    assert supplier_receiver.received[0].signature_error == "signature mismatch"
    [record] = await _deliveries(http)
    assert record["status"] == "gave_up"


async def test_failed_callback_is_retried(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_http: HttpFactory,
    supplier_receiver: Receiver,
) -> None:
    supplier_receiver.statuses.extend([503, 500])
    http = supplier_http(_app(make_supplier_sandbox, supplier_receiver))
    result = (await _advance(http, await _order(http), "AWAITING_RECEIPT")).json()
    assert (result["delivered"], result["status_code"]) == (False, 503)
    [record] = await _deliveries(http)
    assert record["status"] == "delivered"
    assert [a["status_code"] for a in record["attempts"]] == [503, 500, 200]
    assert {r.payload["event_id"] for r in supplier_receiver.received} == {result["event_id"]}


@pytest.mark.parametrize(
    ("moves", "refused"),
    [
        ([], "RECEIVED"),
        ([], "REJECTED"),
        (["AWAITING_RECEIPT"], "AWAITING_RECEIPT"),
        (["AWAITING_RECEIPT", "RECEIVED"], "REJECTED"),
        (["AWAITING_RECEIPT", "REJECTED"], "RECEIVED"),
        (["CANCEL"], "AWAITING_RECEIPT"),
    ],
)
async def test_impossible_moves_are_409_and_send_nothing(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_http: HttpFactory,
    supplier_receiver: Receiver,
    moves: list[str],
    refused: str,
) -> None:
    http = supplier_http(_app(make_supplier_sandbox, supplier_receiver))
    order_id = await _order(http)
    for move in moves:
        if move == "CANCEL":
            done = await http.post(f"/v1/orders/{order_id}/cancel", json={"reason": "x"})
        else:
            done = await _advance(http, order_id, move)
        assert done.status_code == 200, done.text
    before = await _status(http, order_id)
    response = await _advance(http, order_id, refused)
    assert response.status_code == 409
    assert f"from {before} to {refused}" in response.json()["detail"]
    assert await _status(http, order_id) == before
    assert len(supplier_receiver.received) == len([m for m in moves if m != "CANCEL"])


async def test_bad_state_and_unknown_order(
    make_supplier_sandbox: SupplierSandboxFactory, supplier_http: HttpFactory
) -> None:
    http = supplier_http(make_supplier_sandbox())
    order_id = await _order(http)
    assert (await _advance(http, order_id, "LOST")).status_code == 422
    assert (await _advance(http, "ko_nope", "AWAITING_RECEIPT")).status_code == 404
    assert (await http.get("/v1/orders/ko_nope")).status_code == 404


async def test_auto_ship_after_delay(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_http: HttpFactory,
    supplier_receiver: Receiver,
) -> None:
    http = supplier_http(_app(make_supplier_sandbox, supplier_receiver, auto_ship_seconds=0.05))
    order_id = await _order(http)
    again = await http.post("/v1/orders", json=ORDER)  # a replay does not ship twice
    assert again.status_code == 200
    [record] = await _deliveries(http)
    assert record["status"] == "delivered"
    assert (record["payload"]["state"], record["payload"]["package_id"]) == (
        "AWAITING_RECEIPT",
        "pkg-7",
    )
    [got] = supplier_receiver.received
    assert got.signature_error is None
    assert got.payload == record["payload"]
    assert await _status(http, order_id) == "AWAITING_RECEIPT"


async def test_wait_reports_busy_while_a_shipment_is_pending(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_http: HttpFactory,
    supplier_receiver: Receiver,
) -> None:
    http = supplier_http(_app(make_supplier_sandbox, supplier_receiver, auto_ship_seconds=30))
    await _order(http)
    response = await http.get("/v1/deliveries", params={"wait_seconds": 0.01})
    assert response.json() == {"idle": False, "deliveries": []}


async def test_cancel_before_auto_ship_stops_shipping(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_http: HttpFactory,
    supplier_receiver: Receiver,
) -> None:
    http = supplier_http(_app(make_supplier_sandbox, supplier_receiver, auto_ship_seconds=0.2))
    order_id = await _order(http)
    cancelled = await http.post(f"/v1/orders/{order_id}/cancel", json={"reason": "buyer"})
    assert cancelled.json() == {"supplier_order_id": order_id, "cancelled": True, "reason": "buyer"}
    assert await _deliveries(http, wait=1) == []
    assert supplier_receiver.received == []
    assert await _status(http, order_id) == "CANCELLED"


async def test_failing_cancels_answer_503_and_change_nothing_until_they_pass(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_http: HttpFactory,
    supplier_receiver: Receiver,
) -> None:
    http = supplier_http(_app(make_supplier_sandbox, supplier_receiver))
    order_id = await _order(http)
    await http.post("/v1/_faults", json={"fail_next_cancels": 2})
    for _ in range(2):
        failed = await http.post(f"/v1/orders/{order_id}/cancel", json={"reason": "buyer"})
        assert failed.status_code == 503
        assert await _status(http, order_id) == "ACCEPTED"
    cancelled = await http.post(f"/v1/orders/{order_id}/cancel", json={"reason": "buyer"})
    assert cancelled.json()["cancelled"] is True
    assert await _status(http, order_id) == "CANCELLED"


async def test_without_auto_ship_nothing_ships(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_http: HttpFactory,
    supplier_receiver: Receiver,
) -> None:
    http = supplier_http(_app(make_supplier_sandbox, supplier_receiver))
    order_id = await _order(http)
    assert await _deliveries(http) == []
    assert await _status(http, order_id) == "ACCEPTED"


async def test_html_page_and_buttons_need_no_api_key(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_http: HttpFactory,
    supplier_receiver: Receiver,
) -> None:
    app = _app(make_supplier_sandbox, supplier_receiver)
    order_id = await _order(supplier_http(app))
    people = supplier_http(app, api_key=None)
    page = await people.get(f"/orders/{order_id}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for state in ("AWAITING_RECEIPT", "RECEIVED", "REJECTED"):
        assert f'action="/orders/{order_id}/advance/{state}"' in page.text
    assert "ACCEPTED" in page.text
    clicked = await people.post(f"/orders/{order_id}/advance/AWAITING_RECEIPT")
    assert (clicked.status_code, clicked.json()["delivered"]) == (200, True)
    assert supplier_receiver.received[0].payload["state"] == "AWAITING_RECEIPT"
    assert (await people.post(f"/orders/{order_id}/advance/AWAITING_RECEIPT")).status_code == 409
    assert (await people.post(f"/orders/{order_id}/advance/LOST")).status_code == 422
    assert (await people.get("/orders/ko_nope")).status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/orders"),
        ("GET", "/v1/orders"),
        ("GET", "/v1/orders/ko_1"),
        ("POST", "/v1/orders/ko_1/cancel"),
        ("POST", "/v1/orders/ko_1/advance"),
        ("POST", "/v1/_faults"),
        ("GET", "/v1/_calls"),
        ("GET", "/v1/deliveries"),
    ],
)
async def test_v1_needs_the_api_key(
    make_supplier_sandbox: SupplierSandboxFactory,
    supplier_http: HttpFactory,
    method: str,
    path: str,
) -> None:
    app = make_supplier_sandbox()
    for key in (None, "wrong"):
        response = await supplier_http(app, api_key=key).request(method, path, json={})
        assert response.status_code == 401, (key, response.text)


async def test_call_log_records_rejected_calls_but_not_reads(
    make_supplier_sandbox: SupplierSandboxFactory, supplier_http: HttpFactory
) -> None:
    http = supplier_http(make_supplier_sandbox())
    bad = await http.post("/v1/orders", json={**ORDER, "items": []})
    assert bad.status_code == 422
    order_id = await _order(http)
    await http.get(f"/v1/orders/{order_id}")
    await http.get("/v1/orders")
    await http.post("/v1/orders/ko_nope/cancel", json={"reason": "x"})
    calls = (await http.get("/v1/_calls")).json()
    assert [(c["path"], c["status_code"], c["outcome"]) for c in calls] == [
        ("/v1/orders", 422, "invalid"),
        ("/v1/orders", 201, "created"),
        ("/v1/orders/ko_nope/cancel", 404, "not_found"),
    ]
    assert calls[1]["supplier_order_id"] == order_id
    assert calls[2]["supplier_order_id"] == "ko_nope"


async def test_faults_update_only_given_fields(
    make_supplier_sandbox: SupplierSandboxFactory, supplier_http: HttpFactory
) -> None:
    http = supplier_http(make_supplier_sandbox())
    first = await http.post("/v1/_faults", json={"refuse_cancels": True, "fail_next_orders": 1})
    assert first.json() == {
        "fail_next_orders": 1,
        "refuse_next_orders": 0,
        "refuse_cancels": True,
        "fail_next_cancels": 0,
    }
    second = await http.post("/v1/_faults", json={"refuse_next_orders": 2, "fail_next_cancels": 3})
    assert second.json() == {
        "fail_next_orders": 1,
        "refuse_next_orders": 2,
        "refuse_cancels": True,
        "fail_next_cancels": 3,
    }
    assert (await http.post("/v1/_faults", json={"fail_next_orders": -1})).status_code == 422


def test_cli_reads_secret_and_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[FastAPI, str, int]] = []
    monkeypatch.setenv("ORDERS_SUPPLIER_API_KEY", "env-key")
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port: started.append((app, host, port)))
    created: list[dict[str, Any]] = []
    real_create = sandbox_supplier.create_app

    def spy(secret: str, key: str, **kwargs: Any) -> FastAPI:
        created.append({"secret": secret, "key": key, **kwargs})
        return real_create(secret, key, **kwargs)

    monkeypatch.setattr(sandbox_supplier, "create_app", spy)
    monkeypatch.delenv("ORDERS_SUPPLIER_WEBHOOK_SECRET", raising=False)
    sandbox_supplier.main(["--port", "8021", "--auto-ship-seconds", "10"])
    assert created == [{"secret": "dev-supplier-secret", "key": "env-key", "auto_ship_seconds": 10}]
    assert [(host, port) for _, host, port in started] == [("127.0.0.1", 8021)]


def test_negative_auto_ship_is_rejected() -> None:
    with pytest.raises(ValueError):
        sandbox_supplier.create_app("s", "k", auto_ship_seconds=-1)
