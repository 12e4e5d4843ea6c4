"""The merchant and admin console, driven in headless Chromium (Debian's package, started by
Playwright from /usr/bin/chromium; no browser is downloaded) against the session's API."""

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright._impl._api_structures import SetCookieParam
from playwright.async_api import Browser, BrowserContext, Page

from api.auth import Role
from store.db import Database
from store.tables import ConsoleSessionRow
from tests.e2e.harness import Json, Stack, User, expect_problem, ok
from tests.e2e.test_e2e_after_sales import PNG, case_act, form, open_case, shipped

pytestmark = pytest.mark.e2e
ZONE = "Asia/Shanghai"


async def sign_in(
    stack: Stack, ctx: BrowserContext, user: User, zone: str = ZONE, path: str = ""
) -> Page:
    page = await ctx.new_page()
    await page.goto(f"{stack.base_url}/console{path}")
    assert urlsplit(page.url).path == "/console/login"  # no session yet: the sign-in page
    await page.fill("textarea[name=token]", user.token)
    await page.fill("input[name=zone]", zone)
    async with page.expect_navigation():  # in, or refused: either way a page comes back
        await page.click("button[type=submit]")
    return page


def session_cookie(stack: Stack, token: str) -> SetCookieParam:
    """The console's session cookie as a browser would keep it (Path /console)."""
    return {
        "name": "console_session",
        "value": token,
        "domain": urlsplit(stack.base_url).hostname or "",
        "path": "/console",
        "httpOnly": True,
        "sameSite": "Strict",
    }


def local(at: str, zone: str = ZONE) -> str:
    return datetime.fromisoformat(at).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


async def test_find_a_paid_order_ship_it_and_see_it_shipped(
    stack: Stack, context: BrowserContext
) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5}, price_cents=123_456)
    order = await stack.paid(buyer, [(sku, 1)])
    unpaid = await stack.placed(buyer, [(sku, 1)])
    page = await sign_in(stack, context, stack.merchant)
    assert page.url.endswith("/console/orders")
    cookie = next(c for c in await context.cookies() if c["name"] == "console_session")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/console")
    assert await page.evaluate("document.cookie") == ""  # no script reads the session

    # find it: this buyer's paid, unshipped orders
    await page.fill("input[name=buyer_id]", buyer.id)
    await page.select_option("select[name=status]", "PENDING_SHIPMENT")
    await page.click("form.filters button[type=submit]")
    rows = page.locator("#orders tbody tr[data-order]")
    assert await rows.evaluate_all("rs => rs.map(r => r.dataset.order)") == [order["id"]]
    row = rows.first
    assert await row.locator("td.money").first.inner_text() == "¥1,239.56"  # with ¥5 freight
    assert await row.locator("td.placed").inner_text() == local(order["created_at"])
    assert await row.locator("td.paid-at").inner_text() == local(order["payment"]["paid_at"])

    # ship it
    await row.locator("a").click()
    assert await page.locator("#status").get_attribute("data-status") == "PENDING_SHIPMENT"
    package = order["packages"][0]["id"]
    ship = page.locator(f"article[data-package='{package}'] form.ship")
    await ship.locator("select[name=carrier]").select_option("ZTO")  # from the list
    await ship.locator("input[name=tracking_no]").fill("SF1234567")
    await ship.locator("button").click()
    notice = await page.locator(".notice").inner_text()
    assert notice == "Package shipped: the buyer sees its carrier and tracking number."
    assert await page.locator("#status").get_attribute("data-status") == "SHIPPED"
    assert await page.locator(f"article[data-package='{package}'] form.ship").count() == 0
    shipped_at = (await stack.order(buyer, order["id"]))["packages"][0]["shipped_at"]
    sentence = await page.locator("#timeline li[data-event=PACKAGE_SHIPPED]").inner_text()
    assert sentence == (
        f"{local(shipped_at)} Package {package} shipped ZTO SF1234567"
        f" — the merchant {stack.merchant.id}"
    )
    after = await stack.order(buyer, order["id"])
    assert (after["status"], after["packages"][0]["tracking_no"]) == ("SHIPPED", "SF1234567")
    assert after["packages"][0]["carrier"] == "ZTO"

    # ... and it is in SHIPPED, no longer among the unshipped
    await page.goto(f"{stack.base_url}/console/orders?buyer_id={buyer.id}&status=SHIPPED")
    assert await rows.evaluate_all("rs => rs.map(r => r.dataset.order)") == [order["id"]]
    await page.goto(f"{stack.base_url}/console/orders?buyer_id={buyer.id}&unshipped_hours=0")
    assert await rows.count() == 0
    await page.goto(f"{stack.base_url}/console/orders?buyer_id={buyer.id}")
    found = await rows.evaluate_all("rs => rs.map(r => r.dataset.order)")
    assert found == [unpaid["id"], order["id"]]  # newest first
    link = page.locator("a", has_text="Workflow in the Temporal Web UI")
    await page.goto(f"{stack.base_url}/console/orders/{order['id']}")
    assert (await link.get_attribute("href") or "").endswith(f"/workflows/order-{order['id']}")


