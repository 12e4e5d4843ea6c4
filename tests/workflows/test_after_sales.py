"""Refunds before shipment and after-sales cases on the time-skipping server, through the real
API in process: every deadline of SPEC §6.1–6.2, money back through the paying channel, stock
back on hand, and the order's workflow held open while a request or case is open."""

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from api.auth import Role, mint
from domain.after_sales import AfterSalesCase, CaseStatus
from tests.workflows.conftest import Shop, record
from workflows.after_sales import AfterSalesWorkflow
from workflows.ids import REFUND_FAILED, case_workflow_id

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
JPEG = b"\xff\xd8\xff\xe0" + b"\x10JFIF" + bytes(64)
H48 = timedelta(hours=48)
DAY = timedelta(days=1)


def by_location(order: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["location"]: p for p in order["packages"]}


async def paid(shop: Shop, *lines: tuple[str, int]) -> dict[str, Any]:
    return await shop.pay(await shop.place(list(lines)))


async def shipped(shop: Shop, *lines: tuple[str, int]) -> dict[str, Any]:
    order = await paid(shop, *lines)
    for n, p in enumerate(order["packages"]):
        order = await shop.ship(order["id"], p["id"], f"SF{order['id'][:6]}{n}")
    assert order["status"] == "SHIPPED"
    return order


async def ask_refund(shop: Shop, order_id: str, *lines: tuple[str, int]) -> httpx.Response:
    body = {"lines": [{"sku": s, "quantity": q} for s, q in lines], "reason": "changed my mind"}
    return await shop.post(f"/orders/{order_id}/refunds", body)


async def open_case(
    shop: Shop,
    order_id: str,
    type_: str,
    *lines: tuple[str, int],
    images: list[tuple[str, bytes]] | None = None,
) -> httpx.Response:
    files = [("images", (name, data, "image/png")) for name, data in (images or [])]
    form = {
        "type": type_,
        "reason": "arrived broken",
        "description": "the lid is cracked",
        "lines": json.dumps([{"sku": s, "quantity": q} for s, q in lines]),
    }
    r = await shop.http.post(
        f"/orders/{order_id}/after-sales", data=form, files=files or None, headers=shop.as_buyer()
    )
    if r.status_code == 201:  # ended with the test, like the orders
        shop.started.append(case_workflow_id(r.json()["id"]))
    return r


def admin(shop: Shop) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(shop.settings.jwt_secret, 'a-1', Role.ADMIN)}"}


async def act(
    shop: Shop, case: dict[str, Any], action: str, who: str = "merchant", **body: Any
) -> httpx.Response:
    headers = {"buyer": shop.as_buyer(), "merchant": shop.as_merchant(), "admin": admin(shop)}[who]
    payload = {"version": case["version"], **body}
    return await shop.http.post(
        f"/after-sales/{case['id']}/{action}", json=payload, headers=headers
    )


async def acted(
    shop: Shop, case: dict[str, Any], action: str, who: str = "merchant", **body: Any
) -> dict[str, Any]:
    r = await act(shop, case, action, who, **body)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def case_until(
    shop: Shop, case_id: str, done: Callable[[AfterSalesCase], bool]
) -> AfterSalesCase:
    """The case once its workflow got there (a fired timer settles through the order)."""
    handle = shop.env.client.get_workflow_handle_for(
        AfterSalesWorkflow.run, case_workflow_id(case_id)
    )
    for _ in range(500):
        case = await handle.query(AfterSalesWorkflow.current)
        if done(case):
            return case
        await asyncio.sleep(0.01)
    raise AssertionError(f"case {case_id} never got there: {case.status}")


def final(status: CaseStatus) -> Callable[[AfterSalesCase], bool]:
    return lambda c: c.status is status and c.settlement is None


# ---- refunds before shipment ----------------------------------------------------------------


