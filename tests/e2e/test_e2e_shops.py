"""Many shops on one platform: an admin opens a shop, its merchant's token names it, and the
merchant sees and acts on its own shop's SKUs, orders, refund requests and cases only. Another
shop's are 404 to it (a PUT on another shop's SKU is 403), as they are to a foreign buyer;
admins see every shop and filter by one."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from urllib.parse import quote

import httpx
import pytest

from api.app import create_app
from domain.messages import ReconcileInput, ReconcileResult
from tests.e2e.harness import ADDRESS, Json, Stack, User, expect_problem, ok, uid
from tests.e2e.test_e2e_after_sales import api_with, case_act, form, open_case
from workflows import ids
from workflows.reconcile import ReconcileWorkflow

pytestmark = pytest.mark.e2e


async def test_an_admin_opens_shops_and_anyone_reads_them(stack: Stack) -> None:
    shop_id = uid("shop")
    body = {"id": shop_id, "name": "茶叶铺 Tea House", "service_phone": "400-820-8820"}
    path = "/admin/shops"
    assert ok(await stack.http.post(path, json=body, headers=stack.admin.headers), 201) == body
    # the same again answers the shop; another shop under its id is refused, naming it
    assert ok(await stack.http.post(path, json=body, headers=stack.admin.headers), 201) == body
    other = body | {"name": "Another"}
    problem = expect_problem(
        await stack.http.post(path, json=other, headers=stack.admin.headers), 409, "SHOP_EXISTS"
    )
    assert shop_id in problem["detail"]
    assert ok(await stack.http.get(f"/shops/{shop_id}")) == body  # anyone, no token

    for who in (stack.merchant, stack.buyer()):
        expect_problem(
            await stack.http.post(path, json=body | {"id": uid("shop")}, headers=who.headers),
            403,
            "FORBIDDEN",
        )
    for bad in ({"id": "Upper Case"}, {"service_phone": "call us"}, {"name": ""}):
        fresh = body | {"id": uid("shop")} | bad
        problem = expect_problem(
            await stack.http.post(path, json=fresh, headers=stack.admin.headers), 422, "VALIDATION"
        )
        assert next(iter(bad)) in problem["detail"]
        if "id" not in bad:
            expect_problem(await stack.http.get(f"/shops/{fresh['id']}"), 404, "NOT_FOUND")

    default = ok(await stack.http.get("/shops/default"))
    assert default["service_phone"] == stack.settings.service_phone
    expect_problem(await stack.http.get(f"/shops/{uid('shop')}"), 404, "NOT_FOUND")


async def test_a_shops_skus_stock_and_freight_rule_are_its_own(stack: Stack) -> None:
    shop_a, merchant_a = await stack.shop()
    shop_b, merchant_b = await stack.shop()
    sku = await stack.put_sku({"WH-A": 5}, price_cents=1000, merchant=merchant_a)
    made = await stack.sku(sku)
    assert made["shop_id"] == shop_a

    # another shop's merchant may not write it (403), and nothing changes
    body = {"title": "taken over", "price_cents": 1, "product_type": "SELF"}
    body |= {"stock_policy": "LOCK_ON_ORDER"}
    for path, payload in ((f"/skus/{sku}", body), (f"/skus/{sku}/stock/WH-A", {"on_hand": 0})):
        for who in (merchant_b, stack.merchant):  # the shop default's merchant too
            expect_problem(
                await stack.http.put(path, json=payload, headers=who.headers), 403, "FORBIDDEN"
            )
    assert await stack.sku(sku) == made
    # a merchant makes SKUs in its own shop only; a SKU stays in its shop
    mine = body | {"shop_id": shop_a}
    expect_problem(
        await stack.http.put(f"/skus/{uid('X')}", json=mine, headers=merchant_b.headers),
        403,
        "FORBIDDEN",
    )
    moved = body | {"shop_id": shop_b}
    problem = expect_problem(
        await stack.http.put(f"/skus/{sku}", json=moved, headers=stack.admin.headers),
        422,
        "VALIDATION",
    )
    assert "shop_id" in problem["detail"]
    unknown = body | {"shop_id": uid("shop")}
    expect_problem(
        await stack.http.put(f"/skus/{uid('X')}", json=unknown, headers=stack.admin.headers),
        422,
        "VALIDATION",
    )
    assert await stack.sku(sku) == made

    # on-hand units are its shop's business; anyone sees availability; lists by shop
    seen_by_b = ok(await stack.http.get(f"/skus/{sku}", headers=merchant_b.headers))
    assert seen_by_b["stock"] == [
        {"location": "WH-A", "on_hand": None, "locked": None, "available": 5}
    ]
    listed = ok(await stack.http.get("/skus", params={"shop_id": shop_a}))
    assert [s["sku"] for s in listed] == [sku]
    assert ok(await stack.http.get("/skus", params={"shop_id": shop_b})) == []

    # each shop's freight rule: shop A charges 6 yuan, shop B and default do not change
    rule = {"flat_cents": 600, "free_above_cents": None, "policy": "ONE_PACKAGE"}
    default_rule = ok(await stack.http.get("/freight-rule"))
    ok(await stack.http.put("/freight-rule", json=rule, headers=merchant_a.headers))
    expect_problem(
        await stack.http.put(
            "/freight-rule", params={"shop_id": shop_a}, json=rule, headers=merchant_b.headers
        ),
        403,
        "FORBIDDEN",
    )
    assert ok(await stack.http.get("/freight-rule", params={"shop_id": shop_a})) == rule
    assert ok(await stack.http.get("/freight-rule", headers=merchant_a.headers)) == rule
    assert ok(await stack.http.get("/freight-rule", params={"shop_id": shop_b}))["flat_cents"] == 0
    assert ok(await stack.http.get("/freight-rule")) == default_rule
    expect_problem(
        await stack.http.get("/freight-rule", params={"shop_id": uid("shop")}), 404, "NOT_FOUND"
    )

    buyer = stack.buyer()
    order = await stack.placed(buyer, [(sku, 2)])
    assert (order["shop_id"], order["freight_cents"], order["total_cents"]) == (shop_a, 600, 2600)
    found = [
        w.id
        async for w in stack.temporal.list_workflows(
            f"ShopId = '{shop_a}' AND BuyerId = '{buyer.id}'"
        )
    ]
    assert found == [ids.order_workflow_id(order["id"])]

    # a cart across shops is not one order: refused whole, nothing placed, nothing locked
    other = await stack.put_sku({"WH-A": 5}, price_cents=500)  # the shop default's
    problem = expect_problem(
        await stack.place(buyer, [(sku, 1), (other, 1)]), 422, "MULTIPLE_SHOPS"
    )
    assert sorted(problem["shops"]) == sorted([shop_a, "default"])
    assert await stack.stock(sku) == {"WH-A": (5, 2)} and await stack.stock(other) == {
        "WH-A": (5, 0)
    }
    mine = ok(await stack.http.get("/orders", headers=buyer.headers))["items"]
    assert [o["id"] for o in mine] == [order["id"]]


async def _paid_with_refund_request(stack: Stack, buyer: User, sku: str) -> tuple[Json, Json]:
    order = await stack.paid(buyer, [(sku, 2)])
    request = ok(
        await stack.act(
            buyer, f"/orders/{order['id']}/refunds", {"lines": [{"sku": sku, "quantity": 1}]}
        ),
        201,
    )
    return await stack.order(buyer, order["id"]), request


async def test_another_shops_merchant_finds_nothing_on_any_route(stack: Stack) -> None:
    """Every route that names an order, a case or a SKU, called by another shop's merchant
    with shop A's: 404 (403 for writes to a SKU, and for routes that are not a merchant's),
    and nothing changed. The routes are read from the app, so a new one cannot be left out."""
    shop_a, merchant_a = await stack.shop(service_phone="400-111-2222")
    _, merchant_b = await stack.shop()
    sku = await stack.put_sku({"WH-A": 20}, price_cents=1000, merchant=merchant_a)
    buyer = stack.buyer()
    unshipped, request = await _paid_with_refund_request(stack, buyer, sku)
    shipped = await stack.paid(buyer, [(sku, 1)])
    shipped = await stack.ship(shipped, merchant=merchant_a)
    case = ok(await open_case(stack, buyer, shipped["id"], form("REFUND_ONLY", [(sku, 1)])), 201)
    assert (case["shop_id"], case["service_phone"]) == (shop_a, "400-111-2222")

    package = unshipped["packages"][0]["id"]
    values = {
        "order_id": unshipped["id"],
        "package_id": package,
        "request_id": request["id"],
        "refund_id": "R-1",
        "case_id": case["id"],
        "sha256": "0" * 64,
        "sku": sku,
        "location": "WH-A",
        "action": "agree",
    }
    body: Json = {
        "version": case["version"],
        "reason": "not mine to decide",
        "carrier": "SF",
        "tracking_no": uid("SF"),
        "amount_cents": 100,
        "title": "taken over",
        "price_cents": 1,
        "product_type": "SELF",
        "stock_policy": "LOCK_ON_ORDER",
        "on_hand": 0,
    }
    named = ("{order_id}", "{case_id}", "{sku}")
    routes = [
        (method.upper(), path)
        for path, operations in create_app(stack.settings).openapi()["paths"].items()
        if any(n in path for n in named)
        for method in sorted(operations)
    ]
    assert len(routes) >= 25, routes
    answers = {}
    for method, path in routes:
        url = path.format(**values)
        if path.endswith("/after-sales") and method == "POST":
            r = await open_case(stack, merchant_b, unshipped["id"], form("REFUND_ONLY", [(sku, 1)]))
        else:
            payload = None if method == "GET" else body
            r = await stack.http.request(method, url, json=payload, headers=merchant_b.headers)
        answers[(method, path)] = r.status_code
        if path.startswith("/skus/{sku}"):  # anyone reads the catalog; only its shop writes
            assert r.status_code == (200 if method == "GET" else 403), (method, path, r.text)
        else:
            assert r.status_code in (403, 404), (method, path, r.text)
            if r.status_code == 403:  # only where the route is not a merchant's at all
                assert "needs role" in r.json()["detail"], (method, path, r.text)
    merchant_routes = {
        ("GET", "/orders/{order_id}"),
        ("GET", "/orders/{order_id}/events"),
        ("GET", "/orders/{order_id}/refunds"),
        ("POST", "/orders/{order_id}/close"),
        ("POST", "/orders/{order_id}/packages/{package_id}/ship"),
        ("POST", "/orders/{order_id}/packages/{package_id}/return-received"),
        ("POST", "/orders/{order_id}/refunds/{request_id}/agree"),
        ("POST", "/orders/{order_id}/refunds/{request_id}/refuse"),
        ("GET", "/after-sales/{case_id}"),
        ("GET", "/after-sales/{case_id}/images/{sha256}"),
        ("POST", "/after-sales/{case_id}/{action}"),
        ("POST", "/after-sales/{case_id}/propose"),
    }
    assert {k: answers[k] for k in merchant_routes} == dict.fromkeys(merchant_routes, 404)

    # nothing moved, and shop A's merchant can do what B could not
    assert (await stack.order(buyer, unshipped["id"]))["version"] == unshipped["version"]
    assert await stack.stock(sku) == {"WH-A": (17, 0)}
    mine = ok(await stack.http.get(f"/after-sales/{case['id']}", headers=merchant_a.headers))
    assert mine["version"] == case["version"]
    agreed = ok(
        await stack.act(merchant_a, f"/orders/{unshipped['id']}/refunds/{request['id']}/agree", {})
    )
    assert agreed["status"] in ("AGREED", "REFUNDED")
    shipped_now = await stack.ship(unshipped, merchant=merchant_a)
    assert shipped_now["packages"][0]["status"] == "SHIPPED"
    ok(await case_act(stack, merchant_a, mine, "agree"))


async def test_lists_show_a_merchant_its_shop_and_an_admin_any(stack: Stack) -> None:
    shop_a, merchant_a = await stack.shop()
    _, merchant_b = await stack.shop()
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5}, merchant=merchant_a)
    order = await stack.placed(buyer, [(sku, 1)])
    theirs = await stack.placed(buyer, [(await stack.put_sku({"WH-A": 5}), 1)])  # default's

    def ids_of(page: Json) -> set[str]:
        return {o["id"] for o in page["items"]}

    a_sees = ok(await stack.http.get("/orders", headers=merchant_a.headers, params={"limit": 100}))
    assert order["id"] in ids_of(a_sees) and theirs["id"] not in ids_of(a_sees)
    assert all(o["shop_id"] == shop_a for o in a_sees["items"])
    b_sees = ok(await stack.http.get("/orders", headers=merchant_b.headers))
    assert ids_of(b_sees) == set()
    expect_problem(
        await stack.http.get("/orders", params={"shop_id": shop_a}, headers=merchant_b.headers),
        403,
        "FORBIDDEN",
    )
    default_sees = ok(
        await stack.http.get("/orders", headers=stack.merchant.headers, params={"limit": 100})
    )
    assert order["id"] not in ids_of(default_sees)
    only_a = ok(
        await stack.http.get("/orders", params={"shop_id": shop_a}, headers=stack.admin.headers)
    )
    assert ids_of(only_a) == {order["id"]}
    everyone = ok(
        await stack.http.get("/orders", params={"buyer_id": buyer.id}, headers=stack.admin.headers)
    )
    assert ids_of(everyone) == {order["id"], theirs["id"]}
    assert ok(await stack.http.get("/after-sales", headers=merchant_b.headers))["items"] == []


async def test_a_shops_settlement_matches_its_payments_and_refunds(stack: Stack) -> None:
    shop_a, merchant_a = await stack.shop()
    shop_b, merchant_b = await stack.shop()
    start = (await stack.order(stack.admin, (await _any_order(stack))["id"]))["created_at"]
    buyer = stack.buyer()
    sku_a = await stack.put_sku({"WH-A": 10}, price_cents=1000, merchant=merchant_a)
    sku_b = await stack.put_sku({"WH-A": 10}, price_cents=700, merchant=merchant_b)
    unshipped, request = await _paid_with_refund_request(stack, buyer, sku_a)  # 2000
    kept = await stack.paid(buyer, [(sku_a, 3)])  # 3000
    other = await stack.paid(buyer, [(sku_b, 1)])  # 700, shop B's
    ok(await stack.act(merchant_a, f"/orders/{unshipped['id']}/refunds/{request['id']}/agree", {}))
    refunded = await stack.wait_order(
        buyer, unshipped["id"], lambda o: o["refunded_cents"] == 1000, "the refund to land"
    )
    assert refunded["refunded_cents"] == 1000
    end = (datetime.fromisoformat(start) + timedelta(days=1)).isoformat()
    period = {"from": start, "to": end}

    path = f"/shops/{shop_a}/settlement"
    got = ok(await stack.http.get(path, params=period, headers=merchant_a.headers))
    assert got == {
        "shop_id": shop_a,
        "from": got["from"],
        "to": got["to"],
        "paid_cents": 5000,
        "refunded_cents": 1000,
        "net_cents": 4000,
        "orders": 2,
    }
    assert datetime.fromisoformat(got["to"]) == datetime.fromisoformat(end)
    assert ok(await stack.http.get(path, params=period, headers=stack.admin.headers)) == got
    theirs = ok(
        await stack.http.get(
            f"/shops/{shop_b}/settlement", params=period, headers=merchant_b.headers
        )
    )
    assert (theirs["paid_cents"], theirs["refunded_cents"], theirs["orders"]) == (700, 0, 1)
    # one row per order, then the totals, as a file
    csv = await stack.http.get(f"{path}.csv", params=period, headers=merchant_a.headers)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    rows = [line.split(",") for line in csv.text.strip().split("\r\n")]
    assert rows[0] == ["order_id", "paid_cents", "refunded_cents", "net_cents"]
    assert sorted(rows[1:-1]) == sorted(
        [[unshipped["id"], "2000", "1000", "1000"], [kept["id"], "3000", "0", "3000"]]
    )
    assert rows[-1] == ["TOTAL", "5000", "1000", "4000"]
    assert other["id"] not in csv.text

    # another shop's merchant finds no such settlement; a buyer is not staff; bad periods
    for who, status in ((merchant_b, 404), (stack.merchant, 404), (buyer, 403)):
        for url in (path, f"{path}.csv"):
            r = await stack.http.get(url, params=period, headers=who.headers)
            assert r.status_code == status, (who.id, url, r.text)
    for bad in (
        {"from": end, "to": start},  # backwards
        {"from": start, "to": "2026-13-01T00:00:00Z"},
        {"from": "2020-01-01T00:00:00Z", "to": "2022-01-01T00:00:00Z"},  # over 400 days
        {"from": start},
    ):
        expect_problem(
            await stack.http.get(path, params=bad, headers=merchant_a.headers), 422, "VALIDATION"
        )
    expect_problem(
        await stack.http.get(
            f"/shops/{uid('shop')}/settlement", params=period, headers=stack.admin.headers
        ),
        404,
        "NOT_FOUND",
    )


async def _any_order(stack: Stack) -> Json:
    """An order placed now: its placing time starts the test's period."""
    return await stack.placed(stack.buyer(), [(await stack.put_sku({"WH-A": 1}), 1)])