# ---- every action, refused -----------------------------------------------------------------


class World:
    """One order or case for each action the console offers."""

    def __init__(self, buyer: User) -> None:
        self.buyer = buyer
        self.orders: dict[str, Json] = {}
        self.cases: dict[str, Json] = {}
        self.case_order: Json = {}  # the cases' order: it offers no action of its own


async def _gateway_paid(stack: Stack, buyer: User, sku: str, quantity: int) -> Json:
    order = await stack.placed(buyer, [(sku, quantity)])
    path = f"/orders/{order['id']}/payment-intents"
    intent = ok(await stack.act(buyer, path, {"channel": "alipay"}), 201)
    ok(await stack.http.post(intent["pay_url"]))  # the buyer pays on the sandbox's page
    return await stack.wait_order(
        buyer, order["id"], lambda o: o["status"] == "PENDING_SHIPMENT", "the payment"
    )


@pytest.fixture(scope="module")
async def world(stack: Stack) -> World:
    w = World(stack.buyer())
    buyer, merchant = w.buyer, stack.merchant
    sku = await stack.put_sku({"WH-A": 50}, price_cents=2000)
    w.orders["close"] = await stack.placed(buyer, [(sku, 1)])
    w.orders["ship"] = await stack.paid(buyer, [(sku, 1)])
    asked = await stack.paid(buyer, [(sku, 2)])
    lines = {"lines": [{"sku": sku, "quantity": 1}]}
    ok(await stack.act(buyer, f"/orders/{asked['id']}/refunds", lines), 201)
    w.orders["decide"] = await stack.order(buyer, asked["id"])

    # a refund the gateway refuses for good: FAILED, for an admin to retry
    failing = await _gateway_paid(stack, buyer, sku, 1)
    request = ok(await stack.act(buyer, f"/orders/{failing['id']}/refunds", lines), 201)
    ok(await stack.gateway("POST", "/v1/_faults", json={"refuse_next_refunds": 1}))
    ok(await stack.act(merchant, f"/orders/{failing['id']}/refunds/{request['id']}/agree"))
    w.orders["retry"] = await stack.wait_order(
        buyer,
        failing["id"],
        lambda o: any(r["status"] == "FAILED" for r in o["refunds"]),
        "the refused refund",
    )

    rejected = await stack.ship(await stack.paid(buyer, [(sku, 1)]))
    ok(await stack.carrier_event(rejected["packages"][0], "REJECTED"))
    w.orders["return"] = await stack.wait_order(
        buyer, rejected["id"], lambda o: o["packages"][0]["status"] == "REJECTED", "the rejection"
    )

    a, b, c = [await stack.put_sku({"WH-A": 5}, price_cents=1000) for _ in range(3)]
    got = await shipped(stack, buyer, [(a, 1), (b, 1), (c, 1)])
    ok(await stack.act(buyer, f"/orders/{got['id']}/confirm-receipt", {}))
    png = [("broken.png", PNG, "image/png")]
    opened = await open_case(stack, buyer, got["id"], form("REFUND_ONLY", [(a, 1)]), png)
    w.cases["agree"] = ok(opened, 201)
    back = ok(await open_case(stack, buyer, got["id"], form("RETURN_AND_REFUND", [(b, 1)])), 201)
    back = ok(await case_act(stack, merchant, back, "agree"))
    w.cases["confirm-return"] = ok(
        await case_act(stack, buyer, back, "return-shipment", carrier="SF", tracking_no="RT9")
    )
    ruled = ok(await open_case(stack, buyer, got["id"], form("REFUND_ONLY", [(c, 1)])), 201)
    ruled = ok(await case_act(stack, merchant, ruled, "reject", reason="worn"))
    w.cases["rule"] = ok(await case_act(stack, buyer, ruled, "escalate"))
    w.case_order = await stack.order(buyer, got["id"])
    return w


