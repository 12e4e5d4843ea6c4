"""What every console page shares: templates, headers, the signed-in check, and how a
form's action is taken (who, CSRF, then the JSON API's own route function)."""

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.auth import Role
from api.console import session as auth
from api.console import words
from api.console.session import Operator
from api.deps import SettingsDep, require_role
from api.errors import Problem, as_problem
from domain.errors import ErrorCode
from domain.models import money
from runtime.settings import Settings
from store import shops
from store.db import Database

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["money"] = money
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
DONE = {  # what a finished action says on the page it returns to (words.ZH: in Chinese)
    "shipped": "Package shipped: the buyer sees its carrier and tracking number.",
    "agreed": "Refund request agreed: the money goes back and the goods are back on hand.",
    "refused": "Refund request refused: the buyer sees your reason.",
    "closed": "Order closed: its stock is free again.",
    "returned": "Return received: the goods are back on hand.",
    "retried": "Refund sent again through its channel.",
    "case-agree": "Agreed: refunded now if refund-only; otherwise the buyer sends the goods back.",
    "case-reject": "Rejected: the buyer sees your reason and may ask the platform to step in.",
    "case-propose": "Proposal sent: the buyer accepts or declines it.",
    "case-confirm-return": "Return received: the goods are back on hand.",
    "case-rule": "Ruling recorded: the case follows it.",
    "case-reship": "Replacement shipped: the case ends when the buyer receives it.",
    "case-convert-to-refund": "Refunded instead: the money goes back to the buyer.",
}
Text = Annotated[str, Form(max_length=500)]
Csrf = Annotated[str | None, Form(max_length=128)]
Filter = Annotated[str | None, Query(max_length=64)]


def page(
    request: Request, name: str, status: int = 200, op: Operator | None = None, **context: Any
) -> HTMLResponse:
    local = op.local if op else (lambda at: at.isoformat(timespec="seconds") if at else "-")
    lang = words.language(request)
    said: dict[str, Any] = {
        "op": op,
        "local": local,
        "lang": lang,
        "_": lambda phrase, **values: words.text(lang, phrase, **values),
        "label": lambda kind, value: words.label(lang, kind, value),
        "sentence": lambda e: words.sentence(lang, e.type, e.data, money),
        "actor": lambda a: words.actor_name(lang, a.kind, a.id),
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    }
    response = templates.TemplateResponse(request, name, {**said, **context}, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    response.headers["Content-Language"] = lang
    return response


def refused(request: Request, problem: Problem, op: Operator | None = None) -> HTMLResponse:
    signed = op is not None or auth.SESSION_COOKIE in request.cookies
    return page(request, "refused.html", problem.status, op, problem=problem, signed=signed)


KEPT_HEADERS = ("Retry-After", "Allow", "WWW-Authenticate")


def problem_page(request: Request, response: JSONResponse) -> Response:
    """Any refusal under /console (an unknown page, a form FastAPI refused before our code
    ran, Temporal away) as the console's own refusal page, with its status and headers."""
    try:
        body = json.loads(bytes(response.body))
        problem = Problem(body["code"], body["detail"], response.status_code)
    except (ValueError, KeyError, TypeError):
        return response
    html = refused(request, problem)
    for name in KEPT_HEADERS:
        if name in response.headers:
            html.headers[name] = response.headers[name]
    return html


async def staff(request: Request, settings: Settings, roles: tuple[Role, ...] = STAFF) -> Operator:
    op = await auth.operator(request, settings)
    require_role(op.user, *roles)
    return op


async def signed_in(
    request: Request,
    settings: Settings,
    show: Callable[[Operator], Awaitable[Response]],
    *,
    counts: bool = True,
) -> Response:
    """A page for staff, with the header's counts (`counts=False`: a file, an image, which
    have no header): no session goes to the sign-in page; a refusal is shown."""
    try:
        op = await staff(request, settings)
        return await show(await auth.with_waiting(request, op) if counts else op)
    except Problem as problem:
        if problem.status == 401:  # sign in, then come back here
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/console/login?{urlencode({'next': here})}", 303)
        return refused(request, problem)


def choice(name: str, raw: str | None, kind: Any) -> Any:
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        allowed = ", ".join(k.value for k in kind)
        raise Problem(ErrorCode.VALIDATION, f"{name}: one of {allowed}") from None


async def act(
    request: Request,
    settings: SettingsDep,
    csrf: str | None,
    do: Callable[[Operator], Awaitable[object]],
    done: str,
    back: str,
    again: Callable[[Operator, Problem], Awaitable[Response]],
    roles: tuple[Role, ...] = STAFF,
) -> Response:
    """One form's action: success returns to the page (303), a refusal shows the page with
    the API's message."""

    async def returned(op: Operator) -> Response:
        return RedirectResponse(f"{back}?done={done}", 303)

    async def shown_again(op: Operator, refusal: Problem) -> Response:
        try:
            return await again(op, refusal)
        except Problem as unseen:  # the page itself is not there (an unknown order)
            return refused(request, unseen, op)

    return await act_page(request, settings, csrf, do, returned, shown_again, roles)


async def act_page(
    request: Request,
    settings: SettingsDep,
    csrf: str | None,
    do: Callable[[Operator], Awaitable[object]],
    done: Callable[[Operator], Awaitable[Response]],
    again: Callable[[Operator, Problem], Awaitable[Response]],
    roles: tuple[Role, ...] = STAFF,
) -> Response:
    """A form's action: who (401/403), the CSRF token (403), then the API's own code path;
    `done` answers its success, `again` its refusal (with the API's message)."""
    try:
        op = await staff(request, settings, roles)
        auth.check_csrf(op, csrf)
    except Problem as problem:
        return refused(request, problem)
    try:
        await do(op)
    except Exception as err:
        refusal = as_problem(err)
        if refusal is None:
            raise
        return await again(await auth.with_waiting(request, op), refusal)
    return await done(op)


async def shop_names(db: Database, op: Operator) -> dict[str, str]:
    """Every shop's name, for an admin's shop filter; nothing for a merchant (its own only)."""
    if op.user.only_shop is not None:
        return {}
    async with db.sessions() as session:
        return await shops.names(session)
