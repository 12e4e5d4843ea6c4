"""The console's order list and order page, and the order actions."""

from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from typing import Annotated, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from api import actions
from api import orders as orders_api
from api.auth import Role
from api.console import words
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
T = TypeVar("T")


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


FIELD_LABELS = {  # what the form calls each filter (a refusal names it so)
    "q": "Search",
    "status": "Status",
    "sub_status": "Sub-status",
    "close_reason": "Close reason",
    "buyer_id": "Buyer",
    "shop_id": "Shop",
    "placed_from": "Placed from",
    "placed_to": "Placed to",
    "paid_from": "Paid from",
    "paid_to": "Paid to",
    "unshipped_hours": "Paid more than",
    "refund_failed": "has a failed refund",
    "order_error": "has an order error",
    "has_open_case": "has an open after-sales case",
    "sort": "Sort",
}


def _filters(request: Request) -> dict[str, str]:
    """The list's filters as typed (each cut at 100 characters: `_where` refuses a longer
    one): what the form shows again."""
    return {name: request.query_params.get(name, "") for name in FILTERS}


def _where(op: Operator, form: dict[str, str], lang: str) -> orders.OrderFilter:
    """The form's filters, each checked: every refusal at once, each by its label."""
    wrong: list[str] = []

    def checked(name: str, parse: Callable[[], T]) -> T | None:
        try:
            if len(form.get(name, "")) > orders_api.MAX_SEARCH:
                raise Problem(
                    ErrorCode.VALIDATION, f"{name}: at most {orders_api.MAX_SEARCH} characters"
                )
            return parse()
        except Problem as problem:
            said = problem.detail.removeprefix(f"{name}: ")
            wrong.append(f"{words.text(lang, FIELD_LABELS.get(name, name))}: {said}")
            return None

    for name in ("q", "buyer_id", "shop_id", "refund_failed", "order_error", "has_open_case"):
        checked(name, lambda: None)  # their length
    status = checked("status", lambda: choice("status", form["status"], OrderStatus))
    sub = checked("sub_status", lambda: choice("sub_status", form["sub_status"], SubStatus))
    reason = checked(
        "close_reason", lambda: choice("close_reason", form["close_reason"], CloseReason)
    )

    def day(name: str) -> datetime | None:
        return checked(name, lambda: _day(name, form[name], op, end=name.endswith("_to")))

    days = {name: day(name) for name in ("placed_from", "placed_to", "paid_from", "paid_to")}
    hours = checked("unshipped_hours", lambda: _hours(form["unshipped_hours"]))
    if form.get("sort", orders.DEFAULT_SORT) not in SORT_LABELS:
        wrong.append(f"{words.text(lang, 'Sort')}: {', '.join(SORT_LABELS)}")
    if wrong:
        raise Problem(ErrorCode.VALIDATION, "; ".join(wrong))
    where = checked(
        "q",
        lambda: orders_api.order_filter(
            op.user,
            q=form["q"] or None,
            buyer_id=form["buyer_id"] or None,
            shop_id=form["shop_id"] or None,
            status=status,
            sub_status=sub,
            close_reason=reason,
            placed_from=days["placed_from"],
            placed_to=days["placed_to"],
            paid_from=days["paid_from"],
            paid_to=days["paid_to"],
            refund_failed=True if form["refund_failed"] else None,
            order_error=True if form["order_error"] else None,
            has_open_case=True if form["has_open_case"] else None,
            unshipped_hours=hours,
        ),
    )
    if where is None:
        raise Problem(ErrorCode.VALIDATION, "; ".join(wrong))
    return where


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
        form = {**_filters(request), "sort": sort or orders.DEFAULT_SORT}
        try:
            where = _where(op, form, words.language(request))
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
        where = _where(op, _filters(request), words.language(request))
        return orders_api.export_response(db, where)

    return await signed_in(request, settings, download, counts=False)


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
    typed: dict[str, str] | None = None,
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
        typed=typed or {},
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
    typed: dict[str, str] | None = None,
) -> Awaitable[Response]:
    async def again(op: Operator, problem: Problem) -> Response:
        return await _order_page(
            request, op, settings, db, client, order_id, problem.status, problem.detail, "", typed
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

    typed = {"package": package_id, "carrier": carrier, "tracking_no": tracking_no}
    return await _order_act(
        request, settings, db, client, order_id, csrf, do, "shipped", typed=typed
    )


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
    typed = {"request": request_id, "reason": reason}
    return await _order_act(request, settings, db, client, order_id, csrf, do, done, typed=typed)


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

    typed = {"action": "close", "reason": reason}
    return await _order_act(
        request, settings, db, client, order_id, csrf, do, "closed", typed=typed
    )


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
