"""Partner callbacks: verified (signature, age), recorded in the inbox, then answered 2xx;
the relay turns them into signals (at once if it can, else as soon as Temporal is back)."""

import json
import logging
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from api.deps import Admin, DatabaseDep, RelayDep, SessionDep, SettingsDep
from api.errors import Problem
from domain import checkout
from domain.errors import DomainError, ErrorCode, invalid_transition
from domain.fulfilment import check_supplier_notice
from domain.messages import (
    CarrierEvent,
    CarrierNotice,
    InboxEvent,
    InboxSource,
    PaymentNotice,
    ReusedEvent,
    SupplierNotice,
    SupplierState,
)
from domain.models import MAX_AMOUNT_CENTS, Instant, PaymentChannel
from gateways.signing import SIGNATURE_HEADER, SignatureError, verify
from store import inbox, intents, orders, payments
from store.db import Database

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks", tags=["webhooks"])
admin = APIRouter(prefix="/admin", tags=["admin"])
M = TypeVar("M", bound=BaseModel)


# a partner's numbers are JSON numbers and its times RFC 3339 strings with a zone: "100" is
# not an amount, a Unix number is not a time
STRICT = ConfigDict(strict=True)


class PaymentCallback(BaseModel):
    model_config = STRICT
    event_id: str = Field(min_length=1, max_length=128)
    order_id: str = Field(min_length=1, max_length=64)
    txn_id: str = Field(min_length=1, max_length=128)
    channel: Literal[PaymentChannel.ALIPAY, PaymentChannel.WECHAT]
    amount_cents: int = Field(gt=0, le=MAX_AMOUNT_CENTS)
    paid_at: Instant


def _carrier_case(carrier: str) -> str:
    return carrier.strip().upper()


class CarrierCallback(BaseModel):
    model_config = STRICT
    event_id: str = Field(min_length=1, max_length=128)
    # upper-case, as packages keep their carrier: a callback in any case finds its package
    carrier: Annotated[str, Field(min_length=1, max_length=32), AfterValidator(_carrier_case)]
    tracking_no: str = Field(min_length=1, max_length=64)
    event: CarrierEvent
    at: Instant


class SupplierCallback(BaseModel):
    model_config = STRICT
    event_id: str = Field(min_length=1, max_length=128)
    supplier_order_id: str = Field(min_length=1, max_length=128)
    package_id: str = Field(min_length=1, max_length=80)
    state: SupplierState
    at: Instant


class Accepted(BaseModel):
    """Every 2xx means the event is recorded (the inbox) and will reach its order."""

    status: Literal["forwarded", "queued", "duplicate", "refunding", "ignored", "anomaly"]
    detail: str = ""


OUTCOMES = {
    "forwarded": "recorded and passed on to the order",
    "queued": "recorded; the order is told as soon as the workflow service answers",
    "duplicate": "this event was already received; nothing more is done",
    "refunding": "the order has ended; the payment is refunded",
    "ignored": "the order has ended; recorded, nothing to do",
    "anomaly": "this transaction settled another order; recorded, nothing refunded",
}


async def _verified(request: Request, secret: str, model: type[M]) -> M:
    body = await request.body()
    try:
        verify(request.headers.get(SIGNATURE_HEADER), body, secret)
    except SignatureError as err:
        raise Problem(ErrorCode.UNAUTHENTICATED, f"bad signature: {err}") from None
    try:  # pydantic's own parser: bounded nesting, strict JSON
        parsed = model.model_validate_json(body)
        json.loads(body, object_pairs_hook=_no_repeated_keys)  # what it read, read once
    except (ValueError, ValidationError, RecursionError) as err:
        raise Problem(ErrorCode.VALIDATION, f"bad callback body: {err}") from None
    return parsed


