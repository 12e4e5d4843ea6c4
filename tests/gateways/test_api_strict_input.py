"""Numbers and texts that enter are what they say: `false` is not 0, `"100"` is not 100, an
amount is at most 10^12 cents, and a NUL or control character is no part of a name. Each is
a 422 naming the field, never a 500, and changes nothing."""

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from api.auth import Role, mint
from gateways.signing import SIGNATURE_HEADER, sign
from runtime.settings import Settings
from store.db import Database
from tests.store.helpers import add_sku

ADDRESS = {"name": "Li", "phone": "+86 1", "line1": "1 Rd", "city": "HZ", "country": "CN"}
SKU = {"title": "Tea", "price_cents": 100, "product_type": "SELF", "stock_policy": "LOCK_ON_ORDER"}


def as_(settings: Settings, role: Role, sub: str = "x-1") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(settings.jwt_secret, sub, role)}"}


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PUT", "/freight-rule", {"flat_cents": 0, "free_above_cents": 2**63}, "free_above_cents"),
        ("PUT", "/freight-rule", {"flat_cents": 0, "free_above_cents": False}, "free_above_cents"),
        ("PUT", "/freight-rule", {"flat_cents": "500"}, "flat_cents"),
        ("PUT", "/skus/TEA-1/stock/WH-A", {"on_hand": False}, "on_hand"),
        ("PUT", "/skus/TEA-1/stock/WH-A", {"on_hand": "5"}, "on_hand"),
        ("PUT", "/skus/TEA-1", SKU | {"listed": 0}, "listed"),
        ("PUT", "/skus/TEA-1", SKU | {"price_cents": True}, "price_cents"),
        ("PUT", "/skus/TEA-1", SKU | {"title": "Tea\x00"}, "title"),
        ("PUT", "/wallets/b-1/credit-limit", {"amount_cents": False}, "amount_cents"),
    ],
)
async def test_a_loose_or_huge_value_is_422_naming_its_field_and_changes_nothing(
    api: httpx.AsyncClient,
    settings: Settings,
    sqlite_db: Database,
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    admin = as_(settings, Role.ADMIN)
    await add_sku(sqlite_db, "TEA-1", stock_at={"WH-A": 7})
    before = (await api.get("/skus/TEA-1")).json(), (await api.get("/freight-rule")).json()
    answer = await api.request(method, path, json=body, headers=admin)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "VALIDATION" and field in answer.text
    assert (
        (await api.get("/skus/TEA-1")).json(),
        (await api.get("/freight-rule")).json(),
    ) == before


@pytest.mark.parametrize("field", ["name", "line1", "city"])
@pytest.mark.parametrize("bad", ["\x00", "\x07", "\x1b[31m"])
async def test_an_address_with_a_control_character_is_refused(
    api: httpx.AsyncClient, settings: Settings, sqlite_db: Database, field: str, bad: str
) -> None:
    await add_sku(sqlite_db, "TEA-1", stock_at={"WH-A": 7})
    cart = {"lines": [{"sku": "TEA-1", "quantity": 1}], "address": ADDRESS | {field: f"Li{bad}"}}
    answer = await api.post("/orders", json=cart, headers=as_(settings, Role.BUYER, "b-1"))
    assert answer.status_code == 422, answer.text
    assert field in answer.text and "control characters" in answer.text


# ---- signed callbacks: what the partner wrote, read one way only ---------------------------

PAYMENT = {
    "event_id": "evt-strict-1",
    "order_id": "o-1",
    "txn_id": "alipay-strict-1",
    "channel": "alipay",
    "amount_cents": 100,
    "paid_at": "2026-11-30T12:00:00+08:00",
}


async def signed(api: httpx.AsyncClient, settings: Settings, body: bytes) -> httpx.Response:
    header = sign(body, settings.payment_webhook_secret)
    return await api.post(
        "/webhooks/payments",
        content=body,
        headers={SIGNATURE_HEADER: header, "Content-Type": "application/json"},
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount_cents": "100"}, "amount_cents"),
        ({"amount_cents": 100.0}, "amount_cents"),
        ({"amount_cents": True}, "amount_cents"),
        ({"paid_at": 1764475200}, "paid_at"),
        ({"paid_at": "2026-11-30T12:00:00"}, "paid_at"),
        ({"event_id": 7}, "event_id"),
    ],
)
async def test_a_signed_callback_with_a_loose_value_is_refused(
    api: httpx.AsyncClient,
    settings: Settings,
    sqlite_db: Database,
    change: dict[str, Any],
    field: str,
) -> None:
    answer = await signed(api, settings, json.dumps(PAYMENT | change).encode())
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["detail"]
    assert await inbox_rows(sqlite_db) == 0


async def test_a_signed_callback_saying_a_key_twice_is_refused(
    api: httpx.AsyncClient, settings: Settings, sqlite_db: Database
) -> None:
    body = json.dumps(PAYMENT)[:-1] + ', "amount_cents": 999999}'  # which amount is it?
    answer = await signed(api, settings, body.encode())
    assert answer.status_code == 422, answer.text
    assert "a key given twice: amount_cents" in answer.json()["detail"]
    assert await inbox_rows(sqlite_db) == 0
    deep = await signed(api, settings, b"[" * 100_000)
    assert deep.status_code == 422, deep.text


async def inbox_rows(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(text("SELECT count(*) FROM webhook_events")) or 0)


@pytest.mark.parametrize("raw", ["0.5", "1764460800", "true", "30/11/2026"])
async def test_a_list_filter_takes_a_time_only_as_rfc_3339_text(
    api: httpx.AsyncClient, settings: Settings, raw: str
) -> None:
    r = await api.get(f"/orders?placed_to={raw}", headers=as_(settings, Role.ADMIN))
    assert (r.status_code, r.json()["code"]) == (422, "VALIDATION"), r.text
    assert "placed_to" in r.json()["detail"] and "RFC 3339" in r.json()["detail"]
    good = await api.get(
        "/orders?placed_to=2026-11-30T08:00:00%2B08:00", headers=as_(settings, Role.ADMIN)
    )
    assert good.status_code == 200, good.text


async def test_a_method_a_path_does_not_take_is_405_listing_all_it_does(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    """GET and PUT /freight-rule are two routes: the Allow header names both."""
    for path, allowed in (("/freight-rule", "GET, PUT"), ("/orders", "GET, POST")):
        r = await api.request("PATCH", path, headers=as_(settings, Role.ADMIN))
        assert (r.status_code, r.json()["code"]) == (405, "METHOD_NOT_ALLOWED")
        assert r.headers["allow"] == allowed
