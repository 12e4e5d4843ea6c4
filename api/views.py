"""What a user is shown of stored records. The API's order is `OrderView`, the documented
contract: the workflow's state and the stored snapshot (`OrderState`) are internal and free to
change (where its stock is held, its durations, how a case holds its units are not shown).
A buyer sees members of staff by their role ("merchant", "platform"), never by their id."""

import csv
import io
from collections.abc import AsyncIterable, Iterable
from datetime import datetime

from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from api.auth import Role, User
from domain.after_sales import AfterSalesCase, CaseStatus, TimelineEntry
from domain.models import (
    Address,
    CaseType,
    CloseReason,
    LineRequest,
    OrderEvent,
    OrderLine,
    OrderState,
    OrderStatus,
    Package,
    Payment,
    Refund,
    RefundRequest,
    SubStatus,
    Unavailable,
    as_seen_by_buyers,
)


class OrderCase(BaseModel):
    """An after-sales case as its order shows it (the case itself: GET /after-sales/{id})."""

    id: str
    type: CaseType
    open: bool
    refund_id: str | None = None


class OrderView(BaseModel):
    """An order, as the API shows it to its buyer, merchants and admins."""

    id: str
    shop_id: str  # the shop the order belongs to
    checkout_id: str | None  # placed with other shops' orders in this checkout
    buyer_id: str
    status: OrderStatus
    sub_statuses: list[SubStatus]
    close_reason: CloseReason | None
    lines: list[OrderLine]
    address: Address
    goods_cents: int
    freight_cents: int
    total_cents: int
    paid_cents: int
    refunded_cents: int
    payment: Payment | None
    payment_deadline: datetime
    low_stock: bool  # "selling fast, pay soon", as placement found it
    packages: list[Package]
    refunds: list[Refund]
    refund_requests: list[RefundRequest]
    cases: list[OrderCase]
    receipt_extended: bool
    reorder_of: str | None
    unavailable: list[Unavailable]
    reviewed: bool
    completed_at: datetime | None
    closed_at: datetime | None
    version: int  # each change adds one; the order's events carry it too
    created_at: datetime
    updated_at: datetime


class CaseView(BaseModel):
    """An after-sales case, as the API shows it to its buyer, merchants and admins (the case
    workflow's own durations, the package units it holds and a decision waiting for the
    order's money are internal)."""

    id: str
    order_id: str
    shop_id: str  # its order's shop
    buyer_id: str
    type: CaseType
    status: CaseStatus
    reason: str
    description: str
    lines: list[LineRequest]
    images: list[str]  # sha256 of each evidence image: GET .../images/{sha256}
    claim_cents: int  # the most this case can refund
    proposed_cents: int | None
    agreed_cents: int | None
    return_carrier: str | None
    return_tracking_no: str | None
    replacements: list[str]  # an exchange: the order's replacement package ids
    deadline: datetime | None
    deadline_action: str  # what happens when the deadline passes
    service_phone: str
    refund_id: str | None
    refund_status: str | None
    timeline: list[TimelineEntry]
    version: int  # an action names the version it acts on
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class CaseViewPage(BaseModel):
    items: list[CaseView]
    next_cursor: str | None


def order_view(state: OrderState) -> OrderView:
    """The order's public fields (what it holds besides is internal)."""
    return OrderView.model_validate(state.model_dump())


def events_for(user: User, events: list[OrderEvent]) -> list[OrderEvent]:
    if user.role is not Role.BUYER:
        return events
    return [e.model_copy(update={"actor": as_seen_by_buyers(e.actor)}) for e in events]


def case_for(user: User, case: AfterSalesCase) -> AfterSalesCase:
    if user.role is not Role.BUYER:
        return case
    timeline = [t.model_copy(update={"actor": as_seen_by_buyers(t.actor)}) for t in case.timeline]
    return case.model_copy(update={"timeline": timeline})


def csv_text(rows: Iterable[Iterable[object]]) -> str:
    """Rows as CSV text (RFC 4180: CRLF, quoted where a value needs it)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def csv_download(chunks: AsyncIterable[str] | Iterable[str], filename: str) -> StreamingResponse:
    """A CSV file to save, its text sent as it is made."""
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