async def _versions(stack: Stack, w: World) -> dict[str, int]:
    out = {}
    for key, order in {**w.orders, "cases": w.case_order}.items():
        out[f"order:{key}"] = (await stack.order(w.buyer, order["id"]))["version"]
    for key, case in w.cases.items():
        got = ok(await stack.http.get(f"/after-sales/{case['id']}", headers=w.buyer.headers))
        out[f"case:{key}"] = got["version"]
    return out


def _pages(stack: Stack, w: World) -> list[str]:
    return [f"{stack.base_url}/console/orders/{o['id']}" for o in w.orders.values()] + [
        f"{stack.base_url}/console/after-sales/{c['id']}" for c in w.cases.values()
    ]


ACTION_FORMS = "main form[method=post]"  # the header's sign-out form is not an action


async def _submit(page: Page, index: int) -> Any:
    """Fill what the form requires and send it; the answer to the form's request."""
    form_ = page.locator(ACTION_FORMS).nth(index)
    for name, value in (("carrier", "SF"), ("tracking_no", "T1"), ("reason", "no")):
        field = form_.locator(f"input[name={name}]")
        if await field.count():
            await field.fill(value)
    if await form_.locator("input[name=amount]").count():
        await form_.locator("input[name=amount]").fill("1.00")
    async with page.expect_navigation() as navigation:
        await form_.locator("button[type=submit]").click()
    return await navigation.value


async def _session_of(context: BrowserContext) -> str:
    return next(c["value"] for c in await context.cookies() if c["name"] == "console_session")


async def test_every_action_is_refused_without_csrf_a_session_or_the_role(
    stack: Stack, world: World, context: BrowserContext
) -> None:
    before = await _versions(stack, world)
    await sign_in(stack, context, stack.merchant)
    merchant_cookie = session_cookie(stack, await _session_of(context))
    await context.clear_cookies()
    page = await sign_in(stack, context, stack.admin)
    admin_cookie = session_cookie(stack, await _session_of(context))
    token_cookie = session_cookie(stack, stack.admin.token)  # a token itself is no session
    seen: dict[str, int] = {}
    for url in _pages(stack, world):
        await page.goto(url)
        count = await page.locator(ACTION_FORMS).count()
        assert count > 0, f"{url} offers no action"
        for n in range(count):
            # the form without its CSRF token
            await page.goto(url)
            action = await page.locator(ACTION_FORMS).nth(n).get_attribute("action") or ""
            seen[action.rsplit("/", 1)[-1]] = seen.get(action.rsplit("/", 1)[-1], 0) + 1
            await (
                page.locator(ACTION_FORMS)
                .nth(n)
                .locator("input[name=csrf]")
                .evaluate("e => e.remove()")
            )
            answer = await _submit(page, n)
            assert answer.status == 403, action
            assert await page.locator(".error").inner_text() == (
                "the form carries no CSRF token: reload the page"
            )

            # the same form, with the admin's bearer token itself in the session cookie
            await page.goto(url)
            await context.add_cookies([token_cookie])
            answer = await _submit(page, n)
            await context.add_cookies([admin_cookie])
            assert answer.status == 401, action
            assert await page.locator(".error").inner_text() == "sign in to the console first"

            if action.endswith(("/retry", "/rule")):  # an admin's: a merchant's session
                await page.goto(url)
                await context.add_cookies([merchant_cookie])
                answer = await _submit(page, n)
                await context.add_cookies([admin_cookie])
                assert answer.status == 403, action
                assert await page.locator(".error").inner_text() == "this needs role admin"

    # each kind of action was offered (and refused); nothing changed anywhere
    assert set(seen) == {
        "close",
        "ship",
        "agree",
        "refuse",
        "retry",
        "return-received",
        "reject",
        "propose",
        "confirm-return",
        "rule",
    }
    assert await _versions(stack, world) == before


