"""Order routes: place, read, list, pay, ship, confirm, extend, cancel, close."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api import actions, messaging, views
from api.auth import User
from api.deps import (
    Buyer,
    CurrentUser,
    DatabaseDep,
    GatewayDep,
    Merchant,
    NowDep,
    SessionDep,
    SettingsDep,
    TemporalDep,
)
from api.errors import Problem
from api.views import OrderView
from domain.carriers import CarrierCode
from domain.errors import ErrorCode
from domain.messages import (
    CloseRequest,
    ConfirmRequest,
    ExtendRequest,
    OrderWorkflowInput,
    PayRequest,
)
from domain.models import (
    MAX_LINES,
    Address,
    CloseReason,
    LineRequest,
    OrderEvent,
    OrderState,
    OrderStatus,
    PaymentChannel,
    QueryTime,
    ShopId,
    SubStatus,
    Unavailable,
    printable,
    sane_time,
)
from gateways.payments import PaymentGatewayClient
from runtime.settings import Settings
from store import intents, orders
from store.db import Database
from store.orders import OrderFilter
from workflows.order import OrderWorkflow

router = APIRouter(tags=["orders"])
OrderSort = Literal["-placed", "placed", "-paid", "paid", "-total", "total"]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$"),
]


class PlaceOrderBody(BaseModel):
    lines: list[LineRequest] = Field(min_length=1, max_length=MAX_LINES)
    address: Address


class ReasonBody(BaseModel):
    reason: str = Field("", max_length=500)


class PayBody(BaseModel):
    channel: Literal[PaymentChannel.BALANCE, PaymentChannel.CREDIT]  # gateways: payment intents


class ShipBody(BaseModel):
    carrier: CarrierCode | None = None  # GET /carriers; any case
    tracking_no: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class ConfirmBody(BaseModel):
    package_ids: list[str] | None = Field(None, min_length=1, max_length=50)


class IntentBody(BaseModel):
    channel: Literal[PaymentChannel.ALIPAY, PaymentChannel.WECHAT]  # wallets: POST /pay


class IntentOut(BaseModel):
    intent_id: str
    amount_cents: int
    pay_url: str


class OrderViewPage(BaseModel):
    items: list[OrderView]
    next_cursor: str | None
    total: int  # every order the filter matches, on all pages


class OrderPage(BaseModel):
    items: list[OrderState]
    next_cursor: str | None
    total: int


async def visible(session: SessionDep, user: CurrentUser, order_id: str) -> OrderState:
    state = await orders.get(session, order_id)
    if state is None or not user.can_see(state.buyer_id, state.shop_id):
        raise Problem(ErrorCode.NOT_FOUND, f"no order {order_id}")
    return state


@router.post("/orders", status_code=201, response_model=OrderView)
async def place_order(
    body: PlaceOrderBody,
    user: Buyer,
    client: TemporalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    now: NowDep,
    key: IdempotencyKey = None,
) -> OrderState:
    inp = OrderWorkflowInput(
        order_id=messaging.new_order_id(user.id, key),
        buyer_id=user.id,
        lines=body.lines,
        address=body.address,
        timings=settings.timings(),
    )
    return await messaging.place(client, db, settings, inp, now)


MAX_UNSHIPPED_HOURS = 24 * 366


def _aware(name: str, when: datetime | None) -> datetime | None:
    try:
        return None if when is None else sane_time(when)
    except ValueError as err:
        raise Problem(ErrorCode.VALIDATION, f"{name}: {err}") from None


def list_shop(user: User, shop_id: str | None) -> str | None:
    """The shop a list is narrowed to: a merchant's own (asking for another's is 403), else
    the one asked for, if any."""
    own = user.only_shop
    if own is not None and shop_id not in (None, own):
        raise Problem(ErrorCode.FORBIDDEN, f"this token sees shop {own} only")
    return own or shop_id


def order_filter(
    user: User,
    *,
    buyer_id: str | None = None,
    shop_id: str | None = None,
    status: OrderStatus | None = None,
    sub_status: SubStatus | None = None,
    close_reason: CloseReason | None = None,
    placed_from: datetime | None = None,
    placed_to: datetime | None = None,
    paid_from: datetime | None = None,
    paid_to: datetime | None = None,
    refund_failed: bool | None = None,
    order_error: bool | None = None,
    has_open_case: bool | None = None,
    unshipped_hours: int | None = None,
    q: str | None = None,
) -> OrderFilter:
    """One list's filter, for the JSON API and the console: a buyer sees only their own, a
    merchant only its shop's."""
    if user.role == "buyer":
        if buyer_id not in (None, user.id):
            raise Problem(ErrorCode.FORBIDDEN, "buyers list their own orders only")
        buyer_id = user.id
    shop_id = list_shop(user, shop_id)
    if unshipped_hours is not None and not 0 <= unshipped_hours <= MAX_UNSHIPPED_HOURS:
        raise Problem(ErrorCode.VALIDATION, f"unshipped_hours: 0 to {MAX_UNSHIPPED_HOURS}")
    since = None
    if unshipped_hours is not None:
        since = datetime.now(UTC) - timedelta(hours=unshipped_hours)
    return OrderFilter(
        buyer_id=buyer_id,
        shop_id=shop_id,
        status=status,
        sub_status=sub_status,
        close_reason=close_reason,
        placed_from=_aware("placed_from", placed_from),
        placed_to=_aware("placed_to", placed_to),
        paid_from=_aware("paid_from", paid_from),
        paid_to=_aware("paid_to", paid_to),
        refund_failed=refund_failed,
        order_error=order_error,
        has_open_case=has_open_case,
        unshipped_paid_before=since,
        q=search_text(q),
    )