def _no_repeated_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A key said twice is two readings of one callback (the last would win): refused."""
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"a key given twice: {', '.join(repeated)}")
    return dict(pairs)


def _answer(outcome: str) -> Accepted:
    if outcome == "reused":  # not a replay: a different event under a known id
        raise Problem(
            ErrorCode.EVENT_ID_REUSED,
            "this event_id was already received with a different payload; recorded for "
            "operators, not applied",
        )
    return Accepted(status=outcome, detail=OUTCOMES[outcome])


@router.post("/payments", response_model=Accepted)
async def payment_callback(
    request: Request, settings: SettingsDep, relay: RelayDep, db: DatabaseDep
) -> Accepted:
    cb = await _verified(request, settings.payment_webhook_secret, PaymentCallback)
    notice = PaymentNotice(
        txn_id=cb.txn_id,
        channel=cb.channel,
        amount_cents=cb.amount_cents,
        paid_at=cb.paid_at,
        order_id=cb.order_id,
    )
    async with db.sessions() as session:  # a checkout's payment: each order's share
        parts = await intents.parts_of(session, notice)
    outcomes = []
    for order_id, part in parts.items():
        if await _reused_elsewhere(db, part):
            outcomes.append("anomaly")
            continue
        event_id = cb.event_id if len(parts) == 1 else checkout.share_event(cb.event_id, order_id)
        outcomes.append(await relay.accept(_event("payment", event_id, order_id, part)))
    return _answer(_together(outcomes))


def _together(outcomes: list[str]) -> str:
    """A checkout's callback answers for all its shares: a reused id or an anomaly first,
    then what is still to come (queued), then what was done."""
    for outcome in ("reused", "anomaly", "queued", "refunding", "forwarded", "ignored"):
        if outcome in outcomes:
            return outcome
    return outcomes[0]


def _event(source: InboxSource, event_id: str, order_id: str, notice: BaseModel) -> InboxEvent:
    return InboxEvent(
        source=source, event_id=event_id, order_id=order_id, payload=notice.model_dump_json()
    )


async def _reused_elsewhere(db: Database, notice: PaymentNotice) -> bool:
    """One gateway transaction settles one order: a callback naming another order's txn is
    written down for operators (a PAYMENT_ANOMALY event on the order it named) and goes no
    further, so neither order's money moves for it."""
    async with db.sessions() as session:  # a read: no write lock for the common case
        owner = await payments.txn_owner(session, notice.txn_id)
    if owner is None or owner == notice.order_id:
        return False
    async with db.transaction() as session:
        await payments.note_anomaly(session, notice, owner)
    log.warning("txn %s of order %s reused for order %s", notice.txn_id, owner, notice.order_id)
    return True


@router.post("/suppliers/kepler", response_model=Accepted)
async def supplier_callback(
    request: Request, settings: SettingsDep, relay: RelayDep, db: DatabaseDep
) -> Accepted:
    cb = await _verified(request, settings.supplier_webhook_secret, SupplierCallback)
    async with db.sessions() as session:
        package = await orders.package(session, cb.package_id)
        state = await orders.get(session, package.order_id) if package is not None else None
    try:
        if package is None or state is None:
            raise invalid_transition("unknown package")
        check_supplier_notice(state, cb.package_id, cb.supplier_order_id, unrecorded_ok=True)
    except DomainError:
        raise Problem(
            ErrorCode.NOT_FOUND,
            f"no supplier package {cb.package_id} of supplier order {cb.supplier_order_id}",
        ) from None
    notice = SupplierNotice(
        package_id=cb.package_id, state=cb.state, at=cb.at, supplier_order_id=cb.supplier_order_id
    )

    return _answer(await relay.accept(_event("supplier", cb.event_id, package.order_id, notice)))


@router.post("/carriers", response_model=Accepted)
async def carrier_callback(
    request: Request, settings: SettingsDep, relay: RelayDep, db: DatabaseDep
) -> Accepted:
    cb = await _verified(request, settings.carrier_webhook_secret, CarrierCallback)
    async with db.sessions() as session:
        package = await orders.find_package(session, cb.carrier, cb.tracking_no)
    if package is None:
        raise Problem(ErrorCode.NOT_FOUND, f"no package ships as {cb.carrier} {cb.tracking_no}")
    notice = CarrierNotice(
        package_id=package.package_id, event=cb.event, at=cb.at, carrier=cb.carrier
    )

    return _answer(await relay.accept(_event("carrier", cb.event_id, package.order_id, notice)))


class PendingCallbacks(BaseModel):
    items: list[InboxEvent]
    reused: list[ReusedEvent]  # refused: an event id received before with another payload


@admin.get("/callbacks/pending", response_model=PendingCallbacks)
async def pending_callbacks(
    user: Admin, session: SessionDep, limit: int = Query(100, ge=1, le=500)
) -> PendingCallbacks:
    """Callbacks recorded and answered but not yet delivered to their order, oldest first,
    with their attempts and last error: what an operator looks at during an outage; and the
    callbacks refused for reusing an event id (EVENT_ID_REUSED), newest first."""
    return PendingCallbacks(
        items=await inbox.pending(session, limit), reused=await inbox.reused(session, limit)
    )