async def test_a_buyer_cannot_sign_in_or_read_the_console(
    stack: Stack, world: World, context: BrowserContext
) -> None:
    page = await sign_in(stack, context, world.buyer)
    assert await page.locator(".error").inner_text() == (
        "the console is for merchants and admins, not a buyer"
    )
    assert not [c for c in await context.cookies() if c["name"] == "console_session"]
    cookie = session_cookie(stack, world.buyer.token)  # a buyer's token is no session either
    await context.add_cookies([cookie])
    answer = await page.goto(f"{stack.base_url}/console/orders/{world.orders['ship']['id']}")
    assert answer is not None and answer.status == 200
    assert urlsplit(page.url).path == "/console/login"


async def _listed(page: Page, url: str, what: str = "order") -> list[str]:
    await page.goto(url)
    rows = page.locator(f"table.list tbody tr[data-{what}]")
    found: list[str] = await rows.evaluate_all(f"rs => rs.map(r => r.dataset.{what})")
    return found


async def test_operators_filters_and_the_after_sales_queue(
    stack: Stack, world: World, context: BrowserContext
) -> None:
    page = await sign_in(stack, context, stack.merchant)
    mine = f"{stack.base_url}/console/orders?buyer_id={world.buyer.id}"
    o, c = world.orders, world.cases
    assert await _listed(page, f"{mine}&refund_failed=1") == [o["retry"]["id"]]
    assert await _listed(page, f"{mine}&has_open_case=1") == [world.case_order["id"]]
    assert set(await _listed(page, f"{mine}&sub_status=REFUNDING")) == {
        o["decide"]["id"],
        world.case_order["id"],
    }
    assert await _listed(page, f"{mine}&status=PENDING_PAYMENT") == [o["close"]["id"]]
    # the status form, as an operator uses it
    await page.goto(mine)
    await page.click("details.more summary")  # the filters beyond search, sort and status
    await page.select_option("select[name=close_reason]", "FULLY_REFUNDED")
    await page.click("form.filters button[type=submit]")
    shown = await page.locator("#orders tbody tr[data-order]").evaluate_all(
        "rs => rs.map(r => r.dataset.order)"
    )
    assert set(shown) == {o["retry"]["id"], o["return"]["id"]}  # a failed refund counts too
    assert "close_reason=FULLY_REFUNDED" in page.url
    # dates are the operator's calendar days: today holds them all, yesterday none
    today = datetime.now(ZoneInfo(ZONE)).date()
    day = f"{mine}&placed_from={today}&placed_to={today}"
    assert len(await _listed(page, day)) == len(world.orders) + 1
    before = today - timedelta(days=1)  # placed_to is inclusive: up to the end of that day
    assert await _listed(page, f"{mine}&placed_to={before}") == []
    # bad input: the reason, and no list
    answer = await page.goto(f"{mine}&paid_from=yesterday")
    assert answer is not None and answer.status == 422
    assert await page.locator(".error").inner_text() == "Paid from: a date as YYYY-MM-DD"
    for far in ("0001-01-01", "9999-12-31"):  # would not convert to UTC: refused, not a 500
        answer = await page.goto(f"{mine}&placed_to={far}")
        assert answer is not None and answer.status == 422
        assert await page.locator(".error").inner_text() == "Placed to: a date from 1970 to 9998"
    answer = await page.goto(f"{mine}&status=LOST")
    assert answer is not None and answer.status == 422
    assert (await page.locator(".error").inner_text()).startswith("Status: one of PENDING_PAYMENT")
    # every refusal at once, each by its label; the form keeps what was typed
    answer = await page.goto(f"{mine}&status=LOST&paid_from=yesterday&unshipped_hours=x&q=kept")
    assert answer is not None and answer.status == 422
    said = (await page.locator(".error").inner_text()).split("; ")
    assert [s.split(":")[0] for s in said] == ["Status", "Paid from", "Paid more than"]
    assert await page.locator("#q").input_value() == "kept"
    assert await page.locator("input[name=buyer_id]").input_value() == world.buyer.id

    # the queue: the three open cases, the nearest deadline first, with their evidence
    queue = f"{stack.base_url}/console/after-sales?order_id={world.case_order['id']}"
    deadlines = sorted(  # none (a platform review waits on an admin): last
        c.values(), key=lambda x: (x["deadline"] is None, x["deadline"] or "", x["id"])
    )
    assert await _listed(page, queue, "case") == [x["id"] for x in deadlines]
    thumbs = page.locator(f"tr[data-case='{c['agree']['id']}'] td.thumbs img")
    assert await thumbs.count() == 1  # the queue shows the evidence too
    assert await _listed(page, f"{queue}&status=PLATFORM_REVIEW", "case") == [c["rule"]["id"]]
    await page.goto(f"{stack.base_url}/console/after-sales/{c['agree']['id']}")
    image = page.locator("p.images img")
    assert await image.count() == 1
    src = await image.get_attribute("src") or ""
    answer = await page.goto(f"{stack.base_url}{src}")
    assert answer is not None and answer.status == 200
    assert answer.headers["content-type"] == "image/png"