async def test_a_refund_before_shipment_agreed_by_the_merchant(shop: Shop) -> None:
    before = await shop.wallet()
    order = await paid(shop, ("TEA", 3), ("MUG", 1))
    assert order["freight_cents"] == 0  # free above 100 yuan
    r = await ask_refund(shop, order["id"], ("TEA", 2))
    assert r.status_code == 201, r.text
    request = r.json()
    assert (request["status"], request["goods_cents"], request["amount_cents"]) == (
        "REQUESTED",
        11_800,
        11_800,
    )
    refunding = await shop.order(order["id"])
    assert refunding["sub_statuses"] == ["REFUNDING"]

    r = await shop.post(f"/orders/{order['id']}/refunds/{request['id']}/agree", merchant=True)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "REFUNDED"
    after = await shop.order(order["id"])
    assert after["sub_statuses"] == []
    assert after["refunded_cents"] == 11_800
    assert [line["refunded_quantity"] for line in after["lines"]] == [2, 0]
    assert by_location(after)["WH-B"]["lines"] == [
        {"sku": "TEA", "quantity": 1, "refunded_quantity": 0}
    ]
    assert (await shop.wallet())["balance_cents"] == before["balance_cents"] - 20_200 + 11_800
    assert await shop.stock("TEA") == {"WH-A": (3, 0), "WH-B": (4, 0)}  # 2 of 3 back

    r = await ask_refund(shop, order["id"], ("TEA", 2))
    assert r.status_code == 409
    assert "only 1 TEA left" in r.json()["detail"]
    assert (await shop.order(order["id"]))["version"] == after["version"]  # nothing changed
    await record(shop.handle(order["id"]), "refund_request_agreed")


async def test_an_unanswered_refund_request_is_agreed_at_its_deadline(shop: Shop) -> None:
    order = await paid(shop, ("TEA", 1), ("MUG", 1))  # 8400: freight 800 applies
    tea = by_location(order)["WH-B"]["id"]
    request = (await ask_refund(shop, order["id"], ("TEA", 1))).json()
    assert request["respond_by"] is not None
    r = await shop.post(
        f"/orders/{order['id']}/packages/{tea}/ship",
        {"carrier": "SF", "tracking_no": "SFX1"},
        merchant=True,
    )
    assert r.status_code == 409  # its goods are promised back: it does not ship meanwhile
    assert "refund request is open" in r.json()["detail"]

    await shop.env.sleep(H48 - timedelta(minutes=1))
    state = await shop.settle(order["id"])
    assert state.refund_requests[0].status == "REQUESTED"
    await shop.env.sleep(timedelta(minutes=2))
    state = await shop.settle(order["id"])
    assert state.refund_requests[0].status == "REFUNDED"
    assert state.refunds[-1].amount_cents == 5900  # no freight: the mug is still live
    assert [p.status for p in state.packages if p.location == "WH-B"] == ["CANCELLED"]
    events = (await shop.http.get(f"/orders/{order['id']}/events", headers=shop.as_buyer())).json()
    # agreed by the clock, then the channel's answer (the money moved outside the lock)
    assert [e["type"] for e in events[-2:]] == ["REFUND_AGREED", "REFUND_SUCCEEDED"]
    assert events[-2]["actor"] == {"kind": "system", "id": "timer"}
    await record(shop.handle(order["id"]), "refund_request_auto_agreed")


async def test_refunding_the_last_line_refunds_the_freight_and_closes_the_order(
    shop: Shop,
) -> None:
    before = await shop.wallet()
    order = await paid(shop, ("MUG", 1))  # 2500 + 800 freight
    request = (await ask_refund(shop, order["id"], ("MUG", 1))).json()
    assert (request["goods_cents"], request["freight_cents"]) == (2500, 800)
    r = await shop.post(f"/orders/{order['id']}/refunds/{request['id']}/agree", merchant=True)
    assert r.status_code == 200, r.text
    done = await shop.order(order["id"])
    assert (done["status"], done["close_reason"]) == ("CLOSED", "FULLY_REFUNDED")
    assert done["refunded_cents"] == done["paid_cents"] == 3300
    assert (await shop.wallet())["balance_cents"] == before["balance_cents"]
    assert await shop.stock("MUG") == {"WH-A": (10, 0)}


async def test_a_refused_request_frees_its_units_and_the_package_ships(shop: Shop) -> None:
    order = await paid(shop, ("TEA", 2), ("MUG", 1))
    request = (await ask_refund(shop, order["id"], ("TEA", 2))).json()
    r = await shop.post(
        f"/orders/{order['id']}/refunds/{request['id']}/refuse", {"reason": ""}, merchant=True
    )
    assert r.status_code == 422  # a refusal says why
    r = await shop.post(
        f"/orders/{order['id']}/refunds/{request['id']}/refuse",
        {"reason": "already packed"},
        merchant=True,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["refuse_reason"]) == ("REFUSED", "already packed")
    r = await shop.post(f"/orders/{order['id']}/refunds/{request['id']}/agree", merchant=True)
    assert r.status_code == 409  # decided once
    again = (await ask_refund(shop, order["id"], ("TEA", 2))).json()
    assert again["status"] == "REQUESTED"  # the units were free again
    state = await shop.settle(order["id"])
    assert state.refunded_cents == 0


