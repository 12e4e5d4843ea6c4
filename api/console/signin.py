"""Signing in and out of the console."""

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import decode, token_rules
from api.console import session as auth
from api.console import words
from api.console.pages import STAFF, Csrf, page, refused
from api.deps import SettingsDep
from api.errors import Problem
from domain.errors import ErrorCode
from runtime.settings import Settings

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("")
async def home() -> RedirectResponse:
    return RedirectResponse("/console/orders", 303)


def _back_to(raw: str | None) -> str:
    """Where to go after signing in: a console page, never elsewhere (no open redirect)."""
    if raw and raw.startswith("/console/") and "//" not in raw and "\\" not in raw:
        return raw
    return "/console/orders"


@router.get("/language/{lang}")
async def choose_language(
    request: Request, lang: str, back: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    """The header's switch: this browser reads the console in `lang` from now on."""
    if lang not in words.LANGS:
        return refused(request, Problem(ErrorCode.NOT_FOUND, f"no language {lang[:8]!r}"))
    response = RedirectResponse(_back_to(back), 303)
    response.set_cookie(
        words.LANG_COOKIE,
        lang,
        max_age=365 * 86_400,
        path=auth.PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _login_page(
    request: Request,
    settings: Settings,
    status: int = 200,
    error: str = "",
    back: str | None = None,
) -> HTMLResponse:
    token = auth.login_token(request)
    idle_hours = f"{settings.console_session_seconds / 3600:g}"
    response = page(
        request,
        "login.html",
        status,
        form_token=token,
        error=error,
        back=_back_to(back),
        idle_hours=idle_hours,
    )
    auth.keep_login_token(request, response, token)
    return response


Back = Annotated[str | None, Query(alias="next", max_length=500)]


@router.get("/login")
async def login_form(request: Request, settings: SettingsDep, back: Back = None) -> HTMLResponse:
    return _login_page(request, settings, back=back)


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
        user = decode(token.strip(), settings.jwt_secret, token_rules(settings))
        if user.role not in STAFF:
            raise Problem(
                ErrorCode.FORBIDDEN, f"the console is for merchants and admins, not a {user.role}"
            )
        auth.zone_of(zone)
    except Problem as problem:
        return _login_page(request, settings, problem.status, problem.detail, back)
    response = RedirectResponse(_back_to(back), 303)
    await auth.sign_in(request, response, user, token.strip(), zone)
    return response


@router.post("/logout")
async def logout(request: Request, settings: SettingsDep, csrf: Csrf = None) -> Response:
    try:
        auth.check_csrf(await auth.operator(request, settings), csrf)
    except Problem as problem:
        return refused(request, problem)
    response = RedirectResponse("/console/login", 303)
    await auth.sign_out(request, response)
    return response
