"""In-memory state and business rules of the payment sandbox (no HTTP here)."""

from __future__ import annotations

import base64
import hmac
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, HTTPException
from pydantic import BaseModel, Field

from gateways.payments import Capture, CapturePage, GatewayIntent, GatewayRefund, PaymentIntent

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
    paid_at: str = ""  # RFC 3339; empty for a lenient txn (never captured here)
    intent_id: str | None = None

    def capture(self) -> Capture:
        assert self.order_id is not None and self.amount_cents is not None
        return Capture(
            txn_id=self.txn_id,
            intent_id=self.intent_id or "",
            order_id=self.order_id,
            channel=self.channel,
            amount_cents=self.amount_cents,
            paid_at=self.paid_at,
        )


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
    closed_intents: set[str] = field(default_factory=set)
    fail_next_refunds: int = 0
    refuse_next_refunds: int = 0
    drop_next_callbacks: int = 0  # captured, but these callbacks are never sent
    refuse_next_closes: int = 0  # trade closes of unpaid intents refused (422)
    last_paid_at: datetime | None = None  # the ledger's latest capture time

    def _next_paid_at(self) -> str:
        """Now, but after the previous capture (times are to the millisecond): the ledger
        lists captures in the order they were paid, as a gateway's does."""
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if self.last_paid_at is not None and now <= self.last_paid_at:
            now = self.last_paid_at + timedelta(milliseconds=1)
        self.last_paid_at = now
        return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")

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
        if intent_id in self.closed_intents:
            raise SandboxRejection(409, f"intent {intent_id} is closed: it can no longer be paid")
        amount = intent.amount_cents if reported_amount is None else reported_amount
        txn = Txn(
            f"{intent.channel}-{uuid.uuid4().hex}",
            intent.channel,
            intent.order_id,
            amount,
            paid_at=self._next_paid_at(),
            intent_id=intent_id,
        )
        self.txns[txn.txn_id] = txn
        self.paid_intents[intent_id] = txn.txn_id
        return txn

    def drop_callbacks(self, count: int) -> int:
        """How many of a payment's `count` callbacks the drop fault swallows."""
        dropped = min(count, self.drop_next_callbacks)
        self.drop_next_callbacks -= dropped
        return dropped

    def intent_status(self, intent_id: str) -> GatewayIntent:
        """What a trade query answers: open, closed, or captured (with the capture)."""
        intent = self.get_intent(intent_id)
        txn_id = self.paid_intents.get(intent_id)
        if txn_id is not None:
            txn = self.txns[txn_id]
            return GatewayIntent(
                intent_id=intent_id,
                order_id=intent.order_id,
                channel=intent.channel,
                amount_cents=intent.amount_cents,
                status="captured",
                txn_id=txn_id,
                captured_cents=txn.amount_cents,
                paid_at=txn.paid_at,
            )
        status = "closed" if intent_id in self.closed_intents else "open"
        return GatewayIntent(
            intent_id=intent_id,
            order_id=intent.order_id,
            channel=intent.channel,
            amount_cents=intent.amount_cents,
            status=status,
        )

    def close_intent(self, intent_id: str) -> GatewayIntent:
        """Trade close: an unpaid intent can never be paid after this (closing it again is
        the same answer); a captured one cannot be closed: 409 with the capture."""
        found = self.intent_status(intent_id)
        if found.status == "captured":
            raise IntentCaptured(found)
        if self.refuse_next_closes > 0:
            self.refuse_next_closes -= 1
            raise SandboxRejection(422, "injected fault: the gateway refuses to close this trade")
        self.closed_intents.add(intent_id)
        return found.model_copy(update={"status": "closed"})

    def captures(self, since: str, cursor: str | None, limit: int) -> CapturePage:
        """Captures paid at or after `since`, oldest first, `limit` a page; `cursor` is the
        last page's `next_cursor` (the (paid_at, txn_id) it ended at)."""
        after = _decode_cursor(cursor) if cursor else None
        found = sorted(
            (t for t in self.txns.values() if t.paid_at and _instant(t.paid_at) >= _instant(since)),
            key=lambda t: (_instant(t.paid_at), t.txn_id),
        )
        if after is not None:
            found = [t for t in found if (_instant(t.paid_at), t.txn_id) > after]
        page = found[:limit]
        more = len(found) > limit
        nxt = _encode_cursor(page[-1].paid_at, page[-1].txn_id) if more else None
        return CapturePage(items=[t.capture() for t in page], next_cursor=nxt)

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

    def transaction(self, txn_id: str) -> dict[str, object]:
        """A captured transaction and what of it was refunded (a gateway's trade query)."""
        txn = self.txns.get(txn_id)
        if txn is None or not txn.paid_at:
            raise SandboxRejection(404, f"unknown transaction {txn_id}")
        refunds = sorted(r.refund_id for r, _ in self.refunds.values() if r.txn_id == txn_id)
        return {
            "txn_id": txn.txn_id,
            "order_id": txn.order_id,
            "amount_cents": txn.amount_cents,
            "refunded_cents": txn.refunded_cents,
            "refund_ids": refunds,
        }

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


class IntentCaptured(SandboxRejection):
    """A close refused because the buyer already paid: the answer carries the capture."""

    def __init__(self, intent: GatewayIntent) -> None:
        super().__init__(409, f"intent {intent.intent_id} is already paid as {intent.txn_id}")
        self.intent = intent


def _instant(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise SandboxRejection(422, f"not an RFC 3339 time: {text!r}") from None
    if at.tzinfo is None:
        raise SandboxRejection(422, f"a time needs a zone: {text!r}")
    return at.astimezone(UTC)


def _encode_cursor(paid_at: str, txn_id: str) -> str:
    return base64.urlsafe_b64encode(f"{paid_at}|{txn_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        paid_at, txn_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
    except (ValueError, UnicodeDecodeError):
        raise SandboxRejection(422, "bad cursor") from None
    return _instant(paid_at), txn_id


def bearer_auth(api_key: str) -> Any:
    """A dependency refusing requests without the sandbox's API key (401)."""
    expected = f"Bearer {api_key}".encode()

    async def check(authorization: Annotated[str | None, Header()] = None) -> None:
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected):
            raise HTTPException(401, "invalid or missing API key", {"WWW-Authenticate": "Bearer"})

    return Depends(check)
