"""Every class of bad request gets its exact status and code, and changes nothing: not the
order, not the stock, not the wallet, and not the workflow's history."""

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest

from api.auth import Role, mint
from gateways.signing import SIGNATURE_HEADER, sign
from sandboxes.carrier import send_carrier_event
from sandboxes.signed import encode_json
from tests.e2e.harness import ADDRESS, Json, Stack, User, expect_problem, ok, uid

pytestmark = pytest.mark.e2e


async def _refused(
    stack: Stack,
    user: User,
    order_id: str,
    path: str,
    body: Json | None,
    status: int,
    code: str,
    *,
    by_validator: bool = True,
) -> Json:
    """POST `path` as `user`, expect a problem answer, and check the order did not move.

    A refusal by the API or by an update's validator leaves no trace in the workflow's
    history either; one found only by an activity (no funds) records the failed update."""
    before = await stack.order(stack.merchant, order_id)
    history = await stack.history_length(order_id)
    answer = expect_problem(await stack.act(user, path, body), status, code)
    assert await stack.order(stack.merchant, order_id) == before
    if by_validator:
        assert await stack.history_length(order_id) == history
    return answer


# ---- request schema -------------------------------------------------------------------------


def _cart(sku: str, quantity: Any = 1) -> Json:
    return {"lines": [{"sku": sku, "quantity": quantity}], "address": ADDRESS}


BAD_BODIES: dict[str, Callable[[str], Any]] = {
    "quantity zero": lambda sku: _cart(sku, 0),
    "quantity negative": lambda sku: _cart(sku, -1),
    "quantity 100000": lambda sku: _cart(sku, 100_000),
    "quantity not a number": lambda sku: _cart(sku, "two"),
    "quantity fractional": lambda sku: _cart(sku, 1.5),
    "no lines": lambda sku: {"lines": [], "address": ADDRESS},
    "too many lines": lambda sku: {
        "lines": [{"sku": sku, "quantity": 1}] * 51,
        "address": ADDRESS,
    },
    "missing address": lambda sku: {"lines": [{"sku": sku, "quantity": 1}]},
    "bad country": lambda sku: {**_cart(sku), "address": {**ADDRESS, "country": "China"}},
    "lower-case country": lambda sku: {**_cart(sku), "address": {**ADDRESS, "country": "cn"}},
    "bad phone": lambda sku: {**_cart(sku), "address": {**ADDRESS, "phone": "call me"}},
    "malformed sku": lambda sku: _cart("../" + sku),
    "not an object": lambda sku: [sku],
}


@pytest.mark.parametrize("case", BAD_BODIES)
async def test_a_malformed_order_is_refused_with_422(stack: Stack, case: str) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5})
    body = expect_problem(
        await stack.http.post("/orders", json=BAD_BODIES[case](sku), headers=buyer.headers),
        422,
        "VALIDATION",
    )
    assert body["errors"], body
    assert await stack.stock(sku) == {"WH-A": (5, 0)}
    assert ok(await stack.http.get("/orders", headers=buyer.headers))["items"] == []


async def test_invalid_json_and_a_bad_idempotency_key_are_refused(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5})
    headers = {**buyer.headers, "Content-Type": "application/json"}
    expect_problem(
        await stack.http.post("/orders", content=b"{", headers=headers), 422, "VALIDATION"
    )
    expect_problem(
        await stack.http.post(
            "/orders", json=_cart(sku), headers={**buyer.headers, "Idempotency-Key": "x" * 129}
        ),
        422,
        "VALIDATION",
    )
    assert await stack.stock(sku) == {"WH-A": (5, 0)}
    assert ok(await stack.http.get("/orders", headers=buyer.headers))["items"] == []


