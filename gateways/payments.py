"""Async HTTP client for the payment gateway (alipay/wechat style).

Errors are reported as :class:`PaymentGatewayError`; ``retryable`` tells the caller whether
trying again (with the same idempotency key) can help: connection errors, timeouts, 429 and
5xx are retryable, other 4xx are not and carry the gateway's message.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from pydantic import BaseModel

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


class PaymentGatewayError(PartnerError):
    """A gateway call failed. ``status_code`` is None for connection-level failures."""


class PaymentGatewayClient(PartnerClient):
    """Thin typed client. Every POST carries ``Idempotency-Key``."""

    name = "payment gateway"
    error = PaymentGatewayError

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
        """Refund ``amount_cents`` of ``txn_id``; idempotent on ``refund_id``."""
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

    async def _post(self, path: str, body: dict[str, Any], key: str) -> Any:
        return self._json(await self._send("POST", path, body, {"Idempotency-Key": key}))