async def checkout(
    stack: Stack, buyer: User, lines: list[tuple[str, int]], key: str | None = None
) -> httpx.Response:
    headers = dict(buyer.headers) | ({"Idempotency-Key": key} if key else {})
    body = {"lines": [{"sku": s, "quantity": q} for s, q in lines], "address": ADDRESS}
    return await stack.http.post("/checkouts", json=body, headers=headers)


async def test_a_checkout_across_shops_places_one_order_per_shop(stack: Stack) -> None:
    shop_a, merchant_a = await stack.shop()
    shop_b, merchant_b = await stack.shop()
    rule = {"flat_cents": 600, "free_above_cents": None, "policy": "ONE_PACKAGE"}
    ok(await stack.http.put("/freight-rule", json=rule, headers=merchant_a.headers))
    tea = await stack.put_sku({"WH-A": 5}, price_cents=1000, merchant=merchant_a)
    cup = await stack.put_sku({"WH-B": 5}, price_cents=700, merchant=merchant_b)
    pot = await stack.put_sku({"WH-A": 5}, price_cents=2500, merchant=merchant_b)
    buyer = stack.buyer()
    key = uid("key")

    placed = ok(await checkout(stack, buyer, [(tea, 2), (cup, 1), (pot, 1)], key), 201)
    by_shop = {o["shop_id"]: o for o in placed["orders"]}
    assert set(by_shop) == {shop_a, shop_b}
    a, b = by_shop[shop_a], by_shop[shop_b]
    assert (a["goods_cents"], a["freight_cents"], a["total_cents"]) == (2000, 600, 2600)
    assert (b["goods_cents"], b["freight_cents"]) == (3200, 0)  # B's rule: none
    assert {o["checkout_id"] for o in placed["orders"]} == {placed["id"]}
    assert placed["status"] == "PENDING_PAYMENT"
    assert (
        placed["total_cents"] == a["total_cents"] + b["total_cents"] and placed["paid_cents"] == 0
    )
    assert placed["payment_deadline"] == min(a["payment_deadline"], b["payment_deadline"])
    assert await stack.stock(tea) == {"WH-A": (5, 2)} and await stack.stock(cup) == {"WH-B": (5, 1)}
    for order in (a, b):  # each its own workflow, found by shop in the Web UI
        handle = stack.temporal.get_workflow_handle(ids.order_workflow_id(order["id"]))
        assert (await handle.describe()).search_attributes["ShopId"] == [order["shop_id"]]

    # the same request again is the same checkout; the key with another cart is refused
    again = ok(await checkout(stack, buyer, [(tea, 2), (cup, 1), (pot, 1)], key), 201)
    assert [o["id"] for o in again["orders"]] == [o["id"] for o in placed["orders"]]
    expect_problem(await checkout(stack, buyer, [(tea, 1)], key), 409, "IDEMPOTENCY_CONFLICT")
    assert await stack.stock(tea) == {"WH-A": (5, 2)}

    # its buyer and admins read it; another buyer and the merchants do not find it
    path = f"/checkouts/{placed['id']}"
    assert ok(await stack.http.get(path, headers=buyer.headers)) == placed
    assert ok(await stack.http.get(path, headers=stack.admin.headers)) == placed
    for who in (stack.buyer(), merchant_a, stack.merchant):
        expect_problem(await stack.http.get(path, headers=who.headers), 404, "NOT_FOUND")
    # each shop's merchant sees its own order of it, and only that
    assert (
        ok(await stack.http.get(f"/orders/{a['id']}", headers=merchant_a.headers))["id"] == a["id"]
    )
    expect_problem(
        await stack.http.get(f"/orders/{b['id']}", headers=merchant_a.headers), 404, "NOT_FOUND"
    )

    # each order is paid and shipped by itself; the checkout shows what is left to pay
    await stack.top_up(buyer, a["total_cents"])
    ok(await stack.act(buyer, f"/orders/{a['id']}/pay", {"channel": "balance"}))
    left = ok(await stack.http.get(path, headers=buyer.headers))
    assert (left["status"], left["total_cents"], left["paid_cents"]) == (
        "PENDING_PAYMENT",
        b["total_cents"],
        a["total_cents"],
    )
    shipped = await stack.ship(await stack.order(buyer, a["id"]), merchant=merchant_a)
    assert shipped["status"] == "SHIPPED"


