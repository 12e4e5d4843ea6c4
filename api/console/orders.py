"""The console's order list and order page, and the order actions."""

from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from api import actions
from api import orders as orders_api
from api.auth import Role
from api.console.pages import (
    DONE,
    PAGE_SIZE,
    STAFF,
    Csrf,
    Filter,
    Text,
    act,
    choice,
    page,
    refused,
    shop_names,
    signed_in,
)
from api.console.session import Operator
from api.deps import DatabaseDep, SettingsDep, TemporalDep
from api.errors import Problem
from api.openapi import reads_query
from domain.actions import order_actions
from domain.carriers import CARRIERS
from domain.errors import ErrorCode
from domain.models import SANE_YEARS, CloseReason, OrderStatus, SubStatus
from store import cases, orders
from workflows import ids

router = APIRouter(prefix="/console", include_in_schema=False)


def _day(name: str, raw: str | None, op: Operator, end: bool = False) -> datetime | None:
    """A calendar day in the operator's zone: its first instant (an end: the next day's)."""
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise Problem(ErrorCode.VALIDATION, f"{name}: a date as YYYY-MM-DD") from None
    if day.year not in SANE_YEARS:
        raise Problem(
            ErrorCode.VALIDATION, f"{name}: a date from {SANE_YEARS[0]} to {SANE_YEARS[-1]}"
        )
    return datetime.combine(day + timedelta(days=1 if end else 0), time(), op.zone)


def _hours(raw: str | None) -> int | None:
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 6:
        raise Problem(ErrorCode.VALIDATION, "unshipped_hours: a whole number of hours")
    return int(raw)


FILTERS = (
    "q",
    "status",
    "sub_status",
    "close_reason",
    "buyer_id",
    "shop_id",
    "placed_from",
    "placed_to",
    "paid_from",
    "paid_to",
    "refund_failed",
    "order_error",
    "has_open_case",
    "unshipped_hours",
)
SORT_LABELS = {
    "-placed": "newest first",
    "placed": "oldest first",
    "-paid": "paid latest first",
    "paid": "paid earliest first",
    "-total": "largest total first",
    "total": "smallest total first",
}


def _filters(request: Request) -> dict[str, str]:
    """The list's filters as typed (each at most 100 characters): what the form shows again."""
    form = {name: request.query_params.get(name, "") for name in FILTERS}
    for name, value in form.items():
        if len(value) > orders_api.MAX_SEARCH:
            raise Problem(
                ErrorCode.VALIDATION, f"{name}: at most {orders_api.MAX_SEARCH} characters"
            )
    return form


def _where(op: Operator, form: dict[str, str]) -> orders.OrderFilter:
    return orders_api.order_filter(
        op.user,
        q=form["q"] or None,
        buyer_id=form["buyer_id"] or None,
        shop_id=form["shop_id"] or None,
        status=choice("status", form["status"], OrderStatus),
        sub_status=choice("sub_status", form["sub_status"], SubStatus),
        close_reason=choice("close_reason", form["close_reason"], CloseReason),
        placed_from=_day("placed_from", form["placed_from"], op),
        placed_to=_day("placed_to", form["placed_to"], op, end=True),
        paid_from=_day("paid_from", form["paid_from"], op),
        paid_to=_day("paid_to", form["paid_to"], op, end=True),
        refund_failed=True if form["refund_failed"] else None,
        order_error=True if form["order_error"] else None,
        has_open_case=True if form["has_open_case"] else None,
        unshipped_hours=_hours(form["unshipped_hours"]),
    )


