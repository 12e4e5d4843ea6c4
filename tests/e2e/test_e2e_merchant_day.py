"""A merchant's day in volume: find any order from one search box, sort and count the list,
export it as CSV, and ship many packages from one CSV, over the API and in the console
(headless Chromium, Debian's package)."""

import csv
import io
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.async_api import BrowserContext

from tests.e2e.harness import Json, Stack, User, expect_problem, ok, uid
from tests.e2e.test_e2e_after_sales import case_act, form, open_case, shipped
from tests.e2e.test_e2e_console import sign_in

pytestmark = pytest.mark.e2e
HEADER = "order_id,package_id,carrier,tracking_no"


async def _list(stack: Stack, user: User, **query: object) -> Json:
    data: Json = ok(await stack.http.get(f"/orders?{urlencode(query)}", headers=user.headers))
    return data


def _ids(page: Json) -> list[str]:
    return [o["id"] for o in page["items"]]


async def test_one_search_finds_an_order_by_id_buyer_sku_or_tracking_number(stack: Stack) -> None:
    buyer = stack.buyer()
    tea, cup = await stack.put_sku({"WH-A": 10}, price_cents=500), await stack.put_sku({"WH-A": 10})
    first = await stack.paid(buyer, [(tea, 1)])
    second = await stack.paid(buyer, [(cup, 2), (tea, 1)])
    shipped = await stack.ship(second)
    tracking = shipped["packages"][0]["tracking_no"]
    m = stack.merchant

    assert _ids(await _list(stack, m, q=first["id"][:6], buyer_id=buyer.id)) == [first["id"]]
    assert _ids(await _list(stack, m, q=first["id"][:8].upper())) == [first["id"]]
    assert _ids(await _list(stack, m, q=buyer.id[:-2])) == [second["id"], first["id"]]
    assert _ids(await _list(stack, m, q=tea.lower())) == [second["id"], first["id"]]
    assert _ids(await _list(stack, m, q=cup)) == [second["id"]]
    assert _ids(await _list(stack, m, q=tracking)) == [second["id"]]
    assert (await _list(stack, m, q=cup))["total"] == 1
    # a buyer searches their own orders only; another buyer's id finds nothing of theirs
    assert _ids(await _list(stack, buyer, q=tea)) == [second["id"], first["id"]]
    assert _ids(await _list(stack, stack.buyer(), q=tea)) == []
    # sorted by total, both ways, with the total count on every page
    by_total = await _list(stack, m, buyer_id=buyer.id, sort="total", limit=1)
    assert (_ids(by_total), by_total["total"]) == ([first["id"]], 2)
    after = await _list(stack, m, buyer_id=buyer.id, sort="total", cursor=by_total["next_cursor"])
    assert (_ids(after), after["next_cursor"], after["total"]) == ([second["id"]], None, 2)
    assert _ids(await _list(stack, m, buyer_id=buyer.id, sort="-total")) == [
        second["id"],
        first["id"],
    ]
    # refused, with the reason
    for query, reason in (
        ({"sort": "price"}, "sort"),
        ({"q": "x" * 101}, "q"),
        ({"q": "a\x01b"}, "q"),
        ({"sort": "total", "cursor": by_total["next_cursor"] + "x"}, "cursor"),
    ):
        problem = expect_problem(
            await stack.http.get(f"/orders?{urlencode(query)}", headers=m.headers),
            422,
            "VALIDATION",
        )
        assert reason in problem["detail"], (query, problem)


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_the_export_streams_the_lists_orders_as_csv(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 10}, price_cents=700)
    paid = await stack.paid(buyer, [(sku, 2)])
    unpaid = await stack.placed(buyer, [(sku, 1)])
    answer = await stack.http.get(
        f"/orders/export.csv?buyer_id={buyer.id}", headers=stack.merchant.headers
    )
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == 'attachment; filename="orders.csv"'
    rows = _csv(answer.text)
    assert [r["id"] for r in rows] == [unpaid["id"], paid["id"]]
    assert rows[1] == {
        "id": paid["id"],
        "shop_id": "default",
        "buyer_id": buyer.id,
        "status": "PENDING_SHIPMENT",
        "sub_statuses": "",
        "total_cents": str(paid["total_cents"]),
        "paid_cents": str(paid["total_cents"]),
        "refunded_cents": "0",
        "created_at": paid["created_at"].replace("+00:00", "Z"),
        "paid_at": paid["payment"]["paid_at"].replace("+00:00", "Z"),
    }
    assert (rows[0]["status"], rows[0]["paid_cents"], rows[0]["paid_at"]) == (
        "PENDING_PAYMENT",
        "0",
        "",
    )
    only_paid = await stack.http.get(
        f"/orders/export.csv?buyer_id={buyer.id}&status=PENDING_SHIPMENT",
        headers=stack.admin.headers,
    )
    assert [r["id"] for r in _csv(only_paid.text)] == [paid["id"]]
    # a buyer exports nothing; another shop's merchant sees none of these
    expect_problem(
        await stack.http.get("/orders/export.csv", headers=buyer.headers), 403, "FORBIDDEN"
    )
    _, other = await stack.shop()
    elsewhere = await stack.http.get(
        f"/orders/export.csv?buyer_id={buyer.id}", headers=other.headers
    )
    assert _csv(elsewhere.text) == []
    expect_problem(
        await stack.http.get("/orders/export.csv?colour=red", headers=stack.admin.headers),
        422,
        "VALIDATION",
    )