async def test_a_checkout_that_cannot_be_placed_whole_leaves_nothing(stack: Stack) -> None:
    _, merchant_a = await stack.shop()
    shop_b, merchant_b = await stack.shop()
    tea = await stack.put_sku({"WH-A": 5}, price_cents=1000, merchant=merchant_a)
    cup = await stack.put_sku({"WH-A": 1}, price_cents=700, merchant=merchant_b)
    pot = await stack.put_sku({"WH-A": 0}, price_cents=900, merchant=merchant_b)
    rare = await stack.put_sku({"WH-A": 9}, limit_per_buyer=1, merchant=merchant_b)
    buyer = stack.buyer()

    problem = expect_problem(
        await checkout(stack, buyer, [(tea, 1), (cup, 2), (pot, 1)]), 409, "OUT_OF_STOCK"
    )
    assert {(x["sku"], x["reason"], x["shop_id"]) for x in problem["lines"]} == {
        (cup, "OUT_OF_STOCK", shop_b),
        (pot, "OUT_OF_STOCK", shop_b),
    }
    problem = expect_problem(
        await checkout(stack, buyer, [(tea, 1), (rare, 2)]), 409, "LIMIT_EXCEEDED"
    )
    assert [(x["sku"], x["reason"]) for x in problem["lines"]] == [(rare, "LIMIT_EXCEEDED")]
    unknown = uid("NOPE").upper()
    problem = expect_problem(
        await checkout(stack, buyer, [(tea, 1), (unknown, 1)]), 422, "UNKNOWN_SKU"
    )
    assert [(x["sku"], x["shop_id"]) for x in problem["lines"]] == [(unknown, None)]

    # nothing placed, nothing locked
    assert ok(await stack.http.get("/orders", headers=buyer.headers))["items"] == []
    for sku, on_hand in ((tea, 5), (cup, 1), (rare, 9)):
        assert await stack.stock(sku) == {"WH-A": (on_hand, 0)}
    # a one-shop cart through /checkouts is a checkout of one order
    one = ok(await checkout(stack, buyer, [(tea, 1)]), 201)
    assert [o["shop_id"] for o in one["orders"]] == [one["orders"][0]["shop_id"]]
    assert len(one["orders"]) == 1


