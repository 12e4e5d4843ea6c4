"""The console's sign-in: a merchant's or an admin's token, pasted once and kept in an
HttpOnly, SameSite=Strict cookie; a CSRF token on every form, derived from that cookie; and
the operator's time zone."""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jwt
from fastapi import Request, Response

from api.auth import User, decode
from api.errors import Problem
from domain.errors import ErrorCode

PATH = "/console"
SESSION_COOKIE = "console_session"
ZONE_COOKIE = "console_zone"
LOGIN_COOKIE = "console_login"  # the sign-in form's own CSRF token (there is no session yet)
MAX_TOKEN_CHARS = 4096
MAX_ZONE_CHARS = 64


@dataclass(frozen=True)
class Operator:
    user: User
    zone: ZoneInfo
    csrf: str

    def local(self, at: datetime | None) -> str:
        return at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def zone_of(name: str) -> ZoneInfo:
    if not name or len(name) > MAX_ZONE_CHARS or ".." in name or name.startswith("/"):
        raise Problem(ErrorCode.VALIDATION, f"zone: {name[:MAX_ZONE_CHARS]!r} is not a time zone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Problem(
            ErrorCode.VALIDATION, f"zone: {name!r} is not a time zone (e.g. Asia/Shanghai, UTC)"
        ) from None


def csrf_for(secret: str, token: str) -> str:
    return hmac.new(
        secret.encode(), b"console-csrf\x00" + token.encode(), hashlib.sha256
    ).hexdigest()


def operator(request: Request, secret: str) -> Operator:
    """The signed-in operator, or 401 (no or a bad session: sign in again)."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise Problem(ErrorCode.UNAUTHENTICATED, "sign in to the console first")
    user = decode(token, secret)
    try:
        zone = zone_of(request.cookies.get(ZONE_COOKIE, "UTC"))
    except Problem:
        zone = ZoneInfo("UTC")
    return Operator(user=user, zone=zone, csrf=csrf_for(secret, token))


def check_csrf(op: Operator, sent: str | None) -> None:
    if not sent:
        raise Problem(ErrorCode.FORBIDDEN, "the form carries no CSRF token: reload the page")
    if not hmac.compare_digest(sent.encode(), op.csrf.encode()):
        raise Problem(ErrorCode.FORBIDDEN, "the form's CSRF token is not this session's: reload")


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def login_token(request: Request) -> str:
    """The sign-in form's CSRF token: the one its cookie keeps, or a new one."""
    kept = request.cookies.get(LOGIN_COOKIE, "")
    return kept if 16 <= len(kept) <= 64 else secrets.token_urlsafe(24)


def keep_login_token(request: Request, response: Response, token: str) -> None:
    _cookie(response, request, LOGIN_COOKIE, token, 3600)


def check_login_token(request: Request, sent: str | None) -> None:
    kept = request.cookies.get(LOGIN_COOKIE, "")
    if not sent or not kept or not hmac.compare_digest(sent.encode(), kept.encode()):
        raise Problem(ErrorCode.FORBIDDEN, "the sign-in form's CSRF token is missing: reload it")


def sign_in(request: Request, response: Response, token: str, zone: str) -> None:
    expires = jwt.decode(token, options={"verify_signature": False}).get("exp", 0)
    max_age = max(1, int(expires) - int(time.time()))
    _cookie(response, request, SESSION_COOKIE, token, max_age)
    _cookie(response, request, ZONE_COOKIE, zone, max_age)
    response.delete_cookie(LOGIN_COOKIE, path=PATH)


def sign_out(response: Response) -> None:
    for name in (SESSION_COOKIE, ZONE_COOKIE):
        response.delete_cookie(name, path=PATH, httponly=True, samesite="strict")