async def _ship_batch(stack: Stack, user: User, body: str, kind: str = "text/csv") -> Json:
    answer = await stack.http.post(
        "/packages/ship-batch",
        content=body.encode(),
        headers={**user.headers, "Content-Type": kind},
    )
    data: Json = ok(answer)
    return data


async def test_a_csv_ships_each_row_alone_and_twice_ships_nothing_twice(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 10})
    a, b, c = [await stack.paid(buyer, [(sku, 1)]) for _ in range(3)]
    unpaid = await stack.placed(buyer, [(sku, 1)])
    pa, pb, pc = (o["packages"][0]["id"] for o in (a, b, c))
    ta, tb = uid("TA").upper(), uid("TB").upper()
    sheet = "\n".join(
        [
            HEADER,
            f"{a['id']},{pa},sf,{ta}",  # any case: stored SF
            f"{b['id']},{pb},UPSX,{tb}",  # an unknown carrier: this row alone
            f"{c['id']},{pc},ZTO",  # a field missing
            f"{unpaid['id']},{unpaid['id']}-P1,SF,{uid('X')}",  # nothing to ship yet
            f"no-such-order,{pa},SF,{uid('X')}",
        ]
    )
    results = (await _ship_batch(stack, stack.merchant, sheet))["results"]
    assert [(r["order_id"], r["status"]) for r in results] == [
        (a["id"], "SHIPPED"),
        (b["id"], "REFUSED"),
        (c["id"], "REFUSED"),
        (unpaid["id"], "REFUSED"),
        ("no-such-order", "REFUSED"),
    ]
    assert "UPSX" in results[1]["detail"] and "SF, ZTO" in results[1]["detail"]
    assert results[2]["detail"] == "row 3: 4 fields, not 3"
    assert results[3]["code"] == "INVALID_TRANSITION"
    assert results[4]["code"] == "NOT_FOUND"
    shipped = await stack.order(buyer, a["id"])
    assert (shipped["packages"][0]["carrier"], shipped["packages"][0]["tracking_no"]) == ("SF", ta)
    for order in (b, c):
        assert (await stack.order(buyer, order["id"]))["status"] == "PENDING_SHIPMENT"

    # the fixed sheet sent again (with a BOM, as spreadsheets save it): a ships nothing twice
    fixed = "\ufeff" + "\r\n".join(
        [HEADER, f"{a['id']},{pa},SF,{ta}", f"{b['id']},{pb},YTO,{tb}", f"{c['id']},{pc},JD,{tb}x"]
    )
    again = (await _ship_batch(stack, stack.merchant, fixed))["results"]
    assert [(r["status"], r["detail"]) for r in again] == [
        ("SHIPPED", "already shipped with this tracking number"),
        ("SHIPPED", "shipped"),
        ("SHIPPED", "shipped"),
    ]
    events = [e["type"] for e in await stack.events(buyer, a["id"])]
    assert events.count("PACKAGE_SHIPPED") == 1
    # ... but another tracking number for a shipped package is refused
    other = await _ship_batch(stack, stack.merchant, f"{HEADER}\n{a['id']},{pa},SF,{uid('N')}")
    assert other["results"][0]["status"] == "REFUSED"

    # the file as a whole: refused, nothing shipped
    d = await stack.paid(buyer, [(sku, 1)])
    row = f"{d['id']},{d['packages'][0]['id']},SF,{uid('D')}"
    for body, kind, status in (
        (f"order,package,carrier,tracking\n{row}", "text/csv", 422),
        (HEADER, "text/csv", 422),
        (HEADER + f"\n{row}" * 1001, "text/csv", 422),
        (f"{HEADER}\n{row}", "application/json", 415),
        (HEADER.encode("utf-16").decode("latin-1"), "text/csv", 422),  # not UTF-8 text
    ):
        answer = await stack.http.post(
            "/packages/ship-batch",
            content=body.encode(),
            headers={**stack.merchant.headers, "Content-Type": kind},
        )
        assert answer.status_code == status, (body[:40], answer.text)
    nul = (await _ship_batch(stack, stack.merchant, f"{HEADER}\n{d['id']}\x00,p,SF,T"))["results"]
    assert (nul[0]["status"], nul[0]["detail"]) == (
        "REFUSED",
        "order_id: no NUL or control characters",
    )  # a bad row alone, even one with a NUL
    expect_problem(
        await stack.http.post(
            "/packages/ship-batch",
            content=f"{HEADER}\n{row}".encode(),
            headers={**buyer.headers, "Content-Type": "text/csv"},
        ),
        403,
        "FORBIDDEN",
    )
    # another shop's merchant: the row is refused as if the order were not there
    _, other_merchant = await stack.shop()
    theirs = (await _ship_batch(stack, other_merchant, f"{HEADER}\n{row}"))["results"]
    assert (theirs[0]["status"], theirs[0]["code"]) == ("REFUSED", "NOT_FOUND")
    assert (await stack.order(buyer, d["id"]))["status"] == "PENDING_SHIPMENT"


