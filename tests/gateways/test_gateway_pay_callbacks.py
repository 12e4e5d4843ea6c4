"""Sandbox pay endpoint: signed callbacks delivered to an in-process receiver."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tests.gateways.conftest import HttpFactory, Receiver, SandboxFactory

NOTIFY = "http://receiver.test/webhooks/payments"


async def _intent(http: httpx.AsyncClient, amount: int = 2500, channel: str = "alipay") -> str:
    response = await http.post(
        "/v1/intents",
        json={
            "order_id": "order-7",
            "channel": channel,
            "amount_cents": amount,
            "notify_url": NOTIFY,
        },
    )
    assert response.status_code == 201, response.text
    intent_id: str = response.json()["intent_id"]
    return intent_id


async def _deliveries(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await http.get("/v1/deliveries", params={"wait_seconds": 5})
    assert response.status_code == 200
    assert response.json()["idle"] is True
    records: list[dict[str, Any]] = response.json()["deliveries"]
    return records


def _app(make_sandbox: SandboxFactory, receiver: Receiver, **kwargs: Any) -> FastAPI:
    app: FastAPI = make_sandbox(transport=receiver.transport(), **kwargs)
    return app


async def test_pay_page_has_pay_button(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory
) -> None:
    http = sandbox_http(make_sandbox(deliver=False))
    intent_id = await _intent(http)
    page = await http.get(f"/pay/{intent_id}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f'<form method="post" action="/pay/{intent_id}">' in page.text
    assert ">Pay</button>" in page.text
    assert (await http.get("/pay/pi_unknown")).status_code == 404


async def test_the_front_page_lists_intents_with_their_pay_links(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory
) -> None:
    http = sandbox_http(make_sandbox(deliver=False))
    empty = await http.get("/")
    assert empty.status_code == 200 and "none yet" in empty.text
    first, second = await _intent(http), await _intent(http, amount=990, channel="wechat")
    assert (await http.post(f"/pay/{first}")).status_code == 200

    page = (await http.get("/")).text
    assert page.index(second) < page.index(first)  # newest first
    assert f'<a href="/pay/{second}">' in page and ">wechat<" in page and ">990<" in page
    assert ">alipay-" in page  # the paid one names its transaction
    assert "none yet" not in page


async def test_pay_delivers_signed_callback(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory, receiver: Receiver
) -> None:
    http = sandbox_http(_app(make_sandbox, receiver))
    intent_id = await _intent(http, amount=2500)
    response = await http.post(f"/pay/{intent_id}")
    assert response.status_code == 200
    result = response.json()
    assert result["delivered"] is True
    assert result["status_code"] == 200
    assert result["txn_id"].startswith("alipay-")
    [got] = receiver.received
    assert got.signature_error is None
    assert set(got.payload) == {
        "event_id",
        "order_id",
        "txn_id",
        "channel",
        "amount_cents",
        "paid_at",
    }
    assert got.payload["event_id"] == result["event_ids"][0]
    assert (got.payload["order_id"], got.payload["txn_id"]) == ("order-7", result["txn_id"])
    assert (got.payload["channel"], got.payload["amount_cents"]) == ("alipay", 2500)
    assert got.payload["paid_at"].endswith("Z")
    assert datetime.fromisoformat(got.payload["paid_at"]).utcoffset() is not None
    again = await http.post(f"/pay/{intent_id}")
    assert again.status_code == 409  # an intent is paid once


async def test_callback_signed_with_webhook_secret_only(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory, receiver: Receiver
) -> None:
    receiver.secret = "some-other-secret"
    http = sandbox_http(_app(make_sandbox, receiver))
    result = (await http.post(f"/pay/{await _intent(http)}")).json()
    assert (result["delivered"], result["status_code"]) == (False, 401)
    assert receiver.received[0].signature_error == "signature mismatch"


async def test_duplicates_send_same_payment_with_new_event_ids(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory, receiver: Receiver
) -> None:
    http = sandbox_http(_app(make_sandbox, receiver))
    result = (await http.post(f"/pay/{await _intent(http)}", params={"duplicates": 2})).json()
    records = await _deliveries(http)
    assert len(receiver.received) == 3
    assert all(r.signature_error is None for r in receiver.received)
    event_ids = [r.payload["event_id"] for r in receiver.received]
    assert len(set(event_ids)) == 3
    assert event_ids == result["event_ids"]
    assert {r.payload["txn_id"] for r in receiver.received} == {result["txn_id"]}
    assert len({r.payload["paid_at"] for r in receiver.received}) == 1
    assert [r["status"] for r in records] == ["delivered"] * 3


async def test_misreported_amount_via_form(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory, receiver: Receiver
) -> None:
    http = sandbox_http(_app(make_sandbox, receiver))
    intent_id = await _intent(http, amount=2500)
    response = await http.post(
        f"/pay/{intent_id}", data={"amount_cents": "100", "duplicates": "", "delay_seconds": ""}
    )
    assert response.status_code == 200, response.text
    assert receiver.received[0].payload["amount_cents"] == 100


async def test_invalid_pay_options_are_422(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory
) -> None:
    http = sandbox_http(make_sandbox(deliver=False))
    intent_id = await _intent(http)
    assert (await http.post(f"/pay/{intent_id}", params={"duplicates": "-1"})).status_code == 422
    assert (await http.post(f"/pay/{intent_id}", params={"duplicates": "x"})).status_code == 422


async def test_delay_before_sending(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory, receiver: Receiver
) -> None:
    http = sandbox_http(_app(make_sandbox, receiver))
    intent_id = await _intent(http)
    started = time.monotonic()
    result = (await http.post(f"/pay/{intent_id}", params={"delay_seconds": 0.3})).json()
    assert time.monotonic() - started >= 0.3
    assert result["delivered"] is True
    assert len(receiver.received) == 1


async def test_retries_after_receiver_503_then_succeeds(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory, receiver: Receiver
) -> None:
    receiver.statuses.extend([503, 503])
    http = sandbox_http(_app(make_sandbox, receiver))
    result = (await http.post(f"/pay/{await _intent(http)}")).json()
    assert (result["delivered"], result["status_code"]) == (False, 503)
    [record] = await _deliveries(http)
    assert record["status"] == "delivered"
    assert [a["status_code"] for a in record["attempts"]] == [503, 503, 200]
    # A retry re-sends the same event (same event_id), freshly signed.
    assert [r.payload["event_id"] for r in receiver.received] == [record["event_id"]] * 3
    assert all(r.signature_error is None for r in receiver.received)


async def test_receiver_4xx_gives_up(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory, receiver: Receiver
) -> None:
    receiver.statuses.append(400)
    http = sandbox_http(_app(make_sandbox, receiver))
    result = (await http.post(f"/pay/{await _intent(http)}")).json()
    [record] = await _deliveries(http)
    assert (result["delivered"], result["status_code"]) == (False, 400)
    assert record["status"] == "gave_up"
    assert len(record["attempts"]) == 1
    assert len(receiver.received) == 1


async def test_unreachable_receiver_retries_up_to_max_attempts(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory
) -> None:
    calls: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    app = make_sandbox(transport=httpx.MockTransport(refuse), max_attempts=3)
    http = sandbox_http(app)
    result = (await http.post(f"/pay/{await _intent(http)}")).json()
    assert (result["delivered"], result["status_code"]) == (False, None)
    [record] = await _deliveries(http)
    assert record["status"] == "failed"
    assert len(record["attempts"]) == 3
    assert all("ConnectError" in (a["error"] or "") for a in record["attempts"])
    assert len(calls) == 3


async def test_deliver_false_only_records(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory, receiver: Receiver
) -> None:
    http = sandbox_http(_app(make_sandbox, receiver, deliver=False))
    result = (await http.post(f"/pay/{await _intent(http)}", params={"duplicates": 1})).json()
    records = await _deliveries(http)
    assert receiver.received == []
    assert (result["delivered"], result["status_code"]) == (False, None)
    assert [r["status"] for r in records] == ["recorded", "recorded"]
    assert records[0]["payload"]["txn_id"] == result["txn_id"]
    assert records[0]["url"] == NOTIFY


async def test_v1_endpoints_need_the_api_key(
    make_sandbox: SandboxFactory, sandbox_http: HttpFactory
) -> None:
    http = sandbox_http(make_sandbox(deliver=False), api_key="wrong")
    assert (await http.get("/v1/deliveries")).status_code == 401
    assert (await http.post("/v1/_faults", json={"fail_next_refunds": 1})).status_code == 401
    assert (await http.get("/v1/refunds/r1")).status_code == 401