async def test_a_refund_request_holds_a_kepler_purchase_and_an_emptied_one_is_never_bought(
    shop: Shop,
) -> None:
    order = await paid(shop, ("KBOX", 1), ("MUG", 1))
    request = (await ask_refund(shop, order["id"], ("KBOX", 1))).json()
    await shop.env.sleep(timedelta(minutes=45))  # the cancel window passed
    state = await shop.settle(order["id"])
    kbox = next(p for p in state.packages if p.location == "SUP-JD")
    assert kbox.status == "AWAITING_SUPPLIER"  # held while the request is open
    r = await shop.post(f"/orders/{order['id']}/refunds/{request['id']}/agree", merchant=True)
    assert r.status_code == 200, r.text
    await shop.env.sleep(timedelta(minutes=5))
    state = await shop.settle(order["id"])
    assert next(p for p in state.packages if p.location == "SUP-JD").status == "CANCELLED"
    assert await shop.supplier.calls() == []
    assert await shop.stock("KBOX") == {"SUP-JD": (20, 0)}


async def test_a_refund_the_channel_refuses_is_failed_visible_and_retried_by_an_admin(
    shop: Shop,
) -> None:
    order = await shop.place([("TEA", 2)])
    assert (await shop.pay_callback(order)).status_code == 200
    state = await shop.settle(order["id"])
    assert state.payment is not None and state.payment.channel == "alipay"
    sandbox = shop.gateway.sandbox  # type: ignore[attr-defined]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox), base_url="http://gateway.test"
    ) as gw:
        r = await gw.post(
            "/v1/_faults",
            json={"refuse_next_refunds": 1},
            headers={"Authorization": "Bearer test-gateway-key"},
        )
        assert r.status_code == 200, r.text
    request = (await ask_refund(shop, order["id"], ("TEA", 2))).json()  # the whole order
    r = await shop.post(f"/orders/{order['id']}/refunds/{request['id']}/agree", merchant=True)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "FAILED"
    failed = await shop.order(order["id"])
    assert [(x["id"], x["status"]) for x in failed["refunds"]] == [(request["id"], "FAILED")]
    assert failed["refunded_cents"] == 0
    assert (failed["status"], failed["close_reason"]) == ("CLOSED", "FULLY_REFUNDED")
    desc = await shop.handle(order["id"]).describe()
    assert desc.typed_search_attributes.get(REFUND_FAILED) is True  # operators filter on it

    r = await shop.http.post(f"/admin/refunds/{request['id']}/retry", headers=shop.as_merchant())
    assert r.status_code == 403  # an admin's
    r = await shop.http.post(f"/admin/refunds/{request['id']}/retry", headers=admin(shop))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "SUCCEEDED"
    retried = await shop.order(order["id"])
    assert retried["refunded_cents"] == 11_800
    assert retried["refund_requests"][0]["status"] == "REFUNDED"
    r = await shop.http.post(f"/admin/refunds/{request['id']}/retry", headers=admin(shop))
    assert r.status_code == 409  # it went through: nothing left to retry
    ended = await shop.handle(order["id"]).result()  # held open only by the owed refund
    assert ended is not None and ended.refunded_cents == ended.paid_cents
    await record(shop.handle(order["id"]), "refund_failed_and_retried")


# ---- after-sales cases ----------------------------------------------------------------------


