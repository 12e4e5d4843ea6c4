"""The console's sign-in over HTTP, without Temporal (signing in needs only the database,
where its session is kept): the cookies it sets, and what it refuses."""

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from api.app import create_app
from api.auth import Role, mint
from store.db import Database
from store.tables import ConsoleSessionRow
from tests.conftest import test_settings as settings_for

SECRET = "unit-console-secret-0123456789abcdef"


@pytest.fixture
async def browser(sqlite_db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(jwt_secret=SECRET))
    app.state.settings = settings_for(jwt_secret=SECRET)  # what the lifespan would set
    app.state.db = sqlite_db
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://shop.test") as client:
        yield client


async def _form_token(browser: httpx.AsyncClient) -> str:
    page = await browser.get("/console/login")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert page.status_code == 200 and found
    return found.group(1)


async def test_over_https_the_session_cookie_is_secure_httponly_and_strict(
    browser: httpx.AsyncClient,
) -> None:
    csrf = await _form_token(browser)
    token = mint(SECRET, "m-1", Role.MERCHANT)
    answer = await browser.post(
        "/console/login", data={"token": token, "zone": "Asia/Shanghai", "csrf": csrf}
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/console/orders")
    session = next(c for c in answer.headers.get_list("set-cookie") if "console_session=" in c)
    flags = {f.strip().lower() for f in session.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/console"} <= flags
    assert token not in session  # the cookie names a session; it is not the token


@pytest.mark.parametrize(
    ("fields", "status", "reason"),
    [
        ({"token": "not-a-jwt"}, 401, "invalid token"),
        ({"token": mint("another-secret-0123456789abcdef01", "m", Role.MERCHANT)}, 401, "invalid"),
        ({"token": mint(SECRET, "b-1", Role.BUYER)}, 403, "not a buyer"),
        ({"token": mint(SECRET, "m-1", Role.MERCHANT), "zone": "Mars/Olympus"}, 422, "zone"),
        ({"token": mint(SECRET, "m-1", Role.MERCHANT), "zone": "../../etc/passwd"}, 422, "zone"),
        ({"token": mint(SECRET, "m-1", Role.MERCHANT), "csrf": "forged"}, 403, "CSRF"),
    ],
)
async def test_a_bad_sign_in_is_refused_with_its_reason_and_sets_no_session(
    browser: httpx.AsyncClient,
    sqlite_db: Database,
    fields: dict[str, str],
    status: int,
    reason: str,
) -> None:
    data = {"zone": "UTC", "csrf": await _form_token(browser), **fields}
    answer = await browser.post("/console/login", data=data)
    assert answer.status_code == status
    assert reason in answer.text
    assert not [c for c in answer.headers.get_list("set-cookie") if "console_session=" in c]
    async with sqlite_db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ConsoleSessionRow)) == 0