async def _act_on(page: Page, url: str, selector: str, **fields: str) -> str:
    await page.goto(url)
    form_ = page.locator(selector)
    for name, value in fields.items():
        if name == "decision":
            await form_.locator("select[name=decision]").select_option(value)
        else:
            await form_.locator(f"input[name={name}]").fill(value)
    await form_.locator("button[type=submit]").click()
    return await page.locator("main p").first.inner_text()


async def test_each_action_works_from_the_console_and_refusals_read_as_the_api(
    stack: Stack, world: World, context: BrowserContext
) -> None:
    page = await sign_in(stack, context, stack.admin)
    o, c, buyer = world.orders, world.cases, world.buyer
    orders_url = f"{stack.base_url}/console/orders"
    cases_url = f"{stack.base_url}/console/after-sales"

    # a refusal reads as the JSON API's: the case moved on since this page was loaded
    await page.goto(f"{cases_url}/{c['agree']['id']}")
    ok(await case_act(stack, stack.merchant, c["agree"], "propose", amount_cents=900))
    api = await case_act(stack, stack.merchant, c["agree"], "agree")
    await page.locator("form[data-action=agree] button").click()
    assert await page.locator(".error").inner_text() == api.json()["detail"]
    assert api.status_code == 409 and "reload it" in api.json()["detail"]

    assert await _act_on(page, f"{orders_url}/{o['close']['id']}", "#close-order") == (
        "Order closed: its stock is free again."
    )
    assert (await stack.order(buyer, o["close"]["id"]))["close_reason"] == "SELLER_CLOSED"

    request = o["decide"]["refund_requests"][0]["id"]
    url = f"{orders_url}/{o['decide']['id']}"
    assert await _act_on(page, url, f"article[data-request='{request}'] form.agree") == (
        "Refund request agreed: the money goes back and the goods are back on hand."
    )
    assert (await stack.order(buyer, o["decide"]["id"]))["refunded_cents"] == 2000

    refund = o["retry"]["refunds"][0]["id"]
    url = f"{orders_url}/{o['retry']['id']}"
    assert await _act_on(page, url, f"tr[data-refund='{refund}'] form.retry") == (
        "Refund sent again through its channel."
    )
    assert [r["status"] for r in (await stack.order(buyer, o["retry"]["id"]))["refunds"]] == [
        "SUCCEEDED"
    ]

    url = f"{orders_url}/{o['return']['id']}"
    assert await _act_on(page, url, "form.return") == (
        "Return received: the goods are back on hand."
    )
    assert (await stack.order(buyer, o["return"]["id"]))["packages"][0]["restocked"] is True

    # cases: confirm a return, rule for the buyer, propose in yuan (an admin may do the
    # merchant's part too)
    for key, selector, fields, said in (
        (
            "confirm-return",
            "form[data-action=confirm-return]",
            {},
            "Return received: the goods are back on hand.",
        ),
        (
            "rule",
            "form[data-action=rule]",
            {"decision": "BUYER", "reason": "photos agree"},
            "Ruling recorded: the case follows it.",
        ),
    ):
        done = await _act_on(page, f"{cases_url}/{c[key]['id']}", selector, **fields)
        assert done == said
        got = ok(await stack.http.get(f"/after-sales/{c[key]['id']}", headers=buyer.headers))
        assert got["status"] == "REFUNDED", key
    ruled = await page.locator("#timeline li[data-action='rule: buyer']").inner_text()
    assert f"the platform {stack.admin.id} ruled for the buyer" in ruled and "photos" in ruled