async def test_a_return_and_refund_case_from_photos_to_money_and_stock(shop: Shop) -> None:
    before = await shop.wallet()
    order = await shipped(shop, ("TEA", 2), ("MUG", 1))  # 14300, free shipping
    r = await open_case(
        shop, order["id"], "RETURN_AND_REFUND", ("TEA", 1), images=[("a.png", PNG), ("b.jpg", JPEG)]
    )
    assert r.status_code == 201, r.text
    case = r.json()
    assert (case["status"], case["claim_cents"], len(case["images"])) == (
        "WAIT_SELLER_AGREE",
        5900,
        2,
    )
    assert case["service_phone"] and case["deadline"] and case["timeline"][0]["action"] == "open"
    image = await shop.http.get(
        f"/after-sales/{case['id']}/images/{case['images'][0]}", headers=shop.as_buyer()
    )
    assert (image.status_code, image.content, image.headers["content-type"]) == (
        200,
        PNG,
        "image/png",
    )
    assert (await shop.order(order["id"]))["sub_statuses"] == ["REFUNDING"]

    agreed = await acted(shop, case, "agree")
    assert agreed["status"] == "WAIT_BUYER_RETURN"
    stale = await act(shop, case, "agree")
    assert (stale.status_code, stale.json()["code"]) == (409, "VERSION_CONFLICT")
    sent = await acted(shop, agreed, "return-shipment", "buyer", carrier="SF", tracking_no="RT1")
    assert sent["status"] == "WAIT_SELLER_RECEIVE"
    done = await acted(shop, sent, "confirm-return")
    assert (done["status"], done["refund_status"]) == ("REFUNDED", "SUCCEEDED")
    assert [e["action"] for e in done["timeline"]] == [
        "open",
        "agree",
        "return-shipment",
        "confirm-return",
        "settled",
    ]
    after = await shop.order(order["id"])
    assert (after["refunded_cents"], after["status"], after["sub_statuses"]) == (
        5900,
        "SHIPPED",
        [],
    )
    assert (await shop.wallet())["balance_cents"] == before["balance_cents"] - 14_300 + 5900
    assert await shop.stock("TEA") == {"WH-A": (3, 0), "WH-B": (4, 0)}  # 1 of 2 back on hand
    await record(shop.handle(order["id"]), "case_return_and_refund_order")
    await record(
        shop.env.client.get_workflow_handle(case_workflow_id(case["id"])),
        "case_return_and_refund",
    )


async def test_a_refund_only_case_settles_on_the_proposal_the_buyer_accepts(shop: Shop) -> None:
    order = await shipped(shop, ("TEA", 2))
    case = (await open_case(shop, order["id"], "REFUND_ONLY", ("TEA", 2))).json()
    too_much = await act(shop, case, "propose", amount_cents=case["claim_cents"])
    assert too_much.status_code == 422
    proposed = await acted(shop, case, "propose", amount_cents=3000, reason="a partial refund")
    assert (proposed["status"], proposed["proposed_cents"]) == ("WAIT_BUYER_CONFIRM", 3000)
    assert (await act(shop, proposed, "agree")).status_code == 409  # not the merchant's turn
    done = await acted(shop, proposed, "accept-proposal", "buyer")
    assert (done["status"], done["agreed_cents"]) == ("REFUNDED", 3000)
    after = await shop.order(order["id"])
    assert after["refunded_cents"] == 3000
    assert await shop.stock("TEA") == {"WH-A": (3, 0), "WH-B": (3, 0)}  # the buyer keeps them


async def test_a_rejected_case_escalated_and_ruled_for_the_buyer(shop: Shop) -> None:
    order = await shipped(shop, ("TEA", 1), ("MUG", 1))
    case = (await open_case(shop, order["id"], "REFUND_ONLY", ("MUG", 1))).json()
    assert (await act(shop, case, "reject")).status_code == 422  # a rejection says why
    rejected = await acted(shop, case, "reject", reason="no damage visible")
    assert rejected["status"] == "SELLER_REJECTED"
    escalated = await acted(shop, rejected, "escalate", "buyer")
    assert escalated["status"] == "PLATFORM_REVIEW"
    r = await act(shop, escalated, "rule", "merchant", decision="BUYER")
    assert r.status_code == 403  # the platform rules, not the merchant
    done = await acted(shop, escalated, "rule", "admin", decision="BUYER", note="photos convince")
    assert done["status"] == "REFUNDED"
    assert (await shop.order(order["id"]))["refunded_cents"] == 2500