MAX_SEARCH = 100


def search_text(q: str | None) -> str | None:
    """A search box's text, trimmed (blank: no search); control characters refused."""
    if q is None or not q.strip():
        return None
    q = q.strip()
    if len(q) > MAX_SEARCH:
        raise Problem(ErrorCode.VALIDATION, f"q: at most {MAX_SEARCH} characters")
    try:
        return printable(q)
    except ValueError as err:
        raise Problem(ErrorCode.VALIDATION, f"q: {err}") from None


async def order_page(
    session: SessionDep,
    where: OrderFilter,
    limit: int,
    cursor: str | None,
    sort: str = orders.DEFAULT_SORT,
) -> OrderPage:
    try:
        items, nxt = await orders.page(session, where, limit=limit, cursor=cursor, sort=sort)
    except ValueError as err:
        raise Problem(ErrorCode.VALIDATION, str(err)) from None
    return OrderPage(items=items, next_cursor=nxt, total=await orders.count(session, where))


async def listed(
    user: CurrentUser,
    status: OrderStatus | None = None,
    sub_status: SubStatus | None = None,
    close_reason: CloseReason | None = None,
    buyer_id: str | None = Query(None, max_length=64),
    shop_id: ShopId | None = None,
    placed_from: QueryTime | None = None,
    placed_to: QueryTime | None = None,
    paid_from: QueryTime | None = None,
    paid_to: QueryTime | None = None,
    refund_failed: bool | None = None,
    order_error: bool | None = None,
    has_open_case: bool | None = None,
    unshipped_hours: int | None = Query(None, ge=0, le=MAX_UNSHIPPED_HOURS),
    q: str | None = Query(None, max_length=MAX_SEARCH),
) -> OrderFilter:
    """A list's filters from its query (the list and its CSV export take the same)."""
    return order_filter(
        user,
        buyer_id=buyer_id,
        shop_id=shop_id,
        status=status,
        sub_status=sub_status,
        close_reason=close_reason,
        placed_from=placed_from,
        placed_to=placed_to,
        paid_from=paid_from,
        paid_to=paid_to,
        refund_failed=refund_failed,
        order_error=order_error,
        has_open_case=has_open_case,
        unshipped_hours=unshipped_hours,
        q=q,
    )


