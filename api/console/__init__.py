"""The merchant and admin console under /console: server-rendered pages over the stored
orders and cases, whose forms call the very route functions of the JSON API (same checks,
same messages). Sign-in, CSRF and the operator's zone live in `api.console.session`."""

from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.routing import Mount

from api import after_sales as cases_api
from api import orders as orders_api
from api import refunds as refunds_api
from api.auth import Role, decode
from api.console import session as auth
from api.console.session import Operator
from api.deps import (
    BlobsDep,
    DatabaseDep,
    SettingsDep,
    TemporalDep,
    require_role,
)
from api.errors import Problem, as_problem
from domain.actions import case_actions, order_actions
from domain.after_sales import CaseAction, CaseStatus
from domain.errors import ErrorCode
from domain.models import MAX_AMOUNT_CENTS, CloseReason, OrderStatus, SubStatus, money
from store import cases, orders
from workflows import ids

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["money"] = money
router = APIRouter(prefix="/console", include_in_schema=False)
static = Mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
STAFF = (Role.MERCHANT, Role.ADMIN)
PAGE_SIZE = 25
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; "
    "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
DONE = {  # what a finished action says on the page it returns to
    "shipped": "Package shipped.",
    "agreed": "Refund request agreed.",
    "refused": "Refund request refused.",
    "closed": "Order closed.",
    "returned": "Return received: the goods are back on hand.",
    "retried": "Refund sent again through its channel.",
    "case": "Done: the case moved on.",
}
Text = Annotated[str, Form(max_length=500)]
Csrf = Annotated[str | None, Form(max_length=128)]
Filter = Annotated[str | None, Query(max_length=64)]


