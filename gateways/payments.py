"""Async HTTP client for the payment gateway (alipay/wechat style).

Errors are reported as :class:`PaymentGatewayError`; ``retryable`` tells the caller whether
trying again (with the same idempotency key) can help: connection errors, timeouts, 429 and
5xx are retryable, other 4xx are not and carry the gateway's message.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from gateways.http import PartnerClient, error_message

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


class PaymentGatewayError(Exception):
    """A gateway call failed. ``status_code`` is None for connection-level failures."""

    def __init__(self, message: str, *, retryable: bool, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status_code = status_code


class PaymentGatewayClient(PartnerClient):
    """Thin typed client. Every POST carries ``Idempotency-Key``."""

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
        try:
            response = await self._http.post(path, json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError as exc:
            logger.warning("payment gateway unreachable: POST %s: %r", path, exc)
            raise PaymentGatewayError(
                f"payment gateway unreachable: {exc!r}", retryable=True
            ) from exc
        status = response.status_code
        if status >= 500 or status == 429:
            message = error_message(response)
            logger.warning("payment gateway POST %s answered %s: %s", path, status, message)
            raise PaymentGatewayError(
                f"payment gateway error {status}: {message}", retryable=True, status_code=status
            )
        if status >= 400:
            raise PaymentGatewayError(error_message(response), retryable=False, status_code=status)
        try:
            return response.json()
        except ValueError as exc:
            raise PaymentGatewayError(
                f"payment gateway answered {status} with invalid JSON",
                retryable=False,
                status_code=status,
            ) from exc

    @staticmethod
    def _parse(model: type[M], data: Any) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise PaymentGatewayError(
                f"unexpected payment gateway response: {exc}", retryable=False
            ) from exc
