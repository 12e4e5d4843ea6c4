"""One input model per workflow, update, signal and activity."""

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from domain.after_sales import MAX_IMAGES, AfterSalesCase
from domain.models import (
    MAX_AMOUNT_CENTS,
    MAX_LINES,
    Actor,
    Address,
    Allocation,
    CaseType,
    CloseReason,
    LineRequest,
    OrderEvent,
    OrderState,
    OrderStatus,
    OrderTimings,
    Package,
    Payment,
    PaymentChannel,
    Refund,
)
from domain.order import MAX_REVIEW_TEXT, Placement


class OrderWorkflowInput(BaseModel):
    """What the order workflow starts with: the placement the API took in the database before
    starting it (`placement`, adopted as it is), or, for workflows started before that, none
    (placement then happens in its first update)."""

    order_id: str
    buyer_id: str
    lines: list[LineRequest] = Field(min_length=1, max_length=MAX_LINES)
    address: Address
    timings: OrderTimings = OrderTimings()
    reorder_of: str | None = None  # buy again: place what can be bought, report the rest
    resume: bool = False  # reconciliation: carry on from the stored order, cancelling it
    placement: Placement | None = None  # placed before the workflow started: adopt it


def order_input(
    state: OrderState, *, placement: Placement | None = None, resume: bool = False
) -> OrderWorkflowInput:
    """The workflow input of a stored order: adopting its placement, or resuming it."""
    return OrderWorkflowInput(
        order_id=state.id,
        buyer_id=state.buyer_id,
        lines=[LineRequest(sku=line.sku, quantity=line.quantity) for line in state.lines],
        address=state.address,
        timings=state.timings,
        reorder_of=state.reorder_of,
        resume=resume,
        placement=placement,
    )


class PlaceOrderInput(OrderWorkflowInput):
    now: datetime
    write_seq: int = 0  # when the workflow wrote it (see SaveOrderInput)
    checkout_id: str | None = None  # one shop's part of a checkout


class CheckoutInput(BaseModel):
    """A cart across shops, placed as one order per shop in one transaction (all or none);
    `order_ids` names each shop's order (deterministic per request)."""

    checkout_id: str
    buyer_id: str
    lines: list[LineRequest] = Field(min_length=1, max_length=MAX_LINES)
    address: Address
    timings: OrderTimings = OrderTimings()
    now: datetime


class OrderReceipt(BaseModel):
    """What an action on an order answers through Temporal: which version it made. The
    order itself is read from the snapshot saved in the same step (the read model), so no
    copy of it travels in the workflow's history."""

    order_id: str
    version: int
    status: OrderStatus


def receipt(state: OrderState) -> OrderReceipt:
    return OrderReceipt(order_id=state.id, version=state.version, status=state.status)


class PayRequest(BaseModel):
    channel: PaymentChannel
    actor: Actor


class PaymentNotice(BaseModel):
    """A payment the gateway says it received (signal; deduplicated on txn_id)."""

    txn_id: str = Field(min_length=1, max_length=128)
    channel: PaymentChannel
    amount_cents: int = Field(gt=0, le=MAX_AMOUNT_CENTS)
    paid_at: datetime
    order_id: str = ""


class ShipRequest(BaseModel):
    package_id: str
    carrier: str | None = Field(None, min_length=1, max_length=32)
    tracking_no: str | None = Field(None, min_length=1, max_length=64)
    actor: Actor


class ConfirmRequest(BaseModel):
    package_ids: list[str] | None = None
    actor: Actor


class ExtendRequest(BaseModel):
    actor: Actor


class CloseRequest(BaseModel):
    reason: str = Field("", max_length=500)
    actor: Actor


class Stop(BaseModel):
    """An operator's cancellation of the order, or reconciliation's: cancelled as a buyer's
    cancel would be, where the order still allows one."""

    reason: CloseReason
    note: str
    actor: Actor


class CarrierEvent(StrEnum):
    IN_TRANSIT = "IN_TRANSIT"
    DELIVERED = "DELIVERED"  # signed for (for self-operated goods: received)
    REJECTED = "REJECTED"  # 拒收: refused at the door, on its way back


class SupplierState(StrEnum):
    AWAITING_RECEIPT = "AWAITING_RECEIPT"  # shipped by the supplier
    RECEIVED = "RECEIVED"
    REJECTED = "REJECTED"


class CarrierNotice(BaseModel):
    package_id: str
    event: CarrierEvent
    at: datetime
    carrier: str = ""


class AcceptPaymentInput(BaseModel):
    state: OrderState
    payment: Payment
    charge_wallet: bool
    now: datetime
    actor: Actor
    write_seq: int = 0


class ReviewRequest(BaseModel):
    rating: int = Field(ge=1, le=5)
    text: str = Field("", max_length=MAX_REVIEW_TEXT)
    actor: Actor


