"""Signed JSON POSTs, as the partners send their callbacks (the sandboxes, and tests that
play a partner)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from gateways.signing import SIGNATURE_HEADER, sign


class NonClosingTransport(httpx.AsyncBaseTransport):
    """Delegates to a caller-owned transport without closing it with our client."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


def encode_json(payload: Mapping[str, Any]) -> bytes:
    """Compact, deterministic JSON bytes (the exact bytes that get signed)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")


async def post_signed(
    url: str,
    payload: Mapping[str, Any],
    secret: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    client: httpx.AsyncClient | None = None,
    timeout: float = 10.0,
) -> httpx.Response:
    """POST ``payload`` as JSON with an ``X-Signature`` header over the exact bytes sent.

    Uses ``client`` if given (not closed); otherwise a one-off client over ``transport``
    (a caller-supplied transport is never closed here). Transport errors propagate.
    """
    body = encode_json(payload)
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret)}
    if client is not None:
        return await client.post(url, content=body, headers=headers)
    borrowed = NonClosingTransport(transport) if transport is not None else None
    async with httpx.AsyncClient(transport=borrowed, timeout=timeout) as own:
        response = await own.post(url, content=body, headers=headers)
        await response.aread()
        return response