async def _checkout_intent(stack: Stack, buyer: User, placed: Json) -> Json:
    intent: Json = ok(
        await stack.act(buyer, f"/checkouts/{placed['id']}/payment-intents", {"channel": "wechat"}),
        201,
    )
    return intent


async def _pay_on_the_gateways_page(stack: Stack, intent: Json) -> Json:
    """The buyer pays on the sandbox's page; the sandbox calls our webhook back, signed."""
    paid: Json = ok(await stack.http.post(intent["pay_url"]))
    assert (paid["delivered"], paid["status_code"]) == (True, 200), paid
    return paid


class TeaAndCup(NamedTuple):
    """Two new shops, each with its merchant and one SKU: a 30-yuan tea in shop A's WH-A, a
    20-yuan cup in shop B's WH-B."""

    shop_a: str
    merchant_a: User
    shop_b: str
    merchant_b: User
    tea: str
    cup: str


async def _tea_and_cup(stack: Stack, units: int = 5) -> TeaAndCup:
    shop_a, merchant_a = await stack.shop()
    shop_b, merchant_b = await stack.shop()
    tea = await stack.put_sku({"WH-A": units}, price_cents=3000, merchant=merchant_a)
    cup = await stack.put_sku({"WH-B": units}, price_cents=2000, merchant=merchant_b)
    return TeaAndCup(shop_a, merchant_a, shop_b, merchant_b, tea, cup)


