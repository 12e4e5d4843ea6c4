"""The console as people read it, in headless Chromium (Debian's package): its words in
Chinese and English, the counts that call for work, and its main pages at a desktop's 1366
px and a phone's 390 px without scrolling sideways (screenshots of each are kept: with
CONSOLE_SCREENSHOTS=<dir>, there; the README's come from such a run)."""

import os
import struct
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page
from sqlalchemy import update

from store.db import Database
from store.tables import OrderRow
from tests.e2e.harness import Json, Stack, ok
from tests.e2e.test_e2e_after_sales import case_act, form, open_case
from tests.e2e.test_e2e_console import sign_in

pytestmark = pytest.mark.e2e
WIDTHS = (1366, 390)


def photo(width: int = 96, height: int = 64) -> bytes:
    """A real PNG (a cracked lid's stand-in: a gradient) for the evidence the pages show."""
    rows = b"".join(
        b"\x00" + bytes(c for x in range(width) for c in (200, 120 + x, 60 + y))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def _shop_day(stack: Stack) -> tuple[str, Json, Json, Json, object]:
    """A new shop with a paid order to ship, a shipped one, and an exchange case on it."""
    shop_id, merchant = await stack.shop()
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 9}, price_cents=12_800, merchant=merchant)
    waiting = await stack.paid(buyer, [(sku, 2)])
    sent = await stack.ship(await stack.paid(buyer, [(sku, 1)]), merchant=merchant)
    png = [("photo.png", photo(), "image/png")]
    case = ok(await open_case(stack, buyer, sent["id"], form("EXCHANGE", [(sku, 1)]), png), 201)
    return shop_id, waiting, sent, case, merchant


async def _counts(page: Page) -> dict[str, int]:
    out = {}
    for link in await page.locator("#waiting a").all():
        out[await link.get_attribute("data-count") or ""] = int(
            await link.locator("b").inner_text()
        )
    return out


async def test_the_console_in_chinese_and_the_counts_that_call_for_work(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    shop_id, waiting, sent, case, merchant = await _shop_day(stack)
    chinese = await browser.new_context(
        locale="zh-CN", extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9"}
    )
    try:
        page = await sign_in(stack, chinese, merchant)  # type: ignore[arg-type]
        assert await page.locator("html").get_attribute("lang") == "zh-CN"
        assert await page.locator("h1").inner_text() == "订单"
        row = page.locator(f"#orders tr[data-order='{waiting['id']}'] td.status")
        assert (await row.get_attribute("data-status"), await row.inner_text()) == (
            "PENDING_SHIPMENT",
            "待发货",
        )
        assert await page.locator("header nav a").all_inner_texts() == ["订单", "售后队列", "结算"]
        kept = Path(os.environ.get("CONSOLE_SCREENSHOTS", tmp_path))
        kept.mkdir(parents=True, exist_ok=True)
        await page.set_viewport_size({"width": 1366, "height": 900})
        await page.screenshot(path=str(kept / "console-orders-zh-1366.png"))
        # what waits: the exchange case; nothing paid a day ago yet; no failed refund
        assert await _counts(page) == {"cases": 1, "unshipped": 0, "failed-refunds": 0}
        db = Database(stack.settings.database_url)
        try:
            async with db.transaction() as tx:  # as if paid two days ago
                two_days = datetime.now(UTC) - timedelta(days=2)
                await tx.execute(
                    update(OrderRow).where(OrderRow.id == waiting["id"]).values(paid_at=two_days)
                )
        finally:
            await db.dispose()
        await page.reload()
        assert await _counts(page) == {"cases": 1, "unshipped": 1, "failed-refunds": 0}
        await page.click("#waiting a[data-count=unshipped]")
        listed = await page.locator("#orders tr[data-order]").evaluate_all(
            "rs => rs.map(r => r.dataset.order)"
        )
        assert listed == [waiting["id"]]

        # the case page: labels, a sentence per step, forms with legends
        await page.goto(f"{stack.base_url}/console/after-sales/{case['id']}")
        assert await page.locator("#status").inner_text() == "待商家处理"
        deadline = await page.locator("dl.facts").inner_text()
        assert "届时 自动同意" in deadline
        shown = await page.locator("p.images img").evaluate("i => i.naturalWidth")
        assert shown == 96  # the evidence image itself, served to the case's merchant
        legends = await page.locator("form.case-action legend").all_inner_texts()
        assert legends == ["同意售后", "拒绝售后"]
        assert "发起售后" in await page.locator("#timeline").inner_text()

        # the order page: the timeline as sentences in the operator's zone, money in yuan
        await page.goto(f"{stack.base_url}/console/orders/{sent['id']}")
        paid = await page.locator("#timeline li[data-event=PAID]").inner_text()
        assert "支付 ¥136.00" in paid or "支付 ¥128.00" in paid, paid
        # switched to English: the choice is kept
        await page.click("#lang-switch")
        assert await page.locator("#status").inner_text() == "Shipped"
        await page.goto(f"{stack.base_url}/console/orders")
        assert await page.locator("h1").inner_text() == "Orders"
        assert (await page.locator("#waiting a[data-count=cases]").inner_text()).endswith(
            "cases wait for you"
        )
    finally:
        await chinese.close()
    # the merchant of another shop counts none of these
    assert shop_id


async def _no_sideways_scroll(page: Page) -> tuple[int, int]:
    sizes = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return int(sizes[0]), int(sizes[1])


async def test_the_main_pages_fit_a_desktop_and_a_phone(
    stack: Stack, context: BrowserContext, tmp_path: Path
) -> None:
    _, waiting, sent, case, merchant = await _shop_day(stack)
    kept = Path(os.environ.get("CONSOLE_SCREENSHOTS", tmp_path))
    kept.mkdir(parents=True, exist_ok=True)
    page = await sign_in(stack, context, merchant)  # type: ignore[arg-type]
    pages = {
        "orders": "/console/orders",
        "order": f"/console/orders/{waiting['id']}",
        "case": f"/console/after-sales/{case['id']}",
        "queue": "/console/after-sales",
        "settlement": "/console/settlement",
    }
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        for name, path in pages.items():
            await page.goto(f"{stack.base_url}{path}")
            scroll, inner = await _no_sideways_scroll(page)
            shot = kept / f"console-{name}-{width}.png"
            await page.screenshot(path=str(shot), full_page=width > 400)
            assert shot.stat().st_size > 10_000, shot
            assert scroll <= inner, f"{path} at {width} px is {scroll} px wide"
        # the search box is on every list at hand: "/" from anywhere on the page
        await page.goto(f"{stack.base_url}/console/orders")
        await page.keyboard.press("/")
        assert await page.evaluate("document.activeElement.id") == "q"
    # the phone's header fits on three lines at most
    await page.set_viewport_size({"width": 390, "height": 900})
    await page.goto(f"{stack.base_url}/console/orders/{sent['id']}")
    header = await page.locator("header").bounding_box()
    assert header is not None and header["height"] < 150, header
    # a case's action forms each say what they do
    await page.goto(f"{stack.base_url}/console/after-sales/{case['id']}")
    for form_ in await page.locator("form.case-action").all():
        assert await form_.locator("legend").inner_text()
    agree = ok(await case_act(stack, merchant, case, "agree"))  # type: ignore[arg-type]
    assert agree["status"] == "WAIT_BUYER_RETURN"