async def test_a_payment_channel_the_route_does_not_take_is_refused(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5})
    order = await stack.placed(buyer, [(sku, 1)])
    await stack.top_up(buyer, 100_000)
    base = f"/orders/{order['id']}"
    for path, channel in [
        (f"{base}/pay", "bitcoin"),
        (f"{base}/pay", "alipay"),  # gateway channels go through a payment intent
        (f"{base}/payment-intents", "bitcoin"),
        (f"{base}/payment-intents", "balance"),
    ]:
        await _refused(stack, buyer, order["id"], path, {"channel": channel}, 422, "VALIDATION")
    await _refused(stack, buyer, order["id"], f"{base}/pay", {}, 422, "VALIDATION")
    assert (await stack.wallet(buyer))["balance_cents"] == 100_000


async def test_an_oversized_body_is_refused_with_413(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5})
    limit = stack.settings.max_body_bytes
    huge = json.dumps({**_cart(sku), "padding": "x" * limit}).encode()
    assert len(huge) > limit
    headers = {**buyer.headers, "Content-Type": "application/json"}

    # with Content-Length
    expect_problem(
        await stack.http.post("/orders", content=huge, headers=headers), 413, "PAYLOAD_TOO_LARGE"
    )

    # chunked, without Content-Length: counted as it streams
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(huge), 8192):
            yield huge[start : start + 8192]

    answer = await stack.http.post("/orders", content=chunks(), headers=headers)
    expect_problem(answer, 413, "PAYLOAD_TOO_LARGE")
    assert await stack.stock(sku) == {"WH-A": (5, 0)}
    assert ok(await stack.http.get("/orders", headers=buyer.headers))["items"] == []


# ---- transitions the order's state does not allow ------------------------------------------


async def test_transitions_the_state_does_not_allow_are_refused_and_write_no_history(
    stack: Stack,
) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5})
    order = await stack.placed(buyer, [(sku, 1)])
    oid, base = order["id"], f"/orders/{order['id']}"
    ship = {"carrier": "SF", "tracking_no": uid("SF")}

    # unpaid
    await _refused(
        stack, stack.merchant, oid, f"{base}/packages/{oid}-1/ship", ship, 409, "INVALID_TRANSITION"
    )
    await _refused(stack, buyer, oid, f"{base}/confirm-receipt", None, 409, "INVALID_TRANSITION")
    await _refused(stack, buyer, oid, f"{base}/extend-receipt", None, 409, "INVALID_TRANSITION")
    await stack.top_up(buyer, order["total_cents"] - 1)
    await _refused(
        stack,
        buyer,
        oid,
        f"{base}/pay",
        {"channel": "balance"},
        409,
        "INSUFFICIENT_FUNDS",
        by_validator=False,
    )
    assert (await stack.wallet(buyer))["balance_cents"] == order["total_cents"] - 1
    await stack.top_up(buyer, 1)

    # paid, not shipped
    paid = ok(await stack.act(buyer, f"{base}/pay", {"channel": "balance"}))
    assert (await stack.wallet(buyer))["balance_cents"] == 0
    await stack.top_up(buyer, order["total_cents"])
    for channel in ("balance", "credit"):
        await _refused(
            stack, buyer, oid, f"{base}/pay", {"channel": channel}, 409, "INVALID_TRANSITION"
        )
    assert (await stack.wallet(buyer))["balance_cents"] == order["total_cents"]  # charged once
    await _refused(stack, buyer, oid, f"{base}/confirm-receipt", None, 409, "INVALID_TRANSITION")
    await _refused(stack, stack.merchant, oid, f"{base}/close", None, 409, "INVALID_TRANSITION")
    expect_problem(
        await stack.act(buyer, f"{base}/payment-intents", {"channel": "alipay"}),
        409,
        "INVALID_TRANSITION",
    )
    package = paid["packages"][0]["id"]
    await _refused(
        stack, stack.merchant, oid, f"{base}/packages/{oid}-9/ship", ship, 409, "INVALID_TRANSITION"
    )
    await _refused(
        stack, stack.merchant, oid, f"{base}/packages/{package}/ship", {}, 409, "INVALID_TRANSITION"
    )

    # shipped
    ok(await stack.act(stack.merchant, f"{base}/packages/{package}/ship", ship))
    await _refused(
        stack,
        stack.merchant,
        oid,
        f"{base}/packages/{package}/ship",
        ship,
        409,
        "INVALID_TRANSITION",
    )
    await _refused(stack, buyer, oid, f"{base}/cancel", None, 409, "INVALID_TRANSITION")
    await _refused(
        stack,
        buyer,
        oid,
        f"{base}/confirm-receipt",
        {"package_ids": [f"{oid}-9"]},
        409,
        "INVALID_TRANSITION",
    )
    extended = ok(await stack.act(buyer, f"{base}/extend-receipt"))
    assert extended["receipt_extended"] is True
    await _refused(stack, buyer, oid, f"{base}/extend-receipt", None, 409, "INVALID_TRANSITION")

    # a tracking number already used by another package
    other = await stack.paid(stack.buyer(), [(sku, 1)])
    await _refused(
        stack,
        stack.merchant,
        other["id"],
        f"/orders/{other['id']}/packages/{other['packages'][0]['id']}/ship",
        ship,
        409,
        "INVALID_TRANSITION",
        by_validator=False,  # only the database knows: the save activity refuses it
    )