@router.get("/orders")
@reads_query(*FILTERS)
async def orders_page(
    request: Request,
    settings: SettingsDep,
    db: DatabaseDep,
    sort: Filter = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    async def show(op: Operator) -> Response:
        choices = {
            "statuses": list(OrderStatus),
            "sub_statuses": list(SubStatus),
            "close_reasons": list(CloseReason),
            "sorts": SORT_LABELS,
            "shops": await shop_names(db, op),  # an admin's filter; a merchant has one
        }
        form = {name: request.query_params.get(name, "")[:100] for name in FILTERS}
        form["sort"] = sort or orders.DEFAULT_SORT
        try:
            form = {**_filters(request), "sort": form["sort"]}
            where = _where(op, form)
            if form["sort"] not in SORT_LABELS:
                raise Problem(ErrorCode.VALIDATION, f"sort: one of {', '.join(SORT_LABELS)}")
            async with db.sessions() as session:
                found = await orders_api.order_page(session, where, PAGE_SIZE, cursor, form["sort"])
        except Problem as problem:
            return page(
                request,
                "orders.html",
                problem.status,
                op,
                form=form,
                error=problem.detail,
                items=[],
                total=None,
                **choices,
            )
        query = {
            k: v for k, v in form.items() if v and not (k == "sort" and v == orders.DEFAULT_SORT)
        }
        nxt = f"?{urlencode({**query, 'cursor': found.next_cursor})}" if found.next_cursor else ""
        first = f"?{urlencode(query)}" if cursor else ""  # "?" alone: the unfiltered first
        export = "?" + urlencode({k: v for k, v in query.items() if k != "sort"})
        return page(
            request,
            "orders.html",
            200,
            op,
            form=form,
            items=found.items,
            total=found.total,
            next_url=nxt,
            first_url=first,
            export_url=export,
            **choices,
        )

    return await signed_in(request, settings, show)


@router.get("/orders/export.csv")
@reads_query(*FILTERS)
async def export_csv(request: Request, settings: SettingsDep, db: DatabaseDep) -> Response:
    """The list's current filters, every matching order as CSV (the API's export)."""

    async def download(op: Operator) -> Response:
        return orders_api.export_response(db, _where(op, _filters(request)))

    return await signed_in(request, settings, download)


async def _order_page(
    request: Request,
    op: Operator,
    settings: SettingsDep,
    db: DatabaseDep,
    client: TemporalDep,
    order_id: str,
    status: int = 200,
    error: str = "",
    done: str = "",
) -> Response:
    async with db.sessions() as session:
        state = await orders_api.visible(session, op.user, order_id)
        events = await orders.events(session, order_id)
        order_cases, _ = await cases.page(
            session, buyer_id=None, status=None, order_id=order_id, limit=50, cursor=None
        )
    ui = f"{settings.temporal_ui_url}/namespaces/{client.namespace}/workflows/"
    return page(
        request,
        "order.html",
        status,
        op,
        order=state,
        events=events,
        cases=order_cases,
        actions=order_actions(state, op.user.role.value),
        carriers=CARRIERS,
        workflow_url=ui + ids.order_workflow_id(order_id),
        error=error,
        done=DONE.get(done, ""),
    )


@router.get("/orders/{order_id}")
async def order_page(
    request: Request,
    order_id: str,
    settings: SettingsDep,
    db: DatabaseDep,
    client: TemporalDep,
    done: Filter = None,
) -> Response:
    async def show(op: Operator) -> Response:
        return await _order_page(request, op, settings, db, client, order_id, done=done or "")

    return await signed_in(request, settings, show)


def _order_act(
    request: Request,
    settings: SettingsDep,
    db: DatabaseDep,
    client: TemporalDep,
    order_id: str,
    csrf: str | None,
    do: Callable[[Operator], Awaitable[object]],
    done: str,
    roles: tuple[Role, ...] = STAFF,
) -> Awaitable[Response]:
    async def again(op: Operator, problem: Problem) -> Response:
        return await _order_page(
            request, op, settings, db, client, order_id, problem.status, problem.detail
        )

    return act(request, settings, csrf, do, done, f"/console/orders/{order_id}", again, roles)


@router.post("/orders/{order_id}/packages/{package_id}/ship")
async def ship(
    request: Request,
    order_id: str,
    package_id: str,
    settings: SettingsDep,
    db: DatabaseDep,
    client: TemporalDep,
    carrier: Annotated[str, Form(max_length=64)] = "",
    tracking_no: Annotated[str, Form(max_length=128)] = "",
    csrf: Csrf = None,
) -> Response:
    async def do(op: Operator) -> object:
        body = orders_api.ShipBody(
            carrier=carrier.strip() or None, tracking_no=tracking_no.strip() or None
        )
        return await actions.ship(
            client=client,
            db=db,
            user=op.user,
            order_id=order_id,
            package_id=package_id,
            carrier=body.carrier,
            tracking_no=body.tracking_no,
        )

    return await _order_act(request, settings, db, client, order_id, csrf, do, "shipped")


@router.post("/orders/{order_id}/refunds/{request_id}/{decision}")
async def decide_refund(
    request: Request,
    order_id: str,
    request_id: str,
    decision: str,
    settings: SettingsDep,
    db: DatabaseDep,
    client: TemporalDep,
    reason: Text = "",
    csrf: Csrf = None,
) -> Response:
    if decision not in ("agree", "refuse"):
        return refused(request, Problem(ErrorCode.NOT_FOUND, f"no action {decision}"))

    async def do(op: Operator) -> object:
        body = orders_api.ReasonBody(reason=reason)
        return await actions.decide_refund(
            client=client,
            db=db,
            user=op.user,
            order_id=order_id,
            request_id=request_id,
            agree=decision == "agree",
            reason=body.reason,
        )

    done = "agreed" if decision == "agree" else "refused"
    return await _order_act(request, settings, db, client, order_id, csrf, do, done)


@router.post("/orders/{order_id}/close")
async def close(
    request: Request,
    order_id: str,
    settings: SettingsDep,
    db: DatabaseDep,
    client: TemporalDep,
    reason: Text = "",
    csrf: Csrf = None,
) -> Response:
    async def do(op: Operator) -> object:
        body = orders_api.ReasonBody(reason=reason)
        return await actions.close(
            client=client, db=db, user=op.user, order_id=order_id, reason=body.reason
        )

    return await _order_act(request, settings, db, client, order_id, csrf, do, "closed")


@router.post("/orders/{order_id}/packages/{package_id}/return-received")
async def return_received(
    request: Request,
    order_id: str,
    package_id: str,
    settings: SettingsDep,
    db: DatabaseDep,
    client: TemporalDep,
    csrf: Csrf = None,
) -> Response:
    async def do(op: Operator) -> object:
        return await actions.return_received(
            client=client, db=db, user=op.user, order_id=order_id, package_id=package_id
        )

    return await _order_act(request, settings, db, client, order_id, csrf, do, "returned")


@router.post("/orders/{order_id}/failed-refunds/{refund_id}/retry")
async def retry_refund(
    request: Request,
    order_id: str,
    refund_id: str,
    settings: SettingsDep,
    db: DatabaseDep,
    client: TemporalDep,
    csrf: Csrf = None,
) -> Response:
    async def do(op: Operator) -> object:
        return await actions.retry_refund(
            client=client, db=db, settings=settings, user=op.user, refund_id=refund_id
        )

    return await _order_act(
        request, settings, db, client, order_id, csrf, do, "retried", (Role.ADMIN,)
    )