async def test_signing_in_returns_to_the_page_asked_for_and_only_to_the_console(
    stack: Stack, world: World, context: BrowserContext
) -> None:
    wanted = f"/orders/{world.orders['ship']['id']}"
    page = await sign_in(stack, context, stack.merchant, path=wanted)
    assert urlsplit(page.url).path == f"/console{wanted}"
    assert await page.locator("h1").inner_text() == f"Order {world.orders['ship']['id']}"
    await context.clear_cookies()
    for elsewhere in ("https://example.com/", "//example.com/console/", "/docs"):
        page = await context.new_page()
        await page.goto(f"{stack.base_url}/console/login?{urlencode({'next': elsewhere})}")
        await page.fill("textarea[name=token]", stack.merchant.token)
        await page.click("button[type=submit]")
        assert page.url == f"{stack.base_url}/console/orders", elsewhere
        await context.clear_cookies()


# ---- sessions: server-side, ended by signing out, by an admin, and by idleness -------------


async def _lands_on(page: Page, url: str) -> str:
    await page.goto(url)
    return urlsplit(page.url).path


async def test_a_console_session_ends_on_sign_out_by_an_admin_and_when_idle(
    stack: Stack, browser: Browser, context: BrowserContext
) -> None:
    merchant = stack.user(f"m-sessions-{uuid.uuid4().hex[:6]}", Role.MERCHANT)
    orders = f"{stack.base_url}/console/orders"

    # signing out ends the session itself: its cookie, kept and sent again, opens nothing
    page = await sign_in(stack, context, merchant)
    kept = session_cookie(stack, await _session_of(context))
    assert len(kept["value"]) == 43 and "." not in kept["value"]  # opaque, not a JWT
    await page.click("form[action='/console/logout'] button")
    await context.add_cookies([kept])
    assert await _lands_on(page, orders) == "/console/login"

    # an admin ends every session of a user: two browsers signed in, both sent to sign in
    other = await browser.new_context()
    try:
        pages = [await sign_in(stack, ctx, merchant) for ctx in (context, other)]
        assert [await _lands_on(p, orders) for p in pages] == ["/console/orders"] * 2
        path = f"/admin/users/{merchant.id}/console-sessions"
        expect_problem(await stack.http.delete(path, headers=merchant.headers), 403, "FORBIDDEN")
        ended = ok(await stack.http.delete(path, headers=stack.admin.headers))
        assert ended == {"user_id": merchant.id, "ended": 2}
        assert [await _lands_on(p, orders) for p in pages] == ["/console/login"] * 2
        assert ok(await stack.http.delete(path, headers=stack.admin.headers))["ended"] == 0
    finally:
        await other.close()

    # idle: used 11 h ago it lives on (and is renewed); 12 h unused it has ended
    page = await sign_in(stack, context, merchant)
    key = hashlib.sha256((await _session_of(context)).encode()).hexdigest()
    idle = stack.settings.console_session_seconds
    db = Database(stack.settings.database_url)
    try:

        async def last_used(seconds_ago: int) -> None:
            async with db.transaction() as tx:
                row = await tx.get(ConsoleSessionRow, key)
                assert row is not None
                row.last_seen_at = datetime.now(UTC) - timedelta(seconds=seconds_ago)

        await last_used(idle - 3600)
        assert await _lands_on(page, orders) == "/console/orders"
        async with db.sessions() as session:
            row = await session.get(ConsoleSessionRow, key)
            assert row is not None
            assert row.last_seen_at > datetime.now(UTC) - timedelta(minutes=1)  # renewed
        await last_used(idle + 1)
        assert await _lands_on(page, orders) == "/console/login"
    finally:
        await db.dispose()


