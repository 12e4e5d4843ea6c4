"""Carrier callback sender and the shared signed-POST helper."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import httpx
import pytest

from gateways.signing import SIGNATURE_HEADER, verify
from sandboxes import carrier as sandbox_carrier
from sandboxes.carrier import send_carrier_event
from sandboxes.signed import post_signed

if TYPE_CHECKING:
    from tests.gateways.conftest import Receiver

URL = "http://api.test/webhooks/carriers"


async def test_send_carrier_event_is_signed(receiver: Receiver) -> None:
    receiver.secret = "carrier-secret"
    at = datetime(2025, 3, 1, 18, 30, tzinfo=timezone(timedelta(hours=8)))
    response = await send_carrier_event(
        URL,
        "carrier-secret",
        carrier="SF",
        tracking_no="SF123",
        event="DELIVERED",
        at=at,
        event_id="evt-fixed",
        transport=receiver.transport(),
    )
    assert response.status_code == 200
    [got] = receiver.received
    assert got.signature_error is None
    assert got.payload == {
        "event_id": "evt-fixed",
        "carrier": "SF",
        "tracking_no": "SF123",
        "event": "DELIVERED",
        "at": "2025-03-01T10:30:00Z",
    }


async def test_wrong_secret_is_rejected_by_receiver(receiver: Receiver) -> None:
    response = await send_carrier_event(
        URL,
        "not-the-secret",
        carrier="SF",
        tracking_no="SF1",
        event="IN_TRANSIT",
        transport=receiver.transport(),
    )
    assert response.status_code == 401
    assert receiver.received[0].signature_error == "signature mismatch"
    assert receiver.received[0].payload["event_id"].startswith("evt_")


@pytest.mark.parametrize(
    ("event", "at"),
    [("LOST", None), ("DELIVERED", datetime(2025, 1, 1))],
)
async def test_bad_arguments(event: str, at: datetime | None) -> None:
    with pytest.raises(ValueError):
        await send_carrier_event(
            URL,
            "s",
            carrier="SF",
            tracking_no="SF1",
            event=event,
            at=at,
            transport=httpx.MockTransport(lambda _: httpx.Response(200)),
        )


async def test_post_signed_does_not_close_a_borrowed_transport() -> None:
    closed: list[bool] = []

    class Tracking(httpx.MockTransport):
        async def aclose(self) -> None:
            closed.append(True)

    transport = Tracking(lambda request: httpx.Response(202, content=request.content))
    response = await post_signed(URL, {"b": 1, "a": "é"}, "s", transport=transport)
    assert response.status_code == 202
    assert response.content == b'{"a":"\\u00e9","b":1}'
    verify(response.request.headers[SIGNATURE_HEADER], response.content, "s")
    assert closed == []


def test_cli_reports_connection_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = sandbox_carrier.main(
        [
            "--carrier",
            "SF",
            "--tracking-no",
            "SF1",
            "--event",
            "DELIVERED",
            "--url",
            f"http://127.0.0.1:{port}/webhooks/carriers",
        ]
    )
    assert code == 2
    assert "ConnectError" in capsys.readouterr().err
