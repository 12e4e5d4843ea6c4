"""The console's sign-in: a merchant's or an admin's token, pasted once, opens a server-side
session (a row in the database); the HttpOnly, SameSite=Strict cookie holds only an opaque
token naming it. Signing out ends the session, as does an admin's revocation, idleness
(`ORDERS_CONSOLE_SESSION_SECONDS`) and the expiry of the token it was opened with. A CSRF
token on every form is derived from the cookie; the operator's time zone has its own."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jwt
from fastapi import Request, Response

from api.auth import Role, User
from api.errors import Problem
from domain.errors import ErrorCode
from runtime.settings import Settings
from store import console_sessions, shops, worklist
from store.db import Database
from store.worklist import Waiting

PATH = "/console"
SESSION_COOKIE = "console_session"
ZONE_COOKIE = "console_zone"
LOGIN_COOKIE = "console_login"  # the sign-in form's own CSRF token (there is no session yet)
MAX_TOKEN_CHARS = 4096
MAX_ZONE_CHARS = 64
MAX_SESSION_CHARS = 64  # the cookie's opaque token (43 characters)


@dataclass(frozen=True)
class Operator:
    user: User
    zone: ZoneInfo
    csrf: str
    shop_name: str = ""  # a merchant's shop, shown in every page's header
    waiting: Waiting | None = None  # what waits on this operator: the navigation's counts
    unshipped_hours: int = 24

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


def _key(token: str) -> str:
    """The session's row id: the database never holds the cookie's token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


async def operator(request: Request, settings: Settings) -> Operator:
    """The signed-in operator, or 401 (no session, or one that ended: sign in again)."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token or len(token) > MAX_SESSION_CHARS:
        raise Problem(ErrorCode.UNAUTHENTICATED, "sign in to the console first")
    db: Database = request.app.state.db
    now, key = datetime.now(UTC), _key(token)
    async with db.sessions() as session:
        row = await console_sessions.live(
            session, key, now, timedelta(seconds=settings.console_session_seconds)
        )
        user = None if row is None else User(id=row.user_id, role=Role(row.role), shop=row.shop_id)
        shop = None
        if user is not None and user.only_shop is not None:
            shop = await shops.get(session, user.only_shop, settings.service_phone)
    if row is None or user is None:
        raise Problem(ErrorCode.UNAUTHENTICATED, "the console session ended: sign in again")
    if row.last_seen_at <= now - console_sessions.TOUCH_EVERY:
        async with db.transaction() as tx:
            await console_sessions.touch(tx, key, now)
    try:
        zone = zone_of(request.cookies.get(ZONE_COOKIE, "UTC"))
    except Problem:
        zone = ZoneInfo("UTC")
    csrf = csrf_for(settings.jwt_secret, token)
    return Operator(
        user=user,
        zone=zone,
        csrf=csrf,
        shop_name=shop.name if shop else "",
        unshipped_hours=settings.console_unshipped_hours,
    )


async def with_waiting(request: Request, op: Operator) -> Operator:
    """The operator with what waits on them, for a page's header (one statement): asked only
    for a page shown, not for an image, a download or a form that redirects."""
    db: Database = request.app.state.db
    cut_off = datetime.now(UTC) - timedelta(hours=op.unshipped_hours)
    async with db.sessions() as session:
        counts = await worklist.waiting(
            session, op.user.only_shop, cut_off, admin=op.user.role is Role.ADMIN
        )
    return replace(op, waiting=counts)


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


async def sign_in(request: Request, response: Response, user: User, bearer: str, zone: str) -> None:
    """A new session for `user`, living no longer than the token it was opened with."""
    expires = int(jwt.decode(bearer, options={"verify_signature": False}).get("exp", 0))
    now = datetime.now(UTC)
    token = secrets.token_urlsafe(32)
    db: Database = request.app.state.db
    async with db.transaction() as tx:
        await console_sessions.begin(
            tx,
            _key(token),
            user.id,
            user.role.value,
            user.shop,
            datetime.fromtimestamp(expires, UTC),
            now,
        )
    max_age = max(1, expires - int(now.timestamp()))
    _cookie(response, request, SESSION_COOKIE, token, max_age)
    _cookie(response, request, ZONE_COOKIE, zone, max_age)
    response.delete_cookie(LOGIN_COOKIE, path=PATH)


async def sign_out(request: Request, response: Response) -> None:
    token = request.cookies.get(SESSION_COOKIE, "")
    if token and len(token) <= MAX_SESSION_CHARS:
        db: Database = request.app.state.db
        async with db.transaction() as tx:
            await console_sessions.end(tx, _key(token), datetime.now(UTC))
    for name in (SESSION_COOKIE, ZONE_COOKIE):
        response.delete_cookie(name, path=PATH, httponly=True, samesite="strict")