async def _gateway_refunds(stack: Stack, order: Json) -> list[Json]:
    """The gateway's record of each refund the order made."""
    out = []
    for refund in order["refunds"]:
        found = await stack.gateway("GET", f"/v1/refunds/{quote(refund['id'], safe='')}")
        out.append(ok(found))
    return out


async def test_one_gateway_payment_pays_each_order_of_a_checkout(stack: Stack) -> None:
    """One intent for the checkout's unpaid total; its one transaction pays each order for
    its own total. A later refund of one order goes back against that transaction, for that
    order's part only."""
    shop_a, merchant_a, shop_b, _, tea, cup = await _tea_and_cup(stack)
    buyer = stack.buyer()
    placed = ok(await checkout(stack, buyer, [(tea, 1), (cup, 1)]), 201)
    by_shop = {o["shop_id"]: o["id"] for o in placed["orders"]}

    intent = await _checkout_intent(stack, buyer, placed)
    assert intent["amount_cents"] == placed["total_cents"] == 5000
    paid = await _pay_on_the_gateways_page(stack, intent)
    txn = paid["txn_id"]
    path = f"/checkouts/{placed['id']}"
    settled = await stack.wait_order(
        buyer, by_shop[shop_b], lambda o: o["status"] == "PENDING_SHIPMENT", "B to be paid"
    )
    a = await stack.wait_order(
        buyer, by_shop[shop_a], lambda o: o["status"] == "PENDING_SHIPMENT", "A to be paid"
    )
    for order, cents in ((a, 3000), (settled, 2000)):
        assert order["payment"]["txn_id"] == f"{txn}#{order['id']}"
        assert (order["payment"]["amount_cents"], order["paid_cents"]) == (cents, cents)
    after = ok(await stack.http.get(path, headers=buyer.headers))
    assert (after["status"], after["total_cents"], after["paid_cents"]) == (
        "PENDING_SHIPMENT",
        0,
        5000,
    )
    # nothing left to pay: a second intent is refused
    expect_problem(
        await stack.act(buyer, f"{path}/payment-intents", {"channel": "wechat"}),
        409,
        "INVALID_TRANSITION",
    )

    # shop A refunds its order whole: against the same transaction, A's 30 yuan only
    request = ok(
        await stack.act(
            buyer, f"/orders/{a['id']}/refunds", {"lines": [{"sku": tea, "quantity": 1}]}
        ),
        201,
    )
    ok(await stack.act(merchant_a, f"/orders/{a['id']}/refunds/{request['id']}/agree", {}))
    refunded = await stack.wait_order(
        buyer, a["id"], lambda o: o["refunded_cents"] == 3000, "A's refund to land"
    )
    assert [(g["txn_id"], g["amount_cents"]) for g in await _gateway_refunds(stack, refunded)] == [
        (txn, 3000)
    ]
    b = await stack.order(buyer, settled["id"])
    assert (b["status"], b["refunded_cents"]) == ("PENDING_SHIPMENT", 0)
    assert ok(await stack.gateway("GET", f"/v1/transactions/{txn}"))["refunded_cents"] == 3000


