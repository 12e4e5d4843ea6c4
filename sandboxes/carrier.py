"""Carrier sandbox: carriers only call us, so this just sends signed carrier callbacks.

CLI: ``python -m sandboxes.carrier --carrier SF --tracking-no SF123 --event DELIVERED
[--url http://127.0.0.1:8000/webhooks/carriers]`` (secret from
``ORDERS_CARRIER_WEBHOOK_SECRET``, default ``dev-carrier-secret``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime
from typing import Literal, get_args

import httpx

from sandboxes.signed import post_signed

CarrierEvent = Literal["IN_TRANSIT", "DELIVERED", "REJECTED"]
CARRIER_EVENTS: tuple[str, ...] = get_args(CarrierEvent)
DEFAULT_WEBHOOK_URL = "http://127.0.0.1:8000/webhooks/carriers"


async def send_carrier_event(
    webhook_url: str,
    secret: str,
    *,
    carrier: str,
    tracking_no: str,
    event: str,
    at: datetime | None = None,
    event_id: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.Response:
    """POST a signed ``{event_id, carrier, tracking_no, event, at}`` callback.

    ``at`` must be timezone-aware (default: now); it is sent as RFC 3339 UTC.
    """
    if event not in CARRIER_EVENTS:
        raise ValueError(f"event must be one of {', '.join(CARRIER_EVENTS)}, not {event!r}")
    when = datetime.now(UTC) if at is None else at
    if when.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    payload = {
        "event_id": event_id or f"evt_{uuid.uuid4().hex}",
        "carrier": carrier,
        "tracking_no": tracking_no,
        "event": event,
        "at": when.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    return await post_signed(webhook_url, payload, secret, transport=transport)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send a signed carrier callback")
    parser.add_argument("--carrier", required=True)
    parser.add_argument("--tracking-no", required=True)
    parser.add_argument("--event", required=True, choices=CARRIER_EVENTS)
    parser.add_argument("--url", default=DEFAULT_WEBHOOK_URL)
    parser.add_argument("--event-id", help="default: a new random id")
    args = parser.parse_args(argv)
    secret = os.environ.get("ORDERS_CARRIER_WEBHOOK_SECRET", "dev-carrier-secret")
    try:
        response = asyncio.run(
            send_carrier_event(
                args.url,
                secret,
                carrier=args.carrier,
                tracking_no=args.tracking_no,
                event=args.event,
                event_id=args.event_id,
            )
        )
    except httpx.HTTPError as exc:
        print(f"error: {exc!r}", file=sys.stderr)
        return 2
    # say what was sent: the answer's "forwarded" is about the callback, not the parcel
    print(f"sent {args.event} for {args.carrier} {args.tracking_no}: HTTP {response.status_code}")
    print(response.text)
    return 0 if response.is_success else 1


if __name__ == "__main__":
    sys.exit(main())