Listed = Annotated[OrderFilter, Depends(listed)]


@router.get("/orders", response_model=OrderViewPage)
async def list_orders(
    session: SessionDep,
    where: Listed,
    sort: OrderSort = "-placed",
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(None, max_length=200),
) -> OrderPage:
    """Newest first unless `sort` says (`placed`, `paid`, `total`; `-` first for descending;
    unpaid orders sort as paid earliest). `q` searches: an order id by a prefix of 6 or more
    characters, a buyer id by a prefix, a SKU of its lines, or a package's tracking number;
    any case. `total` counts every match. Times are ISO 8601 with a zone; `*_from` is
    inclusive, `*_to` exclusive; `unshipped_hours=N`: paid more than N hours ago and not
    (every package) shipped; `order_error=true`: a step failed for good (ORDER_ERROR in its
    events)."""
    return await order_page(session, where, limit, cursor, sort)


@router.get(
    "/orders/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "one row per order"}},
)
async def export_orders(user: Merchant, db: DatabaseDep, where: Listed) -> StreamingResponse:
    """Every order the list's filters match, newest first, as CSV: streamed a thousand rows
    at a time, so its size does not grow the service's memory. Times are RFC 3339 UTC."""
    return export_response(db, where)


def export_response(db: Database, where: OrderFilter) -> StreamingResponse:
    """The API's and the console's download: each batch leaves as it is read."""

    async def chunks() -> AsyncIterator[str]:
        yield views.csv_text([orders.EXPORT_COLUMNS])
        async for batch in orders.export_rows(db, where):
            yield views.csv_text(batch)

    return views.csv_download(chunks(), "orders.csv")


@router.get("/orders/{order_id}", response_model=OrderView)
async def get_order(order_id: str, user: CurrentUser, session: SessionDep) -> OrderState:
    return await visible(session, user, order_id)


@router.get("/orders/{order_id}/events", response_model=list[OrderEvent])
async def order_events(order_id: str, user: CurrentUser, session: SessionDep) -> list[OrderEvent]:
    await visible(session, user, order_id)
    return views.events_for(user, await orders.events(session, order_id))


@router.post("/orders/{order_id}/pay", response_model=OrderView)
async def pay(
    order_id: str, body: PayBody, user: Buyer, client: TemporalDep, db: DatabaseDep
) -> OrderState:
    req = PayRequest(channel=body.channel, actor=user.actor)
    return await messaging.act(client, db, user, order_id, OrderWorkflow.pay, req)


@router.post("/orders/{order_id}/payment-intents", status_code=201, response_model=IntentOut)
async def payment_intent(
    order_id: str,
    body: IntentBody,
    user: Buyer,
    session: SessionDep,
    db: DatabaseDep,
    gateway: GatewayDep,
    settings: SettingsDep,
) -> IntentOut:
    state = await visible(session, user, order_id)
    if state.status is not OrderStatus.PENDING_PAYMENT:
        raise Problem(ErrorCode.INVALID_TRANSITION, f"order is {state.status}, not payable")
    await session.close()  # no read transaction held across the gateway's answer
    return await open_intent(db, gateway, settings, order_id, body.channel, state.total_cents)


async def open_intent(
    db: Database,
    gateway: PaymentGatewayClient,
    settings: Settings,
    payer_id: str,
    channel: PaymentChannel,
    amount_cents: int,
    shares: dict[str, int] | None = None,
) -> IntentOut:
    """An intent at the gateway for an order (or a checkout: `payer_id` and its orders'
    `shares`), kept before the buyer sees where to pay; its callback names `payer_id`."""
    intent = await gateway.create_intent(
        payer_id,
        channel.value,
        amount_cents,
        f"{settings.api_public_url}/webhooks/payments",
    )
    async with db.transaction() as write:
        await intents.record(
            write,
            intent_id=intent.intent_id,
            order_id=payer_id,
            channel=intent.channel,
            amount_cents=intent.amount_cents,
            now=datetime.now(UTC),
            shares=shares,
        )
    return IntentOut(
        intent_id=intent.intent_id, amount_cents=intent.amount_cents, pay_url=intent.pay_url
    )