async def test_the_share_of_an_order_closed_meanwhile_goes_back_alone(stack: Stack) -> None:
    """The buyer cancels one order of the checkout, then pays the checkout's intent: the
    cancelled order's share is refunded, the other order keeps its own. Once every order
    has closed, a payment is refunded whole."""
    tea, cup = (await _tea_and_cup(stack))[-2:]
    buyer = stack.buyer()
    placed = ok(await checkout(stack, buyer, [(tea, 1), (cup, 1)]), 201)
    a, b = sorted(placed["orders"], key=lambda o: o["total_cents"], reverse=True)
    intent = await _checkout_intent(stack, buyer, placed)
    ok(await stack.act(buyer, f"/orders/{a['id']}/cancel", {"reason": "one is enough"}))

    paid = await _pay_on_the_gateways_page(stack, intent)
    kept = await stack.wait_order(
        buyer, b["id"], lambda o: o["status"] == "PENDING_SHIPMENT", "B to be paid"
    )
    assert kept["paid_cents"] == 2000
    events = await stack.wait_events(
        buyer, a["id"], lambda ev: _refund_event(ev) is not None, "A's share to go back"
    )
    refund = _refund_event(events)
    assert refund is not None
    assert (refund["data"]["txn_id"], refund["data"]["amount_cents"]) == (
        f"{paid['txn_id']}#{a['id']}",
        3000,
    )
    ledger = ok(await stack.gateway("GET", f"/v1/transactions/{paid['txn_id']}"))
    assert (ledger["amount_cents"], ledger["refunded_cents"]) == (5000, 3000)
    assert await stack.stock(tea) == {"WH-A": (5, 0)} and await stack.stock(cup) == {"WH-B": (4, 0)}

    # every order closed, then paid: refunded whole, share by share
    late = ok(await checkout(stack, buyer, [(tea, 1), (cup, 2)]), 201)
    intent = await _checkout_intent(stack, buyer, late)
    for order in late["orders"]:
        ok(await stack.act(buyer, f"/orders/{order['id']}/cancel", {"reason": "no"}))
    paid = await _pay_on_the_gateways_page(stack, intent)
    for order in late["orders"]:
        await stack.wait_events(
            buyer, order["id"], lambda ev: _refund_event(ev) is not None, "a share to go back"
        )
    ledger = ok(await stack.gateway("GET", f"/v1/transactions/{paid['txn_id']}"))
    assert ledger["refunded_cents"] == ledger["amount_cents"] == late["total_cents"] == 7000