async def test_the_console_searches_exports_and_ships_from_a_sheet(
    stack: Stack, context: BrowserContext, tmp_path: Path
) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 10})
    a, b = await stack.paid(buyer, [(sku, 1)]), await stack.paid(buyer, [(sku, 2)])
    page = await sign_in(stack, context, stack.merchant)
    await page.wait_for_selector("#q")

    # "/" jumps to the search box; an id prefix finds the order
    await page.keyboard.press("/")
    assert await page.evaluate("document.activeElement.id") == "q"
    await page.keyboard.type(a["id"][:8])
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/console/orders?**")
    rows = page.locator("#orders tbody tr[data-order]")
    assert await rows.evaluate_all("rs => rs.map(r => r.dataset.order)") == [a["id"]]
    assert (await page.locator("#total").inner_text()).startswith("1 order,")

    # this buyer's orders, largest total first; export them
    await page.fill("#q", buyer.id)
    await page.select_option("select[name=sort]", "-total")
    await page.click("form.filters button[type=submit]")
    assert await rows.evaluate_all("rs => rs.map(r => r.dataset.order)") == [b["id"], a["id"]]
    async with page.expect_download() as download:
        await page.click("#total a")
    exported = tmp_path / "orders.csv"
    await (await download.value).save_as(exported)
    assert [r["id"] for r in _csv(exported.read_text())] == [b["id"], a["id"]]

    # select both: their packing slips, and their shipping sheet
    for order in (a, b):
        await page.check(f"input[name=order][value='{order['id']}']")
    async with context.expect_page() as slips_page:
        await page.click("button[formaction='/console/packing-slips']")
    slips = await slips_page.value
    await slips.wait_for_load_state()
    shown = await slips.locator("section.slip").evaluate_all("s => s.map(x => x.dataset.order)")
    assert sorted(shown) == sorted([a["id"], b["id"]])
    slip_b = slips.locator(f"section.slip[data-order='{b['id']}']")
    assert "Li Lei" in await slip_b.inner_text()
    assert await slip_b.locator("tbody td").nth(2).inner_text() == "2"
    await slips.close()
    async with page.expect_download() as download:
        await page.click("button[formaction='/console/orders/ship-sheet.csv']")
    sheet = tmp_path / "sheet.csv"
    await (await download.value).save_as(sheet)
    blank = _csv(sheet.read_text())
    assert sorted((r["order_id"], r["carrier"], r["tracking_no"]) for r in blank) == sorted(
        [(a["id"], "", ""), (b["id"], "", "")]
    )

    # fill it in (one row wrong) and upload it
    tracking = {a["id"]: uid("SF").upper(), b["id"]: uid("ZT").upper()}
    for r in blank:
        r["carrier"] = "sf" if r["order_id"] == a["id"] else "NOPE"
        r["tracking_no"] = tracking[r["order_id"]]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HEADER.split(","))
    writer.writeheader()
    writer.writerows(blank)
    sheet.write_text(out.getvalue())
    await page.set_input_files("input[name=sheet]", str(sheet))
    await page.click("#bulk-ship button[type=submit]")
    summary = page.locator("#summary")
    assert (
        await summary.get_attribute("data-shipped"),
        await summary.get_attribute("data-rows"),
    ) == ("1", "2")
    assert (await summary.inner_text()).startswith("1 / 2 rows shipped; the others were refused")
    result = {
        await r.get_attribute("class"): await r.inner_text()
        for r in await page.locator("#results tbody tr").all()
    }
    assert a["id"] in (result["shipped"] or "") and "NOPE" in (result["refused"] or "")
    assert (await stack.order(buyer, a["id"]))["packages"][0]["carrier"] == "SF"
    assert (await stack.order(buyer, b["id"]))["status"] == "PENDING_SHIPMENT"