# ---- who may see and do what ---------------------------------------------------------------


async def test_unknown_orders_are_not_found(stack: Stack) -> None:
    buyer = stack.buyer()
    missing = uuid.uuid4().hex[:20]
    for user in (buyer, stack.merchant, stack.admin):
        expect_problem(
            await stack.http.get(f"/orders/{missing}", headers=user.headers), 404, "NOT_FOUND"
        )
        expect_problem(
            await stack.http.get(f"/orders/{missing}/events", headers=user.headers),
            404,
            "NOT_FOUND",
        )
    for user, action, body in [
        (buyer, "cancel", None),
        (buyer, "pay", {"channel": "balance"}),
        (buyer, "payment-intents", {"channel": "alipay"}),
        (buyer, "confirm-receipt", None),
        (stack.merchant, "close", None),
        (stack.merchant, f"packages/{missing}-1/ship", {"carrier": "SF", "tracking_no": "X1"}),
    ]:
        expect_problem(await stack.act(user, f"/orders/{missing}/{action}", body), 404, "NOT_FOUND")


async def test_another_buyers_order_is_not_found(stack: Stack) -> None:
    owner, stranger = stack.buyer(), stack.buyer()
    sku = await stack.put_sku({"WH-A": 5})
    order = await stack.placed(owner, [(sku, 1)])
    oid, base = order["id"], f"/orders/{order['id']}"
    await stack.top_up(stranger, 100_000)

    expect_problem(await stack.http.get(base, headers=stranger.headers), 404, "NOT_FOUND")
    expect_problem(
        await stack.http.get(f"{base}/events", headers=stranger.headers), 404, "NOT_FOUND"
    )
    await _refused(stack, stranger, oid, f"{base}/cancel", None, 404, "NOT_FOUND")
    await _refused(stack, stranger, oid, f"{base}/pay", {"channel": "balance"}, 404, "NOT_FOUND")
    await _refused(
        stack, stranger, oid, f"{base}/payment-intents", {"channel": "alipay"}, 404, "NOT_FOUND"
    )
    assert (await stack.wallet(stranger))["balance_cents"] == 100_000
    expect_problem(
        await stack.http.get(f"/wallets/{owner.id}", headers=stranger.headers), 404, "NOT_FOUND"
    )
    assert await stack.stock(sku) == {"WH-A": (5, 1)}