def _refund_event(events: list[Json]) -> Json | None:
    found = [e for e in events if e["type"] in ("REFUNDED", "LATE_PAYMENT_REFUNDED")]
    assert len(found) <= 1, events
    return found[0] if found else None


@pytest.mark.parametrize("channel", ["wechat", "balance"])
@pytest.mark.parametrize("after_deadline", [-0.05, 0.3])
async def test_a_checkouts_payment_racing_the_payment_timer_is_kept_or_refunded_per_order(
    stack: Stack, channel: str, after_deadline: float
) -> None:
    """On the real server: the checkout's orders time out at their deadline just as its
    payment lands, through the gateway or from the wallet. Whatever wins for each order, its
    share is either kept (the order paid, its stock deducted) or refunded (the order closed),
    never both and never lost: the gateway's transaction, or the wallet, shows exactly
    that."""
    tea, cup = (await _tea_and_cup(stack))[-2:]
    buyer = stack.buyer()
    await stack.top_up(buyer, 10_000)
    async with api_with(stack, payment_window_seconds=3) as http:
        body = {"lines": [{"sku": tea, "quantity": 1}, {"sku": cup, "quantity": 1}]}
        placed = ok(
            await http.post("/checkouts", json=body | {"address": ADDRESS}, headers=buyer.headers),
            201,
        )
    intent = await _checkout_intent(stack, buyer, placed) if channel == "wechat" else None
    deadline = datetime.fromisoformat(placed["payment_deadline"])
    await asyncio.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds() + after_deadline))
    every_order = {o["id"] for o in placed["orders"]}
    if intent is not None:
        paid = await _pay_on_the_gateways_page(stack, intent)
        charged, txn, charged_ids = intent["amount_cents"], paid["txn_id"], every_order
    else:
        r = await stack.act(buyer, f"/checkouts/{placed['id']}/pay", {"channel": "balance"})
        if r.status_code == 409:  # every order closed before the payment: nothing charged
            assert (await stack.wallet(buyer))["balance_cents"] == 10_000
            return
        ok(r)
        charged, txn = 10_000 - (await stack.wallet(buyer))["balance_cents"], None
        # the orders still unpaid when it asked (their totals differ: 30 and 20 yuan)
        charged_ids = {o["id"] for o in placed["orders"] if charged in (5000, o["total_cents"])}
        assert charged_ids, charged

    def settled(events: list[Json]) -> bool:  # paid, or its share refunded
        return _refund_event(events) is not None or any(e["type"] == "PAID" for e in events)

    kept = refunded = 0
    for order in placed["orders"]:
        sku = order["lines"][0]["sku"]
        location = "WH-A" if sku == tea else "WH-B"
        if order["id"] not in charged_ids:  # closed by its timer before: never charged
            final = await stack.wait_order(
                buyer, order["id"], lambda o: o["status"] == "CLOSED", "the timer"
            )
            assert final["payment"] is None and await stack.stock(sku) == {location: (5, 0)}
            continue
        events = await stack.wait_events(buyer, order["id"], settled, "the order to settle")
        refund = _refund_event(events)
        final = await stack.order(buyer, order["id"])
        if refund is None:
            assert (final["status"], final["paid_cents"]) == (
                "PENDING_SHIPMENT",
                order["total_cents"],
            )
            kept += order["total_cents"]
        else:
            assert final["status"] == "CLOSED" and final["payment"] is None
            assert refund["data"]["txn_id"].endswith(f"#{order['id']}")
            refunded += refund["data"]["amount_cents"]
        sold = 1 if refund is None else 0
        assert await stack.stock(sku) == {location: (5 - sold, 0)}
    assert kept + refunded == charged
    if txn is not None:
        ledger = ok(await stack.gateway("GET", f"/v1/transactions/{txn}"))
        assert ledger["refunded_cents"] == refunded
    else:
        assert (await stack.wallet(buyer))["balance_cents"] == 10_000 - kept