async def test_a_shops_merchant_sees_its_shop_and_an_admin_picks_one(
    stack: Stack, context: BrowserContext, browser: Browser
) -> None:
    """A merchant's console names its shop and lists its shop's orders only; its settlement
    page shows the period's money and downloads it; an admin filters by shop."""
    shop_id, merchant = await stack.shop()
    sku = await stack.put_sku({"WH-A": 5}, price_cents=1200, merchant=merchant)
    buyer = stack.buyer()
    ours = await stack.paid(buyer, [(sku, 2)])
    theirs = await stack.paid(buyer, [(await stack.put_sku({"WH-A": 5}), 1)])  # default's

    page = await sign_in(stack, context, merchant, path=f"/orders?buyer_id={buyer.id}")
    assert await page.text_content("header .shop") == f"Shop {shop_id}"
    rows = await page.eval_on_selector_all(
        "#orders tbody tr[data-order]", "rs => rs.map(r => r.dataset.order)"
    )
    assert rows == [ours["id"]]
    assert await page.query_selector("select[name=shop_id]") is None  # its own shop only
    # another shop's order page is not found
    answer = await page.goto(f"{stack.base_url}/console/orders/{theirs['id']}")
    assert answer is not None and answer.status == 404

    await page.goto(f"{stack.base_url}/console/settlement")
    cells = await page.eval_on_selector_all(
        "#settlement td", "cs => cs.map(c => c.dataset.cents || c.dataset.count)"
    )
    assert cells == ["2400", "0", "2400", "1"]
    async with page.expect_download() as info:
        await page.click("a[download]")
    download = await info.value
    text = Path(await download.path()).read_text()
    assert text.splitlines() == [
        "order_id,paid_cents,refunded_cents,net_cents",
        f"{ours['id']},2400,0,2400",
        "TOTAL,2400,0,2400",
    ]

    admins = await browser.new_context()
    admin = await sign_in(stack, admins, stack.admin, path=f"/orders?buyer_id={buyer.id}")
    listed = await admin.eval_on_selector_all(
        "#orders tbody tr[data-order]", "rs => rs.map(r => r.dataset.order)"
    )
    assert set(listed) == {ours["id"], theirs["id"]}
    await admin.select_option("select[name=shop_id]", shop_id)
    await admin.click("form.filters button[type=submit]")
    listed = await admin.eval_on_selector_all(
        "#orders tbody tr[data-order]", "rs => rs.map(r => r.dataset.order)"
    )
    assert listed == [ours["id"]]
    assert await admin.text_content(f"tr[data-order='{ours['id']}'] td.shop") == f"Shop {shop_id}"
    await admins.close()
