"""Async HTTP client for the payment gateway (alipay/wechat style).

Errors are reported as :class:`PaymentGatewayError`; ``retryable`` tells the caller whether
trying again (with the same idempotency key) can help: connection errors, timeouts, 429 and
5xx are retryable; other 4xx raise its subclass :class:`PaymentRefused` (never retryable),
carrying the gateway's message.

Besides intents and refunds, what a real gateway offers to find every capture: a trade
query (:meth:`PaymentGatewayClient.query_intent`), a trade close
(:meth:`PaymentGatewayClient.close_intent`: an unpaid intent can never be paid after it, a
paid one answers with its capture) and a listing of captures (:meth:`captures`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from domain.checkout import gateway_txn
from gateways.http import PartnerClient, PartnerError

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class PaymentIntent(BaseModel):
    intent_id: str
    order_id: str
    channel: str
    amount_cents: int
    pay_url: str


class GatewayRefund(BaseModel):
    refund_id: str
    txn_id: str
    amount_cents: int
    status: str


class GatewayIntent(BaseModel):
    """An intent as the gateway's trade query answers it; a captured one names its capture
    (``captured_cents`` is what was actually paid, which may differ from ``amount_cents``)."""

    intent_id: str
    order_id: str
    channel: str
    amount_cents: int
    status: Literal["open", "closed", "captured"]
    txn_id: str | None = None
    captured_cents: int | None = None
    paid_at: datetime | None = None


class Capture(BaseModel):
    """Money the gateway took: one transaction of one intent."""

    txn_id: str
    intent_id: str
    order_id: str
    channel: str
    amount_cents: int
    paid_at: datetime


class CapturePage(BaseModel):
    items: list[Capture]
    next_cursor: str | None = None


class PaymentGatewayError(PartnerError):
    """A gateway call failed. ``status_code`` is None for connection-level failures."""


class PaymentRefused(PaymentGatewayError):
    """The gateway answered and refused for good (a 4xx other than 429): never retryable."""


class PaymentGatewayClient(PartnerClient):
    """Thin typed client. Every POST carries ``Idempotency-Key``."""

    name = "payment gateway"
    error = PaymentGatewayError
    refused = PaymentRefused

    async def create_intent(
        self,
        order_id: str,
        channel: str,
        amount_cents: int,
        notify_url: str,
        *,
        idempotency_key: str | None = None,
    ) -> PaymentIntent:
        """Create (or, for a repeated key, fetch back) a payment intent.

        The default idempotency key is derived from order, channel and amount, so a retried
        call returns the same intent instead of opening a second one.
        """
        key = idempotency_key or f"intent:{order_id}:{channel}:{amount_cents}"
        body = {
            "order_id": order_id,
            "channel": channel,
            "amount_cents": amount_cents,
            "notify_url": notify_url,
        }
        data = await self._post("/v1/intents", body, key)
        return self._parse(PaymentIntent, data)

    async def refund(
        self, txn_id: str, refund_id: str, amount_cents: int, reason: str
    ) -> GatewayRefund:
        """Refund ``amount_cents`` of ``txn_id``; idempotent on ``refund_id``. A checkout's
        share of a payment (``<txn>#<order>``) is refunded against the gateway's own
        transaction (the ledger keeps it within the share)."""
        txn_id = gateway_txn(txn_id)
        body = {
            "txn_id": txn_id,
            "refund_id": refund_id,
            "amount_cents": amount_cents,
            "reason": reason,
        }
        refund = self._parse(GatewayRefund, await self._post("/v1/refunds", body, refund_id))
        if refund.refund_id != refund_id or refund.txn_id != txn_id:
            raise PaymentGatewayError(
                f"gateway answered refund {refund.refund_id} for {refund.txn_id}, "
                f"expected {refund_id} for {txn_id}",
                retryable=False,
            )
        return refund

    async def query_intent(self, intent_id: str) -> GatewayIntent:
        """The intent as the gateway knows it now: open, closed or captured."""
        response = await self._send("GET", f"/v1/intents/{intent_id}")
        return self._intent(intent_id, self._json(response))

    async def close_intent(self, intent_id: str) -> GatewayIntent:
        """Close an unpaid intent so it can never be paid (closing it again is harmless).
        An intent already paid cannot be closed: the gateway refuses with the capture, which
        is returned (status ``captured``) rather than raised."""
        key = f"close:{intent_id}"
        response = await self._send(
            "POST", f"/v1/intents/{intent_id}/close", None, {"Idempotency-Key": key}
        )
        if response.status_code == 409:
            try:
                body: Any = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and isinstance(body.get("intent"), dict):
                found = self._intent(intent_id, body["intent"])
                if found.status == "captured":
                    return found
        found = self._intent(intent_id, self._json(response))
        if found.status != "closed":
            raise PaymentGatewayError(
                f"gateway answered close of {intent_id} with status {found.status}",
                retryable=False,
            )
        return found

    async def list_captures(
        self, since: datetime, *, cursor: str | None = None, limit: int = 100
    ) -> CapturePage:
        """One page of the captures paid at or after ``since``, oldest first."""
        params: dict[str, str | int] = {"since": since.isoformat(), "limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await self._send("GET", "/v1/captures", params=params)
        return self._parse(CapturePage, self._json(response))

    async def captures(self, since: datetime, *, page_size: int = 100) -> AsyncIterator[Capture]:
        """Every capture paid at or after ``since``, page after page."""
        cursor: str | None = None
        while True:
            page = await self.list_captures(since, cursor=cursor, limit=page_size)
            for capture in page.items:
                yield capture
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def _intent(self, intent_id: str, data: Any) -> GatewayIntent:
        found = self._parse(GatewayIntent, data)
        if found.intent_id != intent_id:
            raise PaymentGatewayError(
                f"gateway answered intent {found.intent_id}, expected {intent_id}",
                retryable=False,
            )
        return found

    async def _post(self, path: str, body: dict[str, Any], key: str) -> Any:
        return self._json(await self._send("POST", path, body, {"Idempotency-Key": key}))
