"""In-memory state and business rules of the payment sandbox (no HTTP here)."""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, HTTPException
from pydantic import BaseModel, Field

from gateways.payments import GatewayRefund, PaymentIntent

logger = logging.getLogger(__name__)

# Sandbox leniency: refunds for txn ids we never issued are accepted if they look like ours.
LENIENT_TXN_ID = re.compile(r"(alipay|wechat)-[A-Za-z0-9_-]+")


class SandboxRejection(Exception):
    """A request the sandbox refuses, with the HTTP status the partner would answer."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class IntentIn(BaseModel):
    order_id: str = Field(min_length=1, max_length=128)
    channel: Literal["alipay", "wechat"]
    amount_cents: int = Field(gt=0)
    notify_url: str = Field(pattern=r"^https?://\S+$")


class RefundIn(BaseModel):
    txn_id: str = Field(min_length=1, max_length=128)
    refund_id: str = Field(min_length=1, max_length=128)
    amount_cents: int = Field(gt=0)
    reason: str = Field(default="", max_length=256)


@dataclass
class Txn:
    txn_id: str
    channel: str
    order_id: str | None
    amount_cents: int | None  # None: lenient txn of unknown amount (no refund cap)
    refunded_cents: int = 0


@dataclass
class SandboxState:
    public_url: str
    intents: dict[str, PaymentIntent] = field(default_factory=dict)
    notify_urls: dict[str, str] = field(default_factory=dict)
    intent_keys: dict[str, str] = field(default_factory=dict)
    paid_intents: dict[str, str] = field(default_factory=dict)
    txns: dict[str, Txn] = field(default_factory=dict)
    refunds: dict[str, tuple[RefundIn, GatewayRefund]] = field(default_factory=dict)
    refund_keys: dict[str, str] = field(default_factory=dict)
    fail_next_refunds: int = 0
    refuse_next_refunds: int = 0

    def create_intent(self, req: IntentIn, key: str | None) -> tuple[PaymentIntent, bool]:
        """Return ``(intent, created)``; a repeated Idempotency-Key returns the first intent."""
        if key is not None and key in self.intent_keys:
            existing = self.intents[self.intent_keys[key]]
            if (existing.order_id, existing.channel, existing.amount_cents) != (
                req.order_id,
                req.channel,
                req.amount_cents,
            ):
                raise SandboxRejection(409, "Idempotency-Key reused with a different request")
            return existing, False
        intent_id = f"pi_{uuid.uuid4().hex}"
        intent = PaymentIntent(
            intent_id=intent_id,
            order_id=req.order_id,
            channel=req.channel,
            amount_cents=req.amount_cents,
            pay_url=f"{self.public_url}/pay/{intent_id}",
        )
        self.intents[intent_id] = intent
        self.notify_urls[intent_id] = req.notify_url
        if key is not None:
            self.intent_keys[key] = intent_id
        return intent, True

    def get_intent(self, intent_id: str) -> PaymentIntent:
        intent = self.intents.get(intent_id)
        if intent is None:
            raise SandboxRejection(404, f"unknown intent {intent_id}")
        return intent

    def capture(self, intent_id: str, reported_amount: int | None) -> Txn:
        """The buyer pays: record a transaction of the (possibly misreported) amount."""
        intent = self.get_intent(intent_id)
        if intent_id in self.paid_intents:
            raise SandboxRejection(409, f"intent already paid as {self.paid_intents[intent_id]}")
        amount = intent.amount_cents if reported_amount is None else reported_amount
        txn = Txn(f"{intent.channel}-{uuid.uuid4().hex}", intent.channel, intent.order_id, amount)
        self.txns[txn.txn_id] = txn
        self.paid_intents[intent_id] = txn.txn_id
        return txn

    def refund(self, req: RefundIn, key: str | None) -> tuple[GatewayRefund, bool]:
        """Return ``(refund, created)``; idempotent on refund_id and on Idempotency-Key."""
        if self.fail_next_refunds > 0:
            self.fail_next_refunds -= 1
            raise SandboxRejection(503, "injected fault: refund service unavailable")
        if self.refuse_next_refunds > 0:  # what a real channel says of a closed account
            self.refuse_next_refunds -= 1
            raise SandboxRejection(422, "injected fault: the payer's account cannot take refunds")
        known_id = (
            req.refund_id if req.refund_id in self.refunds else self.refund_keys.get(key or "")
        )
        if known_id is not None:
            first, refund = self.refunds[known_id]
            if (first.refund_id, first.txn_id, first.amount_cents) != (
                req.refund_id,
                req.txn_id,
                req.amount_cents,
            ):
                raise SandboxRejection(409, "refund_id reused with different parameters")
            return refund, False
        txn = self._refundable_txn(req.txn_id)
        if txn.amount_cents is not None:
            left = txn.amount_cents - txn.refunded_cents
            if req.amount_cents > left:
                raise SandboxRejection(
                    409, f"refund of {req.amount_cents} exceeds refundable amount {left}"
                )
        txn.refunded_cents += req.amount_cents
        refund = GatewayRefund(
            refund_id=req.refund_id,
            txn_id=req.txn_id,
            amount_cents=req.amount_cents,
            status="succeeded",
        )
        self.refunds[req.refund_id] = (req, refund)
        if key is not None:
            self.refund_keys[key] = req.refund_id
        return refund, True

    def get_refund(self, refund_id: str) -> GatewayRefund:
        if refund_id not in self.refunds:
            raise SandboxRejection(404, f"unknown refund {refund_id}")
        return self.refunds[refund_id][1]

    def _refundable_txn(self, txn_id: str) -> Txn:
        txn = self.txns.get(txn_id)
        if txn is not None:
            return txn
        if not LENIENT_TXN_ID.fullmatch(txn_id):
            raise SandboxRejection(404, f"unknown txn {txn_id}")
        logger.info("sandbox leniency: accepting refund for unseen txn %s", txn_id)
        txn = Txn(txn_id, txn_id.split("-", 1)[0], None, None)
        self.txns[txn_id] = txn
        return txn


def bearer_auth(api_key: str) -> Any:
    """A dependency refusing requests without the sandbox's API key (401)."""
    expected = f"Bearer {api_key}".encode()

    async def check(authorization: Annotated[str | None, Header()] = None) -> None:
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected):
            raise HTTPException(401, "invalid or missing API key", {"WWW-Authenticate": "Bearer"})

    return Depends(check)