async def test_the_wrong_role_is_forbidden(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5}, price_cents=700)
    order = await stack.paid(buyer, [(sku, 1)])
    oid, base = order["id"], f"/orders/{order['id']}"
    package = order["packages"][0]["id"]
    ship = {"carrier": "SF", "tracking_no": uid("SF")}

    await _refused(stack, buyer, oid, f"{base}/packages/{package}/ship", ship, 403, "FORBIDDEN")
    await _refused(
        stack, stack.merchant, oid, f"{base}/pay", {"channel": "balance"}, 403, "FORBIDDEN"
    )
    await _refused(stack, stack.merchant, oid, f"{base}/confirm-receipt", None, 403, "FORBIDDEN")
    await _refused(stack, buyer, oid, f"{base}/close", None, 403, "FORBIDDEN")

    wallet = await stack.wallet(buyer)
    for user in (buyer, stack.merchant):
        expect_problem(
            await stack.act(user, f"/wallets/{buyer.id}/top-up", {"amount_cents": 1_000}),
            403,
            "FORBIDDEN",
        )
        expect_problem(
            await stack.http.put(
                f"/wallets/{buyer.id}/credit-limit",
                json={"amount_cents": 1_000},
                headers=user.headers,
            ),
            403,
            "FORBIDDEN",
        )
    assert await stack.wallet(buyer) == wallet

    catalog_before = await stack.sku(sku)
    sku_body = {
        "title": "hijacked",
        "price_cents": 1,
        "product_type": "SELF",
        "stock_policy": "LOCK_ON_ORDER",
    }
    expect_problem(
        await stack.http.put(f"/skus/{sku}", json=sku_body, headers=buyer.headers), 403, "FORBIDDEN"
    )
    expect_problem(
        await stack.http.put(
            f"/skus/{sku}/stock/WH-A", json={"on_hand": 99}, headers=buyer.headers
        ),
        403,
        "FORBIDDEN",
    )
    rule = {"flat_cents": 0, "free_above_cents": None, "policy": "SPLIT"}
    expect_problem(
        await stack.http.put("/freight-rule", json=rule, headers=buyer.headers), 403, "FORBIDDEN"
    )
    assert await stack.sku(sku) == catalog_before
    assert ok(await stack.http.get("/freight-rule"))["flat_cents"] != 0
    expect_problem(
        await stack.http.post("/orders", json=_cart(sku), headers=stack.merchant.headers),
        403,
        "FORBIDDEN",
    )
    assert await stack.stock(sku) == {"WH-A": (4, 0)}


async def test_a_missing_expired_or_forged_token_is_unauthenticated(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5})
    order = await stack.placed(buyer, [(sku, 1)])
    secret = stack.settings.jwt_secret
    now = int(time.time())
    tokens = {
        "no token": None,
        "not bearer": f"Basic {buyer.token}",
        "bearer without token": "Bearer",
        "garbage": "Bearer not-a-jwt",
        "expired": f"Bearer {mint(secret, buyer.id, Role.BUYER, ttl_seconds=-60)}",
        "31 years": f"Bearer {mint(secret, buyer.id, Role.BUYER, ttl_seconds=31 * 365 * 86_400)}",
        "wrong secret": f"Bearer {mint('another-secret-0123456789abcdef-0', buyer.id, Role.BUYER)}",
        "no exp": "Bearer " + jwt.encode({"sub": buyer.id, "role": "buyer"}, secret, "HS256"),
        "unknown role": "Bearer "
        + jwt.encode({"sub": buyer.id, "role": "root", "exp": now + 60}, secret, "HS256"),
        "alg none": "Bearer "
        + jwt.encode({"sub": buyer.id, "role": "admin", "exp": now + 60}, None, "none"),
    }
    for name, header in tokens.items():
        headers = {} if header is None else {"Authorization": header}
        for request in (
            stack.http.build_request("GET", f"/orders/{order['id']}", headers=headers),
            stack.http.build_request("GET", "/orders", headers=headers),
            stack.http.build_request(
                "POST", f"/orders/{order['id']}/cancel", json={}, headers=headers
            ),
            stack.http.build_request("POST", "/orders", json=_cart(sku), headers=headers),
        ):
            answer = await stack.http.send(request)
            expect_problem(answer, 401, "UNAUTHENTICATED")
            assert answer.headers["www-authenticate"] == "Bearer", name
    assert await stack.order(buyer, order["id"]) == order
    assert await stack.stock(sku) == {"WH-A": (5, 1)}


# ---- partner callbacks ----------------------------------------------------------------------