class SaveOrderInput(BaseModel):
    state: OrderState
    event: OrderEvent
    release_stock: bool = False  # closing an unpaid order: free its locks
    restore: list[Allocation] = []  # intercepted or returned goods: back on hand
    returns: list[Allocation] = []  # refunded units back on hand, once per `return_ref`
    return_ref: str = ""
    takes: list[Allocation] = []  # units taken off hand (a replacement), once per `take_ref`
    take_ref: str = ""
    case: AfterSalesCase | None = None  # a case opened with this change: its first snapshot
    review: ReviewRequest | None = None  # the buyer's review: a row per SKU of the order
    # when the workflow wrote it: its run's start and history length as one growing number; a
    # later workflow task's write replaces an earlier task's (one that timed out after saving)
    write_seq: int = 0


class OrderErrorInput(BaseModel):
    """A step the order could not take (ORDER_ERROR): written to its event log and flagged."""

    order_id: str
    step: str
    reason: str = Field(max_length=2000)
    at: datetime
    write_seq: int


class RefundLinesRequest(BaseModel):
    """The buyer asks for chosen lines back before they ship (SPEC §6.1)."""

    request_id: str = Field(min_length=1, max_length=64)
    lines: list[LineRequest] = Field(min_length=1, max_length=MAX_LINES)
    reason: str = Field("", max_length=500)
    actor: Actor


class DecideRefundRequest(BaseModel):
    request_id: str
    agree: bool
    reason: str = Field("", max_length=500)
    actor: Actor


class RetryRefundRequest(BaseModel):
    refund_id: str
    actor: Actor


class OpenCaseRequest(BaseModel):
    case_id: str = Field(min_length=1, max_length=64)
    type: CaseType
    reason: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    lines: list[LineRequest] = Field(min_length=1, max_length=MAX_LINES)
    images: list[str] = Field([], max_length=MAX_IMAGES)
    service_phone: str = ""
    actor: Actor


class SettleCaseRequest(BaseModel):
    """A case asks its order to end it: refund (at most `amount_cents`) or free the units."""

    order_id: str
    case_id: str
    refund: bool
    amount_cents: int = 0
    restock: bool = False
    keep_open: bool = False  # an exchange's return: units back on hand, the case goes on
    actor: Actor


class ReshipCaseRequest(BaseModel):
    """An exchange asks its order to ship the replacement of the case's units."""

    order_id: str
    case_id: str
    carrier: str
    tracking_no: str
    actor: Actor


class ReshipOutcome(BaseModel):
    """The order's answer: the replacement packages, or why none went out (its code)."""

    package_ids: list[str] = []
    code: str = ""
    error: str = ""


class CaseSettlement(BaseModel):
    refund: Refund | None = None
    error: str = ""  # the order could not settle it (a case it never held)


class RefundPaymentInput(BaseModel):
    order_id: str
    refund: Refund
    payment: Payment
    note_event: OrderEvent | None = None  # for a refund outside the order's own snapshot


class PurchaseInput(BaseModel):
    """Buy a KEPLER package from the supplier; the package id is the external reference."""

    order_id: str
    package: Package


class SupplierCancelInput(BaseModel):
    package_id: str
    supplier_order_id: str
    reason: str


class SupplierCancelResult(BaseModel):
    cancelled: bool
    reason: str = ""


class SupplierNotice(BaseModel):
    """The supplier's word on a package (signal)."""

    package_id: str
    state: SupplierState
    at: datetime
    supplier_order_id: str = ""


class PackageRequest(BaseModel):
    """An action on one package (the merchant confirms a rejected package came back)."""

    package_id: str
    actor: Actor


InboxSource = Literal["payment", "carrier", "supplier"]


class InboxEvent(BaseModel):
    """A partner callback as the inbox keeps it: its notice (`payload`, JSON) goes to the
    workflow of `order_id` (a payment's, a package's order)."""

    source: InboxSource
    event_id: str = Field(min_length=1, max_length=128)
    order_id: str = Field(max_length=64)
    payload: str
    received_at: datetime | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None


class ReusedEvent(BaseModel):
    """A callback refused because its `event_id` was already received with another payload
    (409 EVENT_ID_REUSED): what it said, and what the first one with that id said."""

    source: InboxSource
    event_id: str
    order_id: str
    payload: str
    received_at: datetime
    first_order_id: str
    first_payload: str


class ReconcileInput(BaseModel):
    grace_seconds: int = Field(120, ge=0)  # younger orders are left alone
    lookback_hours: int = Field(72, ge=1)  # how far back to look for terminated workflows
    # set: the round looks only at orders placed this many seconds back whose workflow never
    # started (the API stopped, or Temporal was away, between placing and starting); a
    # cheap round, run every half minute, that releases their stock within a minute
    placements_within_seconds: int | None = Field(None, ge=1, le=86_400)


class SweepInput(BaseModel):
    """The gateway's captures of the last `lookback_seconds` are compared with the ledger,
    but for the last `grace_seconds` (their callbacks may be on their way)."""

    lookback_seconds: int = Field(72 * 3600, ge=1)
    grace_seconds: int = Field(120, ge=0)


class SweepResult(BaseModel):
    checked: int  # captures the gateway listed
    delivered: list[str]  # txn ids missing from the ledger, delivered as payments now


class ReconcileResult(BaseModel):
    checked: int  # stored orders in flight
    repaired: list[str]  # orders whose workflow was started again to close or resume them
    captures_delivered: list[str] = []  # gateway txns missing from the ledger, delivered now