def _page(
    request: Request, name: str, status: int = 200, op: Operator | None = None, **context: Any
) -> HTMLResponse:
    local = op.local if op else (lambda at: at.isoformat(timespec="seconds") if at else "-")
    response = templates.TemplateResponse(
        request, name, {"op": op, "local": local, **context}, status_code=status
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def _refused(request: Request, problem: Problem, op: Operator | None = None) -> HTMLResponse:
    return _page(request, "refused.html", problem.status, op, problem=problem)


def _staff(request: Request, secret: str) -> Operator:
    op = auth.operator(request, secret)
    require_role(op.user, *STAFF)
    return op


# ---- sign-in ------------------------------------------------------------------------------


@router.get("")
async def home() -> RedirectResponse:
    return RedirectResponse("/console/orders", 303)


def _back_to(raw: str | None) -> str:
    """Where to go after signing in: a console page, never elsewhere (no open redirect)."""
    if raw and raw.startswith("/console/") and "//" not in raw and "\\" not in raw:
        return raw
    return "/console/orders"


def _login_page(
    request: Request, status: int = 200, error: str = "", back: str | None = None
) -> HTMLResponse:
    token = auth.login_token(request)
    response = _page(
        request, "login.html", status, form_token=token, error=error, back=_back_to(back)
    )
    auth.keep_login_token(request, response, token)
    return response


Back = Annotated[str | None, Query(alias="next", max_length=500)]


@router.get("/login")
async def login_form(request: Request, back: Back = None) -> HTMLResponse:
    return _login_page(request, back=back)


@router.post("/login")
async def login(
    request: Request,
    settings: SettingsDep,
    token: Annotated[str, Form(max_length=auth.MAX_TOKEN_CHARS)] = "",
    zone: Annotated[str, Form(max_length=auth.MAX_ZONE_CHARS)] = "UTC",
    back: Annotated[str | None, Form(alias="next", max_length=500)] = None,
    csrf: Csrf = None,
) -> Response:
    try:
        auth.check_login_token(request, csrf)
        user = decode(token.strip(), settings.jwt_secret)
        if user.role not in STAFF:
            raise Problem(
                ErrorCode.FORBIDDEN, f"the console is for merchants and admins, not a {user.role}"
            )
        auth.zone_of(zone)
    except Problem as problem:
        return _login_page(request, problem.status, problem.detail, back)
    response = RedirectResponse(_back_to(back), 303)
    auth.sign_in(request, response, token.strip(), zone)
    return response


@router.post("/logout")
async def logout(request: Request, settings: SettingsDep, csrf: Csrf = None) -> Response:
    try:
        auth.check_csrf(auth.operator(request, settings.jwt_secret), csrf)
    except Problem as problem:
        return _refused(request, problem)
    response = RedirectResponse("/console/login", 303)
    auth.sign_out(response)
    return response


async def _signed_in(
    request: Request, secret: str, show: Callable[[Operator], Awaitable[Response]]
) -> Response:
    """A page for staff: no session goes to the sign-in page; a refusal is shown."""
    try:
        op = _staff(request, secret)
        return await show(op)
    except Problem as problem:
        if problem.status == 401:  # sign in, then come back here
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/console/login?{urlencode({'next': here})}", 303)
        return _refused(request, problem)


# ---- orders -------------------------------------------------------------------------------


def _choice(name: str, raw: str | None, kind: Any) -> Any:
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        allowed = ", ".join(k.value for k in kind)
        raise Problem(ErrorCode.VALIDATION, f"{name}: one of {allowed}") from None


def _day(name: str, raw: str | None, op: Operator, end: bool = False) -> datetime | None:
    """A calendar day in the operator's zone: its first instant (an end: the next day's)."""
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise Problem(ErrorCode.VALIDATION, f"{name}: a date as YYYY-MM-DD") from None
    if end:
        if day == date.max:
            return None
        day += timedelta(days=1)
    return datetime.combine(day, time(), op.zone)


def _hours(raw: str | None) -> int | None:
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 6:
        raise Problem(ErrorCode.VALIDATION, "unshipped_hours: a whole number of hours")
    return int(raw)


@router.get("/orders")
async def orders_page(
    request: Request,
    settings: SettingsDep,
    db: DatabaseDep,
    status: Filter = None,
    sub_status: Filter = None,
    close_reason: Filter = None,
    buyer_id: Filter = None,
    placed_from: Filter = None,
    placed_to: Filter = None,
    paid_from: Filter = None,
    paid_to: Filter = None,
    refund_failed: Filter = None,
    has_open_case: Filter = None,
    unshipped_hours: Filter = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    form = {
        "status": status or "",
        "sub_status": sub_status or "",
        "close_reason": close_reason or "",
        "buyer_id": buyer_id or "",
        "placed_from": placed_from or "",
        "placed_to": placed_to or "",
        "paid_from": paid_from or "",
        "paid_to": paid_to or "",
        "refund_failed": refund_failed or "",
        "has_open_case": has_open_case or "",
        "unshipped_hours": unshipped_hours or "",
    }
    choices = {
        "statuses": list(OrderStatus),
        "sub_statuses": list(SubStatus),
        "close_reasons": list(CloseReason),
    }

    async def show(op: Operator) -> Response:
        try:
            where = orders_api.order_filter(
                op.user,
                buyer_id=buyer_id or None,
                status=_choice("status", status, OrderStatus),
                sub_status=_choice("sub_status", sub_status, SubStatus),
                close_reason=_choice("close_reason", close_reason, CloseReason),
                placed_from=_day("placed_from", placed_from, op),
                placed_to=_day("placed_to", placed_to, op, end=True),
                paid_from=_day("paid_from", paid_from, op),
                paid_to=_day("paid_to", paid_to, op, end=True),
                refund_failed=True if refund_failed else None,
                has_open_case=True if has_open_case else None,
                unshipped_hours=_hours(unshipped_hours),
            )
            async with db.sessions() as session:
                found = await orders_api.order_page(session, where, PAGE_SIZE, cursor)
        except Problem as problem:
            return _page(
                request,
                "orders.html",
                problem.status,
                op,
                form=form,
                error=problem.detail,
                items=[],
                **choices,
            )
        query = {k: v for k, v in form.items() if v}
        nxt = f"?{urlencode({**query, 'cursor': found.next_cursor})}" if found.next_cursor else ""
        first = f"?{urlencode(query)}" if cursor else ""  # "?" alone: the unfiltered first
        return _page(
            request,
            "orders.html",
            200,
            op,
            form=form,
            items=found.items,
            next_url=nxt,
            first_url=first,
            **choices,
        )

    return await _signed_in(request, settings.jwt_secret, show)


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
    return _page(
        request,
        "order.html",
        status,
        op,
        order=state,
        events=events,
        cases=order_cases,
        actions=order_actions(state, op.user.role.value),
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

    return await _signed_in(request, settings.jwt_secret, show)


async def _act(
    request: Request,
    settings: SettingsDep,
    csrf: str | None,
    do: Callable[[Operator], Awaitable[object]],
    done: str,
    back: str,
    again: Callable[[Operator, Problem], Awaitable[Response]],
    roles: tuple[Role, ...] = STAFF,
) -> Response:
    """One form's action: who (401/403), the CSRF token (403), then the API's own code path;
    success returns to the page (303), a refusal shows the page with the API's message."""
    try:
        op = auth.operator(request, settings.jwt_secret)
        require_role(op.user, *roles)
        auth.check_csrf(op, csrf)
    except Problem as problem:
        return _refused(request, problem)
    try:
        await do(op)
    except Exception as err:
        refusal = as_problem(err)
        if refusal is None:
            raise
        try:
            return await again(op, refusal)
        except Problem as unseen:  # the page itself is not there (an unknown order)
            return _refused(request, unseen, op)
    return RedirectResponse(f"{back}?done={done}", 303)


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

    return _act(request, settings, csrf, do, done, f"/console/orders/{order_id}", again, roles)


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
        return await orders_api.ship(order_id, package_id, op.user, client, db, body)

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
        return _refused(request, Problem(ErrorCode.NOT_FOUND, f"no action {decision}"))

    async def do(op: Operator) -> object:
        body = orders_api.ReasonBody(reason=reason)
        if decision == "agree":
            return await refunds_api.agree(order_id, request_id, op.user, client, db, body)
        return await refunds_api.refuse(order_id, request_id, body, op.user, client, db)

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
        return await orders_api.close(order_id, op.user, client, db, body)

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
        return await orders_api.return_received(order_id, package_id, op.user, client, db)

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
        async with db.sessions() as session:
            return await refunds_api.retry_refund(refund_id, op.user, session, client, db)

    return await _order_act(
        request, settings, db, client, order_id, csrf, do, "retried", (Role.ADMIN,)
    )


# ---- after-sales --------------------------------------------------------------------------


@router.get("/after-sales")
async def cases_page(
    request: Request,
    settings: SettingsDep,
    db: DatabaseDep,
    status: Filter = None,
    order_id: Filter = None,
    page: Annotated[int, Query(ge=1, le=cases.MAX_QUEUE_OFFSET // PAGE_SIZE)] = 1,
) -> Response:
    async def show(op: Operator) -> Response:
        shown: dict[str, Any] = {
            "chosen": status or "",
            "order_id": order_id or "",
            "statuses": list(CaseStatus),
            "page": page,
        }
        try:
            wanted = _choice("status", status, CaseStatus)
        except Problem as problem:
            return _page(
                request, "cases.html", problem.status, op, items=[], error=problem.detail, **shown
            )
        async with db.sessions() as session:
            items, more = await cases.queue(
                session,
                status=wanted,
                order_id=order_id or None,
                limit=PAGE_SIZE,
                offset=(page - 1) * PAGE_SIZE,
            )
        return _page(request, "cases.html", 200, op, items=items, more=more, **shown)

    return await _signed_in(request, settings.jwt_secret, show)


async def _case_page(
    request: Request,
    op: Operator,
    db: DatabaseDep,
    case_id: str,
    status: int = 200,
    error: str = "",
    done: str = "",
) -> Response:
    async with db.sessions() as session:
        case = await cases_api.visible_case(session, op.user, case_id)
    return _page(
        request,
        "case.html",
        status,
        op,
        case=case,
        actions=case_actions(case, op.user.role.value),
        error=error,
        done=DONE.get(done, ""),
    )


@router.get("/after-sales/{case_id}")
async def case_page(
    request: Request, case_id: str, settings: SettingsDep, db: DatabaseDep, done: Filter = None
) -> Response:
    async def show(op: Operator) -> Response:
        return await _case_page(request, op, db, case_id, done=done or "")

    return await _signed_in(request, settings.jwt_secret, show)


@router.get("/after-sales/{case_id}/images/{sha256}")
async def case_image(
    request: Request,
    case_id: str,
    sha256: str,
    settings: SettingsDep,
    db: DatabaseDep,
    blobs: BlobsDep,
) -> Response:
    async def show(op: Operator) -> Response:
        async with db.sessions() as session:
            return await cases_api.get_image(case_id, sha256, op.user, session, blobs)

    return await _signed_in(request, settings.jwt_secret, show)


def _cents(raw: str) -> int:
    """An amount in yuan as typed ("12.5", "12.50"): integer cents, within bounds."""
    try:
        amount = Decimal(raw.strip().removeprefix("¥"))
    except InvalidOperation:
        raise Problem(ErrorCode.VALIDATION, "amount: yuan, e.g. 12.50") from None
    cents = amount * 100
    if not amount.is_finite() or cents != cents.to_integral_value():
        raise Problem(ErrorCode.VALIDATION, "amount: yuan with at most two decimals")
    if not 1 <= cents <= MAX_AMOUNT_CENTS:
        raise Problem(ErrorCode.VALIDATION, f"amount: from ¥0.01 to {money(MAX_AMOUNT_CENTS)}")
    return int(cents)


@router.post("/after-sales/{case_id}/{action}")
async def case_action(
    request: Request,
    case_id: str,
    action: str,
    settings: SettingsDep,
    db: DatabaseDep,
    client: TemporalDep,
    version: Annotated[int, Form(ge=1, le=1_000_000)],
    reason: Text = "",
    amount: Annotated[str, Form(max_length=32)] = "",
    decision: Annotated[str, Form(max_length=16)] = "",
    csrf: Csrf = None,
) -> Response:
    plain = {a.value for a in cases_api.PlainAction}
    if action not in plain | {CaseAction.PROPOSE.value, CaseAction.RULE.value}:
        return _refused(request, Problem(ErrorCode.NOT_FOUND, f"no case action {action}"))

    async def do(op: Operator) -> object:
        async with db.sessions() as session:
            if action == CaseAction.PROPOSE:
                body = cases_api.ProposeBody(
                    version=version, reason=reason, amount_cents=_cents(amount)
                )
                return await cases_api.propose(case_id, body, op.user, client, db, session)
            if action == CaseAction.RULE:
                ruling = cases_api.RuleBody(version=version, decision=decision, note=reason)
                return await cases_api.rule(case_id, ruling, op.user, client, db, session)
            return await cases_api.plain_action(
                case_id,
                cases_api.PlainAction(action),
                cases_api.VersionBody(version=version, reason=reason),
                op.user,
                client,
                db,
                session,
            )

    async def again(op: Operator, problem: Problem) -> Response:
        return await _case_page(request, op, db, case_id, problem.status, problem.detail)

    roles = (Role.ADMIN,) if action == CaseAction.RULE else STAFF
    back = f"/console/after-sales/{case_id}"
    return await _act(request, settings, csrf, do, "case", back, again, roles)