async def _post_raw(stack: Stack, path: str, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    return await stack.http.post(path, content=body, headers=headers)


async def test_payment_callbacks_must_be_signed_fresh_and_new(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5})
    order = await stack.placed(buyer, [(sku, 1)])
    secret = stack.settings.payment_webhook_secret
    payload = {
        "event_id": uid("evt"),
        "order_id": order["id"],
        "txn_id": uid("alipay"),
        "channel": "alipay",
        "amount_cents": order["total_cents"],
        "paid_at": datetime.now(UTC).isoformat(),
    }
    body = encode_json(payload)
    stale = int(time.time()) - 360  # the limit is 5 minutes
    tampered = encode_json({**payload, "amount_cents": 1})

    history = await stack.history_length(order["id"])
    for signature, sent in [
        (None, body),
        ("", body),
        ("t=1,v1=", body),
        (sign(body, "not-the-secret"), body),
        (sign(body, stack.settings.carrier_webhook_secret), body),  # another partner's secret
        (sign(body, secret, timestamp=stale), body),
        (sign(body, secret, timestamp=int(time.time()) + 360), body),
        (sign(body, secret), tampered),
    ]:
        answer = await _post_raw(stack, "/webhooks/payments", sent, signature)
        expect_problem(answer, 401, "UNAUTHENTICATED")
    assert await stack.history_length(order["id"]) == history  # no signal reached the order
    assert await stack.order(buyer, order["id"]) == order

    signature = sign(body, secret)
    assert ok(await _post_raw(stack, "/webhooks/payments", body, signature)) == {
        "status": "forwarded",
        "detail": "recorded and passed on to the order",
    }
    paid = await stack.wait_order(
        buyer, order["id"], lambda o: o["status"] != "PENDING_PAYMENT", "the signed payment"
    )
    assert paid["payment"]["txn_id"] == payload["txn_id"]
    shipped = await stack.ship(paid)  # an update: handled after the payment's signal

    history = await stack.history_length(order["id"])
    # a gateway retries what it was not answered 2xx: a second delivery is a 2xx, no effect
    replay = await _post_raw(stack, "/webhooks/payments", body, signature)
    assert ok(replay)["status"] == "duplicate"
    resigned = await _post_raw(stack, "/webhooks/payments", body, sign(body, secret))
    assert ok(resigned)["status"] == "duplicate"
    assert await stack.history_length(order["id"]) == history
    assert await stack.order(buyer, order["id"]) == shipped

    # signed, but not a payment callback
    junk = encode_json({**payload, "event_id": uid("evt"), "channel": "bitcoin"})
    expect_problem(
        await _post_raw(stack, "/webhooks/payments", junk, sign(junk, secret)), 422, "VALIDATION"
    )
    # signed, but a time with no zone, or one that cannot be expressed in UTC
    for when in ("2026-01-01T00:00:00", "0001-01-01T00:00:00+08:00", "9999-12-31T23:00:00-08:00"):
        odd = encode_json({**payload, "event_id": uid("evt"), "paid_at": when})
        answer = await _post_raw(stack, "/webhooks/payments", odd, sign(odd, secret))
        assert "paid_at" in expect_problem(answer, 422, "VALIDATION")["detail"], when
    assert await stack.order(buyer, order["id"]) == shipped


