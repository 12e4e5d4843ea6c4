"""Partner callbacks: verified (signature, age, replay), then turned into signals."""

import logging
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from api.deps import DatabaseDep, SettingsDep, TemporalDep
from api.errors import Problem
from domain.errors import DomainError, ErrorCode, invalid_transition
from domain.fulfilment import check_supplier_notice
from domain.messages import CarrierNotice, PaymentNotice, SupplierNotice
from domain.models import MAX_AMOUNT_CENTS, PaymentChannel
from gateways.signing import SIGNATURE_HEADER, SignatureError, verify
from store import orders, payments, webhooks
from store.db import Database
from workflows import ids
from workflows.order import OrderWorkflow
from workflows.orphan_payment import OrphanPaymentWorkflow

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks", tags=["webhooks"])
M = TypeVar("M", bound=BaseModel)


class PaymentCallback(BaseModel):
    event_id: str = Field(min_length=1, max_length=128)
    order_id: str = Field(min_length=1, max_length=64)
    txn_id: str = Field(min_length=1, max_length=128)
    channel: Literal[PaymentChannel.ALIPAY, PaymentChannel.WECHAT]
    amount_cents: int = Field(gt=0, le=MAX_AMOUNT_CENTS)
    paid_at: datetime


class CarrierCallback(BaseModel):
    event_id: str = Field(min_length=1, max_length=128)
    carrier: str = Field(min_length=1, max_length=32)
    tracking_no: str = Field(min_length=1, max_length=64)
    event: Literal["IN_TRANSIT", "DELIVERED", "REJECTED"]
    at: datetime


class SupplierCallback(BaseModel):
    event_id: str = Field(min_length=1, max_length=128)
    supplier_order_id: str = Field(min_length=1, max_length=128)
    package_id: str = Field(min_length=1, max_length=80)
    state: Literal["AWAITING_RECEIPT", "RECEIVED", "REJECTED"]
    at: datetime


class Accepted(BaseModel):
    status: str
    detail: str = ""


async def _verified(request: Request, secret: str, model: type[M]) -> M:
    body = await request.body()
    try:
        verify(request.headers.get(SIGNATURE_HEADER), body, secret)
    except SignatureError as err:
        raise Problem(ErrorCode.UNAUTHENTICATED, f"bad signature: {err}") from None
    try:  # pydantic's own parser: bounded nesting, strict JSON
        return model.model_validate_json(body)
    except (ValueError, ValidationError) as err:
        raise Problem(ErrorCode.VALIDATION, f"bad callback body: {err}") from None


async def _once(db: Database, source: str, event_id: str, deliver: Any) -> Any:
    """Record the event id and deliver in one transaction: a failed delivery can be retried,
    a delivered event replayed is refused."""
    async with db.transaction() as session:
        if not await webhooks.first_time(session, source, event_id, datetime.now(UTC)):
            raise Problem(ErrorCode.REPLAYED_CALLBACK, f"event {event_id} was already received")
        return await deliver()


@router.post("/payments", response_model=Accepted)
async def payment_callback(
    request: Request,
    settings: SettingsDep,
    client: TemporalDep,
    db: DatabaseDep,
) -> Accepted:
    cb = await _verified(request, settings.payment_webhook_secret, PaymentCallback)
    notice = PaymentNotice(
        txn_id=cb.txn_id,
        channel=cb.channel,
        amount_cents=cb.amount_cents,
        paid_at=cb.paid_at,
        order_id=cb.order_id,
    )

    if await _reused_elsewhere(db, notice):
        return Accepted(
            status="anomaly",
            detail="this transaction settled another order; recorded, nothing refunded",
        )

    async def deliver() -> Accepted:
        handle = client.get_workflow_handle(ids.order_workflow_id(cb.order_id))
        try:
            await handle.signal(OrderWorkflow.payment_received, notice)
            return Accepted(status="delivered")
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
        await _refund_orphan(client, settings.task_queue, notice)
        return Accepted(status="refunding", detail="the order has ended; the payment is refunded")

    result: Accepted = await _once(db, "payment", cb.event_id, deliver)
    return result


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


async def _refund_orphan(client: Client, task_queue: str, notice: PaymentNotice) -> None:
    await client.start_workflow(
        OrphanPaymentWorkflow.run,
        notice,
        id=ids.orphan_payment_workflow_id(notice.txn_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Refund late payment {notice.txn_id} for order {notice.order_id}",
    )


async def _signal_package_order(
    client: Client, order_id: str, signal: Any, notice: BaseModel
) -> Accepted:
    handle = client.get_workflow_handle(ids.order_workflow_id(order_id))
    try:
        await handle.signal(signal, notice)
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        return Accepted(status="ignored", detail="the order has ended")
    return Accepted(status="delivered")


@router.post("/suppliers/kepler", response_model=Accepted)
async def supplier_callback(
    request: Request, settings: SettingsDep, client: TemporalDep, db: DatabaseDep
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

    async def deliver() -> Accepted:
        return await _signal_package_order(
            client, package.order_id, OrderWorkflow.supplier_event, notice
        )

    result: Accepted = await _once(db, "supplier", cb.event_id, deliver)
    return result


@router.post("/carriers", response_model=Accepted)
async def carrier_callback(
    request: Request,
    settings: SettingsDep,
    client: TemporalDep,
    db: DatabaseDep,
) -> Accepted:
    cb = await _verified(request, settings.carrier_webhook_secret, CarrierCallback)
    async with db.sessions() as session:
        package = await orders.find_package(session, cb.carrier, cb.tracking_no)
    if package is None:
        raise Problem(ErrorCode.NOT_FOUND, f"no package ships as {cb.carrier} {cb.tracking_no}")
    notice = CarrierNotice(
        package_id=package.package_id, event=cb.event, at=cb.at, carrier=cb.carrier
    )

    async def deliver() -> Accepted:
        return await _signal_package_order(
            client, package.order_id, OrderWorkflow.carrier_event, notice
        )

    result: Accepted = await _once(db, "carrier", cb.event_id, deliver)
    return result
