"""The merchant and admin console, driven in headless Chromium (Debian's package, started by
Playwright from /usr/bin/chromium; no browser is downloaded) against the session's API."""

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.e2e.harness import Stack, User

pytestmark = pytest.mark.e2e
CHROMIUM = Path("/usr/bin/chromium")
ZONE = "Asia/Shanghai"
QUIET = [  # no sandbox as root; nothing reaches out to the network on its own
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium package: make setup installs it"
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=QUIET)
        yield chromium
        await chromium.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context()
    ctx.set_default_timeout(30_000)
    yield ctx
    await ctx.close()


async def sign_in(stack: Stack, ctx: BrowserContext, user: User, zone: str = ZONE) -> Page:
    page = await ctx.new_page()
    await page.goto(f"{stack.base_url}/console")
    assert page.url.endswith("/console/login")  # no session yet: the sign-in page
    await page.fill("textarea[name=token]", user.token)
    await page.fill("input[name=zone]", zone)
    await page.click("button[type=submit]")
    return page


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
    assert await row.locator("td").nth(6).inner_text() == local(order["created_at"])
    assert await row.locator("td").nth(7).inner_text() == local(order["payment"]["paid_at"])

    # ship it
    await row.locator("a").click()
    assert await page.locator("#status").inner_text() == "PENDING_SHIPMENT"
    package = order["packages"][0]["id"]
    ship = page.locator(f"article[data-package='{package}'] form.ship")
    await ship.locator("input[name=carrier]").fill("SF")
    await ship.locator("input[name=tracking_no]").fill("SF1234567")
    await ship.locator("button").click()
    assert await page.locator(".notice").inner_text() == "Package shipped."
    assert await page.locator("#status").inner_text() == "SHIPPED"
    assert await page.locator(f"article[data-package='{package}'] form.ship").count() == 0
    assert "SHIPPED" in await page.locator("#timeline").inner_text()
    after = await stack.order(buyer, order["id"])
    assert (after["status"], after["packages"][0]["tracking_no"]) == ("SHIPPED", "SF1234567")

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