@pytest.mark.parametrize(
    ("setup", "wait", "status", "refunded"),
    [
        ([], H48, CaseStatus.REFUNDED, 5900),  # merchant silent: agreed (refund only)
        (["agree"], timedelta(days=7), CaseStatus.CLOSED, 0),  # nothing sent back
        (["agree", "return-shipment"], timedelta(days=10), CaseStatus.REFUNDED, 5900),
        (["reject"], timedelta(days=7), CaseStatus.CLOSED, 0),  # not escalated
    ],
    ids=["no-answer-agreed", "no-return-closed", "no-confirmation-refunded", "no-escalation"],
)
async def test_each_case_deadline_does_what_the_table_says(
    shop: Shop, setup: list[str], wait: timedelta, status: CaseStatus, refunded: int
) -> None:
    order = await shipped(shop, ("TEA", 1), ("MUG", 1))
    type_ = "REFUND_ONLY" if not setup else "RETURN_AND_REFUND"
    case = (await open_case(shop, order["id"], type_, ("TEA", 1))).json()
    for step in setup:
        who = "buyer" if step == "return-shipment" else "merchant"
        extra = {"carrier": "SF", "tracking_no": "RT9"} if who == "buyer" else {}
        extra |= {"reason": "not a defect"} if step == "reject" else {}
        case = await acted(shop, case, step, who, **extra)
    await shop.env.sleep(wait - timedelta(minutes=1))
    early = await case_until(shop, case["id"], lambda c: True)
    assert early.status.value == case["status"]  # not yet
    await shop.env.sleep(timedelta(minutes=2))
    done = await case_until(shop, case["id"], final(status))
    assert done.timeline[-2].actor.kind == "system"
    order_now = await shop.order(order["id"])
    assert order_now["refunded_cents"] == refunded
    assert "REFUNDING" not in order_now["sub_statuses"]
    if status is CaseStatus.CLOSED:  # the units are free for a new case
        again = await open_case(shop, order["id"], "REFUND_ONLY", ("TEA", 1))
        assert again.status_code == 201, again.text
    names = {
        "": "case_no_answer_agreed",
        "agree": "case_no_return_closed",
        "agree,return-shipment": "case_no_confirmation_refunded",
        "reject": "case_not_escalated_closed",
    }
    handle = shop.env.client.get_workflow_handle(case_workflow_id(case["id"]))
    await record(handle, names[",".join(setup)])


async def test_an_unanswered_proposal_goes_back_to_the_merchant(shop: Shop) -> None:
    order = await shipped(shop, ("TEA", 1))
    case = (await open_case(shop, order["id"], "REFUND_ONLY", ("TEA", 1))).json()
    proposed = await acted(shop, case, "propose", amount_cents=1000)
    await shop.env.sleep(H48 + timedelta(minutes=1))
    back = await case_until(shop, case["id"], lambda c: c.version > proposed["version"])
    assert (back.status, back.proposed_cents) == (CaseStatus.WAIT_SELLER_AGREE, None)
    assert back.deadline is not None


async def test_an_open_case_keeps_the_order_open_past_its_after_sales_window(shop: Shop) -> None:
    order = await shipped(shop, ("TEA", 1))
    r = await shop.post(f"/orders/{order['id']}/confirm-receipt")
    assert r.json()["status"] == "COMPLETED"
    await shop.env.sleep(timedelta(days=14))
    case = (await open_case(shop, order["id"], "RETURN_AND_REFUND", ("TEA", 1))).json()
    case = await acted(shop, case, "agree")
    await shop.env.sleep(timedelta(days=3))  # the window (15 days) is over; the case is not
    state = await shop.settle(order["id"])
    assert state.status == "COMPLETED" and state.cases[0].open
    case = await acted(shop, case, "return-shipment", "buyer", carrier="SF", tracking_no="RT2")
    done = await acted(shop, case, "confirm-return")
    assert done["status"] == "REFUNDED"
    final_state = await shop.handle(order["id"]).result()  # the order may end now
    assert final_state is not None
    assert (final_state.status, final_state.close_reason) == ("CLOSED", "FULLY_REFUNDED")
    too_late = await open_case(shop, order["id"], "REFUND_ONLY", ("TEA", 1))
    assert too_late.status_code == 409


# ---- exchange (换货) ---------------------------------------------------------------------------