async def test_an_exchange_from_open_to_exchanged_in_the_console(
    stack: Stack, context: BrowserContext
) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5})
    order = await shipped(stack, buyer, [(sku, 1)])
    case = ok(await open_case(stack, buyer, order["id"], form("EXCHANGE", [(sku, 1)])), 201)
    assert (case["type"], case["status"]) == ("EXCHANGE", "WAIT_SELLER_AGREE")
    page = await sign_in(stack, context, stack.merchant, path=f"/after-sales/{case['id']}")
    offered = await page.locator("form.case-action").evaluate_all(
        "fs => fs.map(f => f.dataset.action)"
    )
    assert offered == ["agree", "reject"]  # no proposal of money in an exchange

    async def merchant_does(action: str, **fields: str) -> str:
        await page.goto(f"{stack.base_url}/console/after-sales/{case['id']}")
        form_ = page.locator(f"form[data-action='{action}']")
        for name, value in fields.items():
            field = form_.locator(f"[name={name}]")
            if await field.evaluate("e => e.tagName") == "SELECT":
                await field.select_option(value)
            else:
                await field.fill(value)
        await form_.locator("button[type=submit]").click()
        return await page.locator("#status").get_attribute("data-status") or ""

    assert await merchant_does("agree") == "WAIT_BUYER_RETURN"
    case = await stack_case(stack, buyer, case["id"])
    ok(await case_act(stack, buyer, case, "return-shipment", carrier="YTO", tracking_no="YT1"))
    assert await merchant_does("confirm-return") == "WAIT_SELLER_RESHIP"
    assert await stack.stock(sku) == {"WH-A": (5, 0)}  # the returned unit is back on hand

    # out of stock: refused, the form keeps what was typed, nothing taken
    ok(
        await stack.http.put(
            f"/skus/{sku}/stock/WH-A", json={"on_hand": 0}, headers=stack.merchant.headers
        )
    )
    tracking = uid("JD").upper()
    assert await merchant_does("reship", carrier="JD", tracking_no=tracking) == "WAIT_SELLER_RESHIP"
    assert "0 free at WH-A" in await page.locator(".error").inner_text()
    reship = page.locator("form[data-action='reship']")
    assert await reship.locator("select[name=carrier]").input_value() == "JD"
    assert await reship.locator("input[name=tracking_no]").input_value() == tracking
    ok(
        await stack.http.put(
            f"/skus/{sku}/stock/WH-A", json={"on_hand": 3}, headers=stack.merchant.headers
        )
    )
    await reship.locator("button[type=submit]").click()
    assert await page.locator("#status").get_attribute("data-status") == "WAIT_BUYER_RECEIVE"
    replacement = f"{case['id']}-R1"
    assert replacement in await page.locator("#replacements").inner_text()
    assert await stack.stock(sku) == {"WH-A": (2, 0)}

    # the order page shows the replacement package; the buyer confirms it arrived
    await page.click("#replacements a")
    flag = page.locator(f"article[data-package='{replacement}'] .replacement")
    assert case["id"] in await flag.inner_text()
    case = await stack_case(stack, buyer, case["id"])
    done = ok(await case_act(stack, buyer, case, "confirm-receipt"))
    assert (done["status"], done["refund_id"]) == ("EXCHANGED", None)
    after = await stack.order(buyer, order["id"])
    assert after["refunded_cents"] == 0 and after["packages"][-1]["status"] == "RECEIVED"