async def test_a_checkouts_payment_whose_callback_never_came_is_found_by_the_sweep(
    stack: Stack,
) -> None:
    """The gateway took the checkout's money but its callback was lost: the capture sweep
    splits it as the callback would have, each order takes its share, and the next sweep
    finds the shares in the ledger (nothing delivered twice, nothing refunded)."""
    tea, cup = (await _tea_and_cup(stack))[-2:]
    buyer = stack.buyer()
    placed = ok(await checkout(stack, buyer, [(tea, 1), (cup, 1)]), 201)
    intent = await _checkout_intent(stack, buyer, placed)
    ok(await stack.gateway("POST", "/v1/_faults", json={"drop_next_callbacks": 1}))
    paid = ok(await stack.http.post(intent["pay_url"]))
    assert (paid["delivered"], len(paid["dropped"])) == (False, 1)

    async def sweep() -> ReconcileResult:
        result: ReconcileResult = await stack.temporal.execute_workflow(
            ReconcileWorkflow.run,
            ReconcileInput(grace_seconds=0),
            id=f"reconcile-sweep-{uuid.uuid4().hex[:8]}",
            task_queue=stack.settings.task_queue,
        )
        return result

    assert paid["txn_id"] in (await sweep()).captures_delivered
    for order in placed["orders"]:
        settled = await stack.wait_order(
            buyer, order["id"], lambda o: o["status"] == "PENDING_SHIPMENT", "its share"
        )
        assert settled["payment"]["txn_id"] == f"{paid['txn_id']}#{order['id']}"
        assert settled["paid_cents"] == order["total_cents"]
    assert paid["txn_id"] not in (await sweep()).captures_delivered
    ledger = ok(await stack.gateway("GET", f"/v1/transactions/{paid['txn_id']}"))
    assert ledger["refunded_cents"] == 0


async def test_a_checkout_paid_from_the_wallet_in_one_debit(stack: Stack) -> None:
    """Every unpaid order of the checkout, from the balance in one debit: each order takes
    its share; too little money charges nothing; the same request again charges once; an
    order cancelled before gives its share back to the wallet."""
    tea, cup = (await _tea_and_cup(stack, units=9))[-2:]
    buyer = stack.buyer()
    placed = ok(await checkout(stack, buyer, [(tea, 1), (cup, 1)]), 201)
    path = f"/checkouts/{placed['id']}/pay"
    await stack.top_up(buyer, 4999)
    expect_problem(await stack.act(buyer, path, {"channel": "balance"}), 409, "INSUFFICIENT_FUNDS")
    assert (await stack.wallet(buyer))["balance_cents"] == 4999
    for order in placed["orders"]:
        assert (await stack.order(buyer, order["id"]))["status"] == "PENDING_PAYMENT"
    expect_problem(await stack.act(stack.buyer(), path, {"channel": "balance"}), 404, "NOT_FOUND")

    await stack.top_up(buyer, 1)
    headers = buyer.headers | {"Idempotency-Key": uid("pay")}
    for _ in range(2):  # a retry after a timeout: charged once
        r = await stack.http.post(path, json={"channel": "balance"}, headers=headers)
        assert r.status_code == 200, r.text
    for order in placed["orders"]:
        paid = await stack.wait_order(
            buyer, order["id"], lambda o: o["status"] == "PENDING_SHIPMENT", "its share"
        )
        assert paid["payment"]["channel"] == "balance"
        assert paid["payment"]["txn_id"].endswith(f"#{order['id']}")
        assert paid["paid_cents"] == order["total_cents"]
    assert (await stack.wallet(buyer))["balance_cents"] == 0
    assert await stack.stock(tea) == {"WH-A": (8, 0)}
    expect_problem(await stack.act(buyer, path, {"channel": "balance"}), 409, "INVALID_TRANSITION")

    # an order cancelled before the payment is not charged: the rest is, in one debit
    second = ok(await checkout(stack, buyer, [(tea, 1), (cup, 2)]), 201)
    tea_order, cup_order = sorted(second["orders"], key=lambda o: o["lines"][0]["sku"] != tea)
    await stack.top_up(buyer, second["total_cents"])
    ok(await stack.act(buyer, f"/orders/{tea_order['id']}/cancel", {"reason": "no"}))
    left = ok(await stack.http.get(f"/checkouts/{second['id']}", headers=buyer.headers))
    assert left["total_cents"] == cup_order["total_cents"] == 4000
    ok(await stack.act(buyer, f"/checkouts/{second['id']}/pay", {"channel": "balance"}))
    await stack.wait_order(
        buyer, cup_order["id"], lambda o: o["status"] == "PENDING_SHIPMENT", "the cups' share"
    )
    assert (await stack.wallet(buyer))["balance_cents"] == 3000
    cancelled = await stack.order(buyer, tea_order["id"])
    assert (cancelled["status"], cancelled["payment"]) == ("CLOSED", None)