async def _exchange_returned(
    shop: Shop, sku: str, quantity: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A shipped order's exchange case, its goods sent back and received by the merchant."""
    order = await shipped(shop, (sku, quantity))
    r = await open_case(shop, order["id"], "EXCHANGE", (sku, quantity), images=[("a.png", PNG)])
    assert r.status_code == 201, r.text
    case = await acted(shop, r.json(), "agree")
    assert case["status"] == "WAIT_BUYER_RETURN"
    case = await acted(shop, case, "return-shipment", "buyer", carrier="sf", tracking_no="RX1")
    case = await acted(shop, case, "confirm-return")
    assert case["status"] == "WAIT_SELLER_RESHIP" and case["deadline"] is not None
    return order, case


@pytest.mark.parametrize("received_by", ["carrier", "buyer", "clock"])
async def test_an_exchange_from_open_to_exchanged(shop: Shop, received_by: str) -> None:
    before = await shop.wallet()
    order, case = await _exchange_returned(shop, "MUG", 2)
    [where] = {p["location"] for p in order["packages"]}
    assert await shop.stock("MUG") == {where: (10, 0)}  # the 2 returned are back on hand
    propose = await act(shop, case, "propose", amount_cents=100)
    assert (propose.status_code, propose.json()["code"]) == (409, "INVALID_TRANSITION")

    tracking = f"ZT{order['id'][:8]}"
    case = await acted(shop, case, "reship", carrier="zto", tracking_no=tracking)
    assert (case["status"], case["replacements"]) == ("WAIT_BUYER_RECEIVE", [f"{case['id']}-R1"])
    assert await shop.stock("MUG") == {where: (8, 0)}  # the replacement's 2 taken
    again = await act(shop, case, "reship", carrier="ZTO", tracking_no=tracking)
    assert (again.status_code, again.json()["code"]) == (409, "INVALID_TRANSITION")
    now = await shop.order(order["id"])
    replacement = now["packages"][-1]
    assert (replacement["replacement_for"], replacement["status"]) == (case["id"], "SHIPPED")
    assert (replacement["carrier"], replacement["tracking_no"]) == ("ZTO", tracking)
    assert [(x["sku"], x["quantity"]) for x in replacement["lines"]] == [("MUG", 2)]
    assert now["status"] == "SHIPPED" and now["sub_statuses"] == ["REFUNDING"]

    if received_by == "carrier":
        r = await shop.carrier_callback("Zto", tracking, "DELIVERED")
        assert r.status_code in (200, 202), r.text
    elif received_by == "buyer":
        wrong = await act(shop, case, "confirm-receipt")  # the merchant's token: not theirs
        assert wrong.status_code == 403
        await acted(shop, case, "confirm-receipt", "buyer")
    else:
        await shop.env.sleep(timedelta(days=10, minutes=1))
    done = await case_until(shop, case["id"], final(CaseStatus.EXCHANGED))
    assert done.closed_at is not None and done.refund_id is None
    state = await shop.settle(order["id"])
    assert not state.cases[0].open
    assert [p.status.value for p in state.packages if p.replacement_for] == ["RECEIVED"]
    after = await shop.order(order["id"])
    assert after["refunded_cents"] == 0 and "REFUNDING" not in after["sub_statuses"]
    assert (await shop.wallet())["balance_cents"] == before["balance_cents"] - order["total_cents"]
    assert await shop.stock("MUG") == {where: (8, 0)}
    if received_by == "carrier":
        await record(shop.handle(order["id"]), "case_exchanged_order")
        await record(
            shop.env.client.get_workflow_handle(case_workflow_id(case["id"])), "case_exchanged"
        )


async def test_an_exchange_out_of_stock_is_refunded_instead(shop: Shop) -> None:
    order, case = await _exchange_returned(shop, "TEA", 1)
    [where] = {p["location"] for p in order["packages"]}
    empty = await shop.http.put(
        f"/skus/TEA/stock/{where}", json={"on_hand": 0}, headers=shop.as_merchant()
    )
    assert empty.status_code == 200, empty.text
    r = await act(shop, case, "reship", carrier="SF", tracking_no="SF0RX")
    assert (r.status_code, r.json()["code"]) == (409, "OUT_OF_STOCK")
    assert f"0 free at {where}" in r.json()["detail"]
    unchanged = await case_until(shop, case["id"], lambda c: True)
    assert (unchanged.status.value, unchanged.version) == ("WAIT_SELLER_RESHIP", case["version"])
    state = await shop.settle(order["id"])
    assert [p for p in state.packages if p.replacement_for] == []
    assert (await shop.stock("TEA"))[where] == (0, 0)  # nothing taken

    refunded = await acted(shop, case, "convert-to-refund")
    assert (refunded["status"], refunded["refund_status"]) == ("REFUNDED", "SUCCEEDED")
    after = await shop.order(order["id"])
    assert after["refunded_cents"] == case["claim_cents"]
    assert (await shop.stock("TEA"))[where] == (0, 0)  # back on hand once, at confirm-return


async def test_an_exchange_not_reshipped_in_time_is_refunded(shop: Shop) -> None:
    order, case = await _exchange_returned(shop, "MUG", 1)
    await shop.env.sleep(H48 - timedelta(minutes=1))
    assert (await case_until(shop, case["id"], lambda c: True)).status.value == "WAIT_SELLER_RESHIP"
    await shop.env.sleep(timedelta(minutes=2))
    done = await case_until(shop, case["id"], final(CaseStatus.REFUNDED))
    assert done.timeline[-2].note == "no replacement was shipped"
    assert (await shop.order(order["id"]))["refunded_cents"] == case["claim_cents"]
