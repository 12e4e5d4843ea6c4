"""Refunds before shipment and after-sales cases over real HTTP, on the dev server and
PostgreSQL: multipart evidence uploads, money back through the sandbox gateway and the wallet,
stock back on hand, every refusal changing nothing, racing requests on one line, and the
deadlines of a case running out on their own (the fast API's seconds-long deadlines)."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.purge import purge_images
from scripts.serve import listening_socket, serving, url_of
from store.blobs import FileBlobStore
from store.db import Database
from tests.e2e.harness import ADDRESS, Json, Stack, User, eventually, expect_problem, ok

pytestmark = pytest.mark.e2e

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(48)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(48)


def form(type_: str, lines: Any, reason: str = "arrived broken") -> dict[str, str]:
    raw = (
        lines
        if isinstance(lines, str)
        else json.dumps([{"sku": s, "quantity": q} for s, q in lines])
    )
    return {"type": type_, "reason": reason, "description": "the lid is cracked", "lines": raw}


async def open_case(
    stack: Stack,
    buyer: User,
    order_id: str,
    data: dict[str, str],
    images: list[tuple[str, bytes, str]] | None = None,
    http: httpx.AsyncClient | None = None,
) -> httpx.Response:
    files = [("images", image) for image in images or []]
    return await (http or stack.http).post(
        f"/orders/{order_id}/after-sales", data=data, files=files or None, headers=buyer.headers
    )


async def case_act(
    stack: Stack, user: User, case: Json, action: str, **body: Any
) -> httpx.Response:
    payload = {"version": case["version"], **body}
    return await stack.act(user, f"/after-sales/{case['id']}/{action}", payload)


async def paid_via(
    http: httpx.AsyncClient, stack: Stack, buyer: User, lines: list[tuple[str, int]]
) -> Json:
    """Placed through `http` (its timings go with the order) and paid from the balance."""
    body = {"lines": [{"sku": s, "quantity": q} for s, q in lines], "address": ADDRESS}
    order: Json = ok(await http.post("/orders", json=body, headers=buyer.headers), 201)
    await stack.top_up(buyer, order["total_cents"])
    paid: Json = ok(await stack.act(buyer, f"/orders/{order['id']}/pay", {"channel": "balance"}))
    return paid


async def shipped(
    stack: Stack, buyer: User, lines: list[tuple[str, int]], http: httpx.AsyncClient | None = None
) -> Json:
    """Placed, paid, every package shipped."""
    order = await paid_via(http or stack.http, stack, buyer, lines)
    for n in range(len(order["packages"])):
        order = await stack.ship(order, n)
    assert order["status"] == "SHIPPED", order
    return order


def blob_files(stack: Stack) -> set[str]:
    return {p.name for p in Path(stack.settings.blob_dir).rglob("*") if p.is_file()}


# ---- SPEC §6.1: refund before shipment ------------------------------------------------------


async def test_two_of_three_teas_refunded_before_shipment(stack: Stack) -> None:
    buyer = stack.buyer()
    tea = await stack.put_sku({"WH-A": 10}, price_cents=3900)
    mug = await stack.put_sku({"WH-A": 10}, price_cents=2500)
    order = await stack.paid(buyer, [(tea, 3), (mug, 1)])  # 11700 + 2500 + 500 freight
    assert (await stack.wallet(buyer))["balance_cents"] == 0

    request = ok(
        await stack.act(
            buyer,
            f"/orders/{order['id']}/refunds",
            {"lines": [{"sku": tea, "quantity": 2}], "reason": "bought too many"},
        ),
        201,
    )
    assert (request["status"], request["amount_cents"], request["freight_cents"]) == (
        "REQUESTED",
        7800,
        0,
    )
    assert (await stack.order(buyer, order["id"]))["sub_statuses"] == ["REFUNDING"]
    listed = ok(
        await stack.http.get(f"/orders/{order['id']}/refunds", headers=stack.merchant.headers)
    )
    assert [r["id"] for r in listed] == [request["id"]]

    expect_problem(
        await stack.act(buyer, f"/orders/{order['id']}/refunds/{request['id']}/agree"),
        403,
        "FORBIDDEN",
    )
    agreed = ok(
        await stack.act(stack.merchant, f"/orders/{order['id']}/refunds/{request['id']}/agree")
    )
    assert agreed["status"] == "REFUNDED"
    after = await stack.order(buyer, order["id"])
    assert (after["refunded_cents"], after["sub_statuses"]) == (7800, [])
    [left] = [pl for pl in after["packages"][0]["lines"] if pl["sku"] == tea]
    assert left == {"sku": tea, "quantity": 1, "refunded_quantity": 0}
    assert (await stack.wallet(buyer))["balance_cents"] == 7800
    assert await stack.stock(tea) == {"WH-A": (9, 0)}  # 10 - 3 + 2

    more = expect_problem(
        await stack.act(
            buyer, f"/orders/{order['id']}/refunds", {"lines": [{"sku": tea, "quantity": 2}]}
        ),
        409,
        "INVALID_TRANSITION",
    )
    assert "only 1" in more["detail"] and more["left"] == {tea: 1}
    assert (await stack.order(buyer, order["id"]))["version"] == after["version"]


async def test_a_gateway_payment_is_refunded_through_the_sandbox_gateway(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5}, price_cents=3000)
    order = await stack.placed(buyer, [(sku, 2)])
    intent = ok(
        await stack.act(buyer, f"/orders/{order['id']}/payment-intents", {"channel": "alipay"}), 201
    )
    ok(await stack.http.post(intent["pay_url"]))  # the buyer pays on the sandbox's page
    paid = await stack.wait_order(
        buyer, order["id"], lambda o: o["status"] == "PENDING_SHIPMENT", "the payment"
    )
    request = ok(
        await stack.act(
            buyer, f"/orders/{order['id']}/refunds", {"lines": [{"sku": sku, "quantity": 2}]}
        ),
        201,
    )
    assert (request["goods_cents"], request["freight_cents"]) == (6000, 500)  # the last line
    ok(await stack.act(stack.merchant, f"/orders/{order['id']}/refunds/{request['id']}/agree"))
    done = await stack.order(buyer, order["id"])
    assert (done["status"], done["close_reason"]) == ("CLOSED", "FULLY_REFUNDED")
    refund = ok(await stack.gateway("GET", f"/v1/refunds/{request['id']}"))
    assert refund == {
        "refund_id": request["id"],
        "txn_id": paid["payment"]["txn_id"],
        "amount_cents": 6500,
        "status": "succeeded",
    }
    assert await stack.stock(sku) == {"WH-A": (5, 0)}


async def test_refused_refund_requests_change_nothing(stack: Stack) -> None:
    buyer, other = stack.buyer(), stack.buyer()
    a = await stack.put_sku({"WH-A": 5})
    b = await stack.put_sku({"WH-B": 5})
    order = await stack.paid(buyer, [(a, 2), (b, 1)])
    shipped_b = await stack.ship(order, [p["location"] for p in order["packages"]].index("WH-B"))
    path = f"/orders/{order['id']}/refunds"
    before = await stack.order(buyer, order["id"])
    assert shipped_b["version"] == before["version"]

    def lines(*ls: Any) -> Json:
        return {"lines": [{"sku": s, "quantity": q} for s, q in ls]}

    expect_problem(await stack.act(buyer, path, lines((a, 3))), 409, "INVALID_TRANSITION")
    expect_problem(await stack.act(buyer, path, lines((b, 1))), 409, "INVALID_TRANSITION")
    expect_problem(await stack.act(buyer, path, lines(("NOPE-1", 1))), 422, "VALIDATION")
    expect_problem(await stack.act(buyer, path, lines((a, 0))), 422, "VALIDATION")
    expect_problem(await stack.act(buyer, path, lines((a, -1))), 422, "VALIDATION")
    expect_problem(await stack.act(buyer, path, {"lines": []}), 422, "VALIDATION")
    expect_problem(await stack.act(other, path, lines((a, 1))), 404, "NOT_FOUND")
    expect_problem(await stack.act(stack.merchant, path, lines((a, 1))), 403, "FORBIDDEN")
    expect_problem(await stack.act(stack.merchant, f"{path}/RR-none/agree"), 404, "NOT_FOUND")
    unpaid = await stack.placed(buyer, [(a, 1)])
    expect_problem(
        await stack.act(buyer, f"/orders/{unpaid['id']}/refunds", lines((a, 1))),
        409,
        "INVALID_TRANSITION",
    )
    after = await stack.order(buyer, order["id"])
    assert after == before
    assert ok(await stack.http.get(path, headers=buyer.headers)) == []


async def test_racing_refund_requests_never_take_more_than_the_line(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 10}, price_cents=1000)
    order = await stack.paid(buyer, [(sku, 3)])
    path = f"/orders/{order['id']}/refunds"
    answers = await asyncio.gather(
        *(
            stack.act(buyer, path, {"lines": [{"sku": sku, "quantity": 2}], "reason": f"r{n}"})
            for n in range(4)
        )
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [201, 409, 409, 409], [r.text for r in answers]
    accepted = next(r.json() for r in answers if r.status_code == 201)
    agreed = await asyncio.gather(
        stack.act(stack.merchant, f"{path}/{accepted['id']}/agree"),
        stack.act(stack.merchant, f"{path}/{accepted['id']}/agree"),
        stack.act(buyer, path, {"lines": [{"sku": sku, "quantity": 1}]}),
    )
    assert sorted(r.status_code for r in agreed[:2]) == [200, 409]
    after = await stack.order(buyer, order["id"])
    assert after["lines"][0]["refunded_quantity"] == 2
    assert after["refunded_cents"] == 2000
    assert sum(r["amount_cents"] for r in after["refunds"]) <= after["paid_cents"]


# ---- SPEC §6.2: after-sales cases ------------------------------------------------------------


async def test_a_return_and_refund_case_with_two_photos(stack: Stack) -> None:
    buyer, other = stack.buyer(), stack.buyer()
    sku = await stack.put_sku({"WH-A": 4}, price_cents=5000)
    order = await shipped(stack, buyer, [(sku, 2)])
    case = ok(
        await open_case(
            stack,
            buyer,
            order["id"],
            form("RETURN_AND_REFUND", [(sku, 1)]),
            [("front.png", PNG, "image/png"), ("side.jpg", JPEG, "image/jpeg")],
        ),
        201,
    )
    assert (case["status"], case["claim_cents"], case["service_phone"]) == (
        "WAIT_SELLER_AGREE",
        5000,
        stack.settings.service_phone,
    )
    assert case["deadline"] and case["deadline_action"] == "agreed automatically"
    assert not {"timings", "takes", "settlement"} & set(case)  # the case workflow's own
    # the order shows its cases by id and state; how a case holds its units stays inside
    shown = (await stack.order(buyer, order["id"]))["cases"]
    assert shown == [
        {"id": case["id"], "type": "RETURN_AND_REFUND", "open": True, "refund_id": None}
    ]
    got = ok(await stack.http.get(f"/after-sales/{case['id']}", headers=buyer.headers))
    assert got["timeline"][0]["action"] == "open" and got["version"] == case["version"]
    image_path = f"/after-sales/{case['id']}/images/{case['images'][1]}"
    image = await stack.http.get(image_path, headers=stack.merchant.headers)
    assert (image.status_code, image.content, image.headers["content-type"]) == (
        200,
        JPEG,
        "image/jpeg",
    )
    expect_problem(await stack.http.get(image_path, headers=other.headers), 404, "NOT_FOUND")
    expect_problem(
        await stack.http.get(f"/after-sales/{case['id']}", headers=other.headers), 404, "NOT_FOUND"
    )
    mine = ok(await stack.http.get("/after-sales", headers=buyer.headers))
    assert [c["id"] for c in mine["items"]] == [case["id"]]
    assert ok(await stack.http.get("/after-sales", headers=other.headers))["items"] == []

    agreed = ok(await case_act(stack, stack.merchant, case, "agree"))
    assert agreed["status"] == "WAIT_BUYER_RETURN"
    expect_problem(await case_act(stack, stack.merchant, case, "agree"), 409, "VERSION_CONFLICT")
    expect_problem(
        await case_act(stack, other, agreed, "return-shipment", carrier="SF", tracking_no="R1"),
        404,
        "NOT_FOUND",
    )
    sent = ok(
        await case_act(stack, buyer, agreed, "return-shipment", carrier="SF", tracking_no="RT1")
    )
    assert sent["status"] == "WAIT_SELLER_RECEIVE"
    done = ok(await case_act(stack, stack.merchant, sent, "confirm-return"))
    assert (done["status"], done["refund_status"]) == ("REFUNDED", "SUCCEEDED")
    after = await stack.order(buyer, order["id"])
    assert (after["refunded_cents"], after["sub_statuses"]) == (5000, [])
    assert (await stack.wallet(buyer))["balance_cents"] == 5000
    assert await stack.stock(sku) == {"WH-A": (3, 0)}  # 4 - 2 + 1 back
    events = [e["type"] for e in await stack.events(buyer, order["id"])]
    assert events[-3:] == ["CASE_OPENED", "CASE_REFUNDED", "REFUND_SUCCEEDED"]


async def test_a_proposal_accepted_and_a_rejection_ruled_for_the_buyer(stack: Stack) -> None:
    buyer = stack.buyer()
    a = await stack.put_sku({"WH-A": 4}, price_cents=5000)
    b = await stack.put_sku({"WH-A": 4}, price_cents=2000)
    order = await shipped(stack, buyer, [(a, 1), (b, 1)])
    one = ok(await open_case(stack, buyer, order["id"], form("REFUND_ONLY", [(a, 1)])), 201)
    proposed = ok(await case_act(stack, stack.merchant, one, "propose", amount_cents=2000))
    assert proposed["status"] == "WAIT_BUYER_CONFIRM"
    done = ok(await case_act(stack, buyer, proposed, "accept-proposal"))
    assert (done["status"], done["agreed_cents"]) == ("REFUNDED", 2000)

    two = ok(await open_case(stack, buyer, order["id"], form("REFUND_ONLY", [(b, 1)])), 201)
    rejected = ok(await case_act(stack, stack.merchant, two, "reject", reason="used"))
    escalated = ok(await case_act(stack, buyer, rejected, "escalate"))
    assert escalated["status"] == "PLATFORM_REVIEW"
    expect_problem(
        await case_act(stack, stack.merchant, escalated, "rule", decision="BUYER"), 403, "FORBIDDEN"
    )
    ruled = ok(await case_act(stack, stack.admin, escalated, "rule", decision="BUYER", note="ok"))
    assert ruled["status"] == "REFUNDED"
    after = await stack.order(buyer, order["id"])
    assert after["refunded_cents"] == 2000 + 2000 + 500  # the last line brings the freight
    assert (after["status"], after["close_reason"]) == ("CLOSED", "FULLY_REFUNDED")


async def test_refused_cases_change_nothing_and_store_no_image(stack: Stack) -> None:
    buyer, other = stack.buyer(), stack.buyer()
    sku = await stack.put_sku({"WH-A": 9}, price_cents=1000)
    order = await shipped(stack, buyer, [(sku, 2)])
    oid = order["id"]
    before, blobs = await stack.order(buyer, oid), blob_files(stack)
    good = [(sku, 1)]
    png = ("a.png", PNG, "image/png")

    async def refused(
        status: int,
        code: str,
        data: dict[str, str],
        images: Any = None,
        who: User = buyer,
        order_id: str = oid,
    ) -> None:
        expect_problem(await open_case(stack, who, order_id, data, images), status, code)

    await refused(422, "VALIDATION", form("REFUND_ONLY", good), [png] * 10)
    big = ("big.png", PNG + bytes(5 * 1024 * 1024), "image/png")
    await refused(413, "PAYLOAD_TOO_LARGE", form("REFUND_ONLY", good), [big])
    await refused(
        415,
        "UNSUPPORTED_MEDIA",
        form("REFUND_ONLY", good),
        [("x.png", b"not an image", "image/png")],
    )
    await refused(422, "VALIDATION", form("REFUND_ONLY", "[{sku:"))
    await refused(422, "VALIDATION", form("REFUND_ONLY", [("NOPE-1", 1)]))
    await refused(422, "VALIDATION", form("REFUND_ONLY", [(sku, 0)]))
    await refused(422, "VALIDATION", form("REFUND_ONLY", [(sku, 3)]) | {"type": "SWAP"})
    await refused(409, "INVALID_TRANSITION", form("REFUND_ONLY", [(sku, 3)]))
    await refused(404, "NOT_FOUND", form("REFUND_ONLY", good), who=other)
    unpaid = await stack.placed(buyer, [(sku, 1)])
    await refused(409, "INVALID_TRANSITION", form("REFUND_ONLY", good), order_id=unpaid["id"])
    assert await stack.order(buyer, oid) == before
    assert blob_files(stack) == blobs  # no image of a refused case was kept

    case = ok(await open_case(stack, buyer, oid, form("REFUND_ONLY", good), [png]), 201)
    await refused(
        409, "INVALID_TRANSITION", form("RETURN_AND_REFUND", good)
    )  # one open case a line
    expect_problem(
        await stack.act(stack.merchant, f"/after-sales/{case['id']}/agree", {}), 422, "VALIDATION"
    )
    expect_problem(await case_act(stack, buyer, case, "agree"), 403, "FORBIDDEN")
    expect_problem(await case_act(stack, stack.merchant, case, "escalate"), 403, "FORBIDDEN")
    expect_problem(
        await case_act(stack, stack.merchant, case, "propose", amount_cents=1000), 422, "VALIDATION"
    )
    withdrawn = ok(await case_act(stack, buyer, case, "withdraw"))
    assert withdrawn["status"] == "CANCELLED"
    expect_problem(await case_act(stack, buyer, withdrawn, "withdraw"), 409, "INVALID_TRANSITION")
    again = ok(await open_case(stack, buyer, oid, form("REFUND_ONLY", [(sku, 2)])), 201)
    assert again["claim_cents"] == 2000 + 500  # every line: the freight comes with them


async def test_a_case_left_alone_runs_out_its_deadlines(stack: Stack) -> None:
    """The fast API's orders carry deadlines of 3 s: the merchant never answers (agreed, the
    buyer never ships back, closed); a second case: rejected and never escalated, closed."""
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 9}, price_cents=1000)
    order = await shipped(stack, buyer, [(sku, 2)], http=stack.fast_http)
    case = ok(
        await open_case(
            stack, buyer, order["id"], form("RETURN_AND_REFUND", [(sku, 1)]), http=stack.fast_http
        ),
        201,
    )
    details = await stack.workflow_details(f"after-sales-{case['id']}")
    assert "WAIT_SELLER_AGREE" in details and "then agreed automatically" in details

    async def case_now() -> Json:
        data: Json = ok(await stack.http.get(f"/after-sales/{case['id']}", headers=buyer.headers))
        return data

    agreed = await eventually(
        case_now, lambda c: c["status"] == "WAIT_BUYER_RETURN", what="auto-agree"
    )
    assert agreed["timeline"][-1]["actor"]["kind"] == "system"
    details = await stack.workflow_details(f"after-sales-{case['id']}")
    assert "WAIT_BUYER_RETURN" in details and "closed: nothing was sent back" in details
    closed = await eventually(
        case_now,
        lambda c: c["status"] == "CLOSED" and c["timeline"][-1]["action"] == "settled",
        what="closing",
    )
    assert [e["action"] for e in closed["timeline"]] == [
        "open",
        "deadline: agreed",
        "deadline: closed",
        "settled",
    ]
    assert (await stack.order(buyer, order["id"]))["refunded_cents"] == 0

    second = ok(
        await open_case(
            stack, buyer, order["id"], form("REFUND_ONLY", [(sku, 1)]), http=stack.fast_http
        ),
        201,
    )
    ok(await case_act(stack, stack.merchant, second, "reject", reason="not broken"))

    async def second_now() -> Json:
        data: Json = ok(await stack.http.get(f"/after-sales/{second['id']}", headers=buyer.headers))
        return data

    ended = await eventually(
        second_now,
        lambda c: c["status"] == "CLOSED" and c["timeline"][-1]["action"] == "settled",
        what="no escalation",
    )
    assert ended["timeline"][-2]["action"] == "deadline: closed"
    assert "REFUNDING" not in (await stack.order(buyer, order["id"]))["sub_statuses"]


async def test_a_refund_request_left_unanswered_is_agreed_on_its_own(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 9}, price_cents=1000)
    order = await paid_via(stack.fast_http, stack, buyer, [(sku, 2)])
    ok(
        await stack.act(
            buyer, f"/orders/{order['id']}/refunds", {"lines": [{"sku": sku, "quantity": 1}]}
        ),
        201,
    )
    details = await stack.current_details(order["id"])
    assert "REFUND_RESPONSE" in details
    done = await stack.wait_order(
        buyer, order["id"], lambda o: o["refund_requests"][0]["status"] == "REFUNDED", "auto-agree"
    )
    assert done["refunded_cents"] == 1000


# ---- the public edge: a buyer's evidence images are bounded, and let go of -------------------


def png(n: int) -> tuple[str, bytes, str]:
    """A distinct PNG of 64 bytes (its last byte says which)."""
    return (f"{n}.png", PNG[:-8] + bytes(7) + bytes([n]), "image/png")


@asynccontextmanager
async def api_with(stack: Stack, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The same API with other settings, on its own port, sharing the stack's database."""
    db = Database(stack.settings.database_url)
    app = create_app(stack.settings.model_copy(update=changes), temporal=stack.temporal, db=db)
    sock = listening_socket()
    try:
        async with (
            serving(app, sock, "api-with"),
            httpx.AsyncClient(base_url=url_of(sock), timeout=30) as http,
        ):
            yield http
    finally:
        sock.close()
        await db.dispose()