async def test_carrier_callbacks_must_be_signed_and_new(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5})
    order = await stack.paid(buyer, [(sku, 1)])
    shipped = await stack.ship(order)
    package = shipped["packages"][0]
    url = f"{stack.base_url}/webhooks/carriers"
    secret = stack.settings.carrier_webhook_secret
    event: dict[str, Any] = {
        "carrier": package["carrier"],
        "tracking_no": package["tracking_no"],
        "event": "DELIVERED",
    }

    history = await stack.history_length(order["id"])
    for wrong in ("not-the-secret", stack.settings.payment_webhook_secret):
        expect_problem(await send_carrier_event(url, wrong, **event), 401, "UNAUTHENTICATED")
    body = encode_json({**event, "event_id": uid("evt"), "at": datetime.now(UTC).isoformat()})
    expect_problem(await _post_raw(stack, "/webhooks/carriers", body, None), 401, "UNAUTHENTICATED")
    stale = sign(body, secret, timestamp=int(time.time()) - 360)
    expect_problem(
        await _post_raw(stack, "/webhooks/carriers", body, stale), 401, "UNAUTHENTICATED"
    )
    expect_problem(
        await send_carrier_event(url, secret, **{**event, "tracking_no": uid("SF")}),
        404,
        "NOT_FOUND",
    )
    assert await stack.history_length(order["id"]) == history
    assert await stack.order(buyer, order["id"]) == shipped

    in_transit = {**event, "event": "IN_TRANSIT", "event_id": uid("evt"), "at": datetime.now(UTC)}
    assert ok(await send_carrier_event(url, secret, **in_transit))["status"] == "forwarded"
    assert ok(await send_carrier_event(url, secret, **in_transit))["status"] == "duplicate"
    # the same event id saying something else is not a replay: refused, kept for operators
    reused = await send_carrier_event(url, secret, **{**in_transit, "event": "DELIVERED"})
    expect_problem(reused, 409, "EVENT_ID_REUSED")
    assert await stack.signals(order["id"]) == ["carrier_event"]  # not signalled twice
    assert (await stack.order(buyer, order["id"]))["packages"][0]["status"] == "SHIPPED"


# ---- listing ---------------------------------------------------------------------------------


def _cursor(at: str, order_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at, order_id]).encode()).decode().rstrip("=")


async def test_listing_shows_a_buyer_their_own_orders_page_by_page(stack: Stack) -> None:
    buyer, other = stack.buyer(), stack.buyer()
    sku = await stack.put_sku({"WH-A": 10})
    mine = [(await stack.placed(buyer, [(sku, 1)]))["id"] for _ in range(3)]
    theirs = (await stack.placed(other, [(sku, 1)]))["id"]
    ok(await stack.act(buyer, f"/orders/{mine[1]}/cancel"))

    listed = ok(await stack.http.get("/orders", headers=buyer.headers))
    assert [o["id"] for o in listed["items"]] == mine[::-1]  # newest first
    assert {o["buyer_id"] for o in listed["items"]} == {buyer.id}
    assert listed["next_cursor"] is None
    own = ok(await stack.http.get("/orders", params={"buyer_id": buyer.id}, headers=buyer.headers))
    assert own == listed
    expect_problem(
        await stack.http.get("/orders", params={"buyer_id": other.id}, headers=buyer.headers),
        403,
        "FORBIDDEN",
    )
    closed = ok(await stack.http.get("/orders", params={"status": "CLOSED"}, headers=buyer.headers))
    assert [o["id"] for o in closed["items"]] == [mine[1]]

    async def walk(user: User, **params: Any) -> list[str]:
        seen: list[str] = []
        cursor: str | None = None
        while True:
            query = {**params, "limit": 1} | ({"cursor": cursor} if cursor else {})
            page = ok(await stack.http.get("/orders", params=query, headers=user.headers))
            assert len(page["items"]) == 1, page
            seen += [o["id"] for o in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return seen
            assert len(seen) <= 10, seen

    assert await walk(buyer) == mine[::-1]
    assert await walk(stack.merchant, buyer_id=buyer.id) == mine[::-1]
    assert await walk(stack.admin, buyer_id=other.id) == [theirs]


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor!"},
        {"cursor": _cursor("yesterday", "x")},
        {"cursor": base64.urlsafe_b64encode(b'{"a": 1}').decode()},
        {"cursor": _cursor("2026-01-01T00:00:00", "x")},  # naive time: refused, not a 500
        {"limit": 0},
        {"limit": 101},
        {"status": "LOST"},
    ],
)
async def test_a_bad_listing_query_is_refused(stack: Stack, params: Json) -> None:
    answer = await stack.http.get("/orders", params=params, headers=stack.buyer().headers)
    expect_problem(answer, 422, "VALIDATION")