@router.post("/orders/{order_id}/packages/{package_id}/ship", response_model=OrderView)
async def ship(
    order_id: str,
    package_id: str,
    user: Merchant,
    client: TemporalDep,
    db: DatabaseDep,
    body: ShipBody | None = None,
) -> OrderState:
    body = body or ShipBody()
    return await actions.ship(
        client=client,
        db=db,
        user=user,
        order_id=order_id,
        package_id=package_id,
        carrier=body.carrier,
        tracking_no=body.tracking_no,
    )


@router.post("/orders/{order_id}/confirm-receipt", response_model=OrderView)
async def confirm_receipt(
    order_id: str,
    user: Buyer,
    client: TemporalDep,
    db: DatabaseDep,
    body: ConfirmBody | None = None,
) -> OrderState:
    req = ConfirmRequest(package_ids=body.package_ids if body else None, actor=user.actor)
    return await messaging.act(client, db, user, order_id, OrderWorkflow.confirm_receipt, req)


@router.post("/orders/{order_id}/extend-receipt", response_model=OrderView)
async def extend_receipt(
    order_id: str, user: Buyer, client: TemporalDep, db: DatabaseDep
) -> OrderState:
    req = ExtendRequest(actor=user.actor)
    return await messaging.act(client, db, user, order_id, OrderWorkflow.extend_receipt, req)


@router.post("/orders/{order_id}/cancel", response_model=OrderView)
async def cancel(
    order_id: str,
    user: Buyer,
    client: TemporalDep,
    db: DatabaseDep,
    body: ReasonBody | None = None,
) -> OrderState:
    req = CloseRequest(reason=body.reason if body else "", actor=user.actor)
    return await messaging.act(client, db, user, order_id, OrderWorkflow.cancel, req)


@router.post("/orders/{order_id}/close", response_model=OrderView)
async def close(
    order_id: str,
    user: Merchant,
    client: TemporalDep,
    db: DatabaseDep,
    body: ReasonBody | None = None,
) -> OrderState:
    reason = body.reason if body else ""
    return await actions.close(client=client, db=db, user=user, order_id=order_id, reason=reason)


@router.post("/orders/{order_id}/packages/{package_id}/return-received", response_model=OrderView)
async def return_received(
    order_id: str, package_id: str, user: Merchant, client: TemporalDep, db: DatabaseDep
) -> OrderState:
    """A rejected package arrived back at its location: its goods go back on hand."""
    return await actions.return_received(
        client=client, db=db, user=user, order_id=order_id, package_id=package_id
    )


class ReorderOut(BaseModel):
    order: OrderView
    unavailable: list[Unavailable]


@router.post("/orders/{order_id}/reorder", status_code=201, response_model=ReorderOut)
async def reorder(
    order_id: str,
    user: Buyer,
    session: SessionDep,
    client: TemporalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    now: NowDep,
    key: IdempotencyKey = None,
) -> ReorderOut:
    """Buy again (再次购买): a new order at today's prices with the old one's lines, through
    the same placement as `POST /orders`; what cannot be bought (in full) is reported per
    line, and nothing at all is a 409 naming every line's reason."""
    old = await visible(session, user, order_id)
    await session.close()  # no read transaction held across the workflow's answer
    inp = OrderWorkflowInput(
        order_id=messaging.keyed_id(key, user.id, "reorder", order_id),  # its own key space
        buyer_id=user.id,
        lines=[LineRequest(sku=line.sku, quantity=line.quantity) for line in old.lines],
        address=old.address,
        timings=settings.timings(),
        reorder_of=old.id,
    )
    placed = await messaging.place(client, db, settings, inp, now)
    return ReorderOut(order=views.order_view(placed), unavailable=placed.unavailable)