async def test_a_buyers_images_stop_at_a_quota_and_ended_cases_let_theirs_go(stack: Stack) -> None:
    buyer, other = stack.buyer(), stack.buyer()
    sku = await stack.put_sku({"WH-A": 9}, price_cents=1000)
    first, second, third, fourth = [await shipped(stack, buyer, [(sku, 1)]) for _ in range(4)]
    async with api_with(stack, max_image_bytes_per_buyer=200) as http:

        async def case(order: Json, images: list[Any], who: User = buyer) -> httpx.Response:
            return await open_case(
                stack, who, order["id"], form("REFUND_ONLY", [(sku, 1)]), images, http=http
            )

        withdrawn = ok(await case(first, [png(1), png(2)]), 201)  # 128 of 200 bytes
        before = blob_files(stack)
        refused = expect_problem(await case(second, [png(3), png(4)]), 429, "IMAGE_QUOTA_EXCEEDED")
        assert (refused["held_bytes"], refused["adding_bytes"], refused["quota_bytes"]) == (
            128,
            128,
            200,
        )
        assert blob_files(stack) == before  # nothing of the refused case was stored
        assert (await stack.order(buyer, second["id"]))["cases"] == []
        theirs = await shipped(stack, other, [(sku, 1)])  # another buyer has a quota of their own
        ok(await case(theirs, [png(1), png(3)], who=other), 201)

        # withdrawn: its images still count until they are deleted, a week after it ended
        ok(await case_act(stack, buyer, withdrawn, "withdraw"))
        expect_problem(await case(second, [png(3), png(4)]), 429, "IMAGE_QUOTA_EXCEEDED")
        settings, db = stack.settings, Database(stack.settings.database_url)
        try:
            assert await purge_images(db, FileBlobStore(settings.blob_dir), settings) == 0
            later = datetime.now(UTC) + timedelta(days=settings.ended_case_images_days, hours=1)
            deleted = await purge_images(db, FileBlobStore(settings.blob_dir), settings, later)
        finally:
            await db.dispose()
        assert deleted == 1  # png(2); png(1) is also the other buyer's, and stays
        assert {h for h in withdrawn["images"]} - blob_files(stack) == {withdrawn["images"][1]}
        for sha in withdrawn["images"]:
            gone = expect_problem(
                await stack.http.get(
                    f"/after-sales/{withdrawn['id']}/images/{sha}", headers=buyer.headers
                ),
                404,
                "NOT_FOUND",
            )
            assert "deleted" in gone["detail"]
        ok(await case(second, [png(3), png(4)]), 201)  # the quota is free again: 128 held

        # one buyer's cases at once, 64 bytes each, room for one: exactly one is opened
        racing = await asyncio.gather(case(third, [png(5)]), case(fourth, [png(6)]))
        assert sorted(r.status_code for r in racing) == [201, 429], [r.text for r in racing]