async def stack_case(stack: Stack, user: User, case_id: str) -> Json:
    data: Json = ok(await stack.http.get(f"/after-sales/{case_id}", headers=user.headers))
    return data


async def test_console_refusals_are_pages_in_the_consoles_layout(
    stack: Stack, context: BrowserContext
) -> None:
    anonymous = await stack.http.get("/console/no-such-page")
    assert anonymous.status_code == 404
    assert anonymous.headers["content-type"].startswith("text/html")
    assert "Sign in" in anonymous.text and "problem" not in anonymous.headers["content-type"]
    page = await sign_in(stack, context, stack.merchant)
    for path, status, heading, says in (
        ("/console/no-such-page", 404, "Not found", "Not Found"),
        ("/console/orders/no-such-order", 404, "Not found", "no order no-such-order"),
        ("/console/orders?colour=red", 422, "Check what was entered", "unknown query parameter"),
        ("/console/orders?status=LOST", 422, "Orders", "Status: one of"),  # the form, kept
    ):
        answer = await page.goto(f"{stack.base_url}{path}")
        assert answer is not None and answer.status == status, path
        assert answer.headers["content-type"].startswith("text/html"), path
        assert await page.locator("h1").inner_text() == heading, path
        assert says in await page.locator("p.error").inner_text(), path
        assert await page.locator("header nav a").count() >= 3  # the console's own layout
        assert await page.locator("a", has_text="Sign in").count() == 0  # already signed in
    # a form FastAPI refuses before the console's code runs: a page too, not JSON
    csrf = await page.locator("input[name=csrf]").first.input_value()
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in await context.cookies())
    refused = await stack.http.post(
        "/console/orders/x/close",
        data={"csrf": csrf, "reason": "r" * 501},
        headers={"Cookie": cookie},
    )
    assert refused.status_code == 422 and refused.headers["content-type"].startswith("text/html")
    assert "reason" in refused.text and "Check what was entered" in refused.text
    # the JSON API still answers problem JSON
    api = await stack.http.get("/orders/no-such-order", headers=stack.merchant.headers)
    assert api.headers["content-type"] == "application/problem+json"
