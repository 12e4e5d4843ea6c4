"""Fulfilment beyond the own warehouse, on the time-skipping server: Kepler purchase deferred
past the cancel window, supplier callbacks, rejection (拒收) and cancel after payment."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from domain.messages import SupplierNotice
from store.tables import RefundRow
from tests.workflows.conftest import Shop, record
from workflows.order import OrderWorkflow

WINDOW = timedelta(minutes=30)


def packages_of(order: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Packages by location."""
    return {p["location"]: p for p in order["packages"]}


async def ledger(shop: Shop) -> list[RefundRow]:
    async with shop.db.sessions() as s:
        return list(await s.scalars(select(RefundRow).order_by(RefundRow.id)))


async def paid_kepler(shop: Shop, *lines: tuple[str, int]) -> tuple[dict[str, Any], str]:
    order = await shop.place(list(lines) or [("KBOX", 1)])
    paid = await shop.pay(order)
    kepler = packages_of(paid)["SUP-JD"]
    assert kepler["status"] == "AWAITING_SUPPLIER"
    return paid, kepler["id"]


async def test_kepler_package_waits_out_the_cancel_window_then_is_bought_once(shop: Shop) -> None:
    order, pkg = await paid_kepler(shop)
    purchase_at = packages_of(order)["SUP-JD"]["purchase_at"]
    assert purchase_at is not None

    await shop.env.sleep(WINDOW - timedelta(minutes=1))
    state = await shop.settle(order["id"])
    assert state.packages[0].status == "AWAITING_SUPPLIER"
    assert await shop.supplier.calls() == []  # nothing asked of the supplier inside the window

    await shop.env.sleep(timedelta(minutes=2))
    state = await shop.settle(order["id"])
    assert state.packages[0].status == "PURCHASED"
    bought = await shop.supplier.orders_for(pkg)
    assert [o["supplier_order_id"] for o in bought] == [state.packages[0].supplier_order_id]
    events = (await shop.http.get(f"/orders/{order['id']}/events", headers=shop.as_buyer())).json()
    assert events[-1]["type"] == "SUPPLIER_PURCHASED"
    await record(shop.handle(order["id"]), "kepler_purchased")


async def test_cancel_inside_the_window_intercepts_without_any_supplier_call(shop: Shop) -> None:
    before = await shop.wallet()
    order, _pkg = await paid_kepler(shop)
    assert (await shop.wallet())["balance_cents"] == before["balance_cents"] - order["total_cents"]
    await shop.env.sleep(timedelta(minutes=29))

    r = await shop.post(f"/orders/{order['id']}/cancel", {"reason": "changed my mind"})
    assert r.status_code == 200, r.text
    closed = r.json()
    assert (closed["status"], closed["close_reason"]) == ("CLOSED", "BUYER_CANCELLED")
    assert [p["status"] for p in closed["packages"]] == ["CANCELLED"]
    assert closed["refunded_cents"] == order["total_cents"]
    assert (await shop.wallet())["balance_cents"] == before["balance_cents"]  # money back
    assert await shop.stock("KBOX") == {"SUP-JD": (20, 0)}  # stock restored
    await shop.env.sleep(timedelta(minutes=5))
    assert await shop.supplier.calls() == []  # and the supplier never heard of it
    await record(shop.handle(order["id"]), "kepler_cancelled_in_window")


async def test_cancel_after_the_window_asks_the_supplier_to_cancel(shop: Shop) -> None:
    order, pkg = await paid_kepler(shop)
    await shop.env.sleep(timedelta(minutes=31))
    purchased = await shop.settle(order["id"])
    supplier_order_id = purchased.packages[0].supplier_order_id
    assert supplier_order_id is not None

    r = await shop.post(f"/orders/{order['id']}/cancel", {"reason": "too slow"})
    assert r.status_code == 200, r.text
    assert r.json()["close_reason"] == "BUYER_CANCELLED"
    cancels = [c for c in await shop.supplier.calls() if "cancel" in str(c)]
    assert len(cancels) == 1 and supplier_order_id in str(cancels[0])
    assert (await shop.supplier.orders_for(pkg))[0]["status"] == "CANCELLED"
    assert await shop.stock("KBOX") == {"SUP-JD": (20, 0)}
    await record(shop.handle(order["id"]), "kepler_cancelled_at_supplier")


async def test_a_supplier_refusing_to_cancel_is_a_409_and_the_order_goes_on(shop: Shop) -> None:
    before = await shop.wallet()
    order, _ = await paid_kepler(shop)
    await shop.env.sleep(timedelta(minutes=31))
    await shop.settle(order["id"])
    await shop.supplier.faults(refuse_cancels=True)

    r = await shop.post(f"/orders/{order['id']}/cancel", {})
    assert (r.status_code, r.json()["code"]) == (409, "SUPPLIER_REFUSED_CANCEL")
    after = await shop.order(order["id"])
    assert (after["status"], after["refunded_cents"]) == ("PENDING_SHIPMENT", 0)
    assert after["packages"][0]["status"] == "PURCHASED"
    assert (await shop.wallet())["balance_cents"] == before["balance_cents"] - order["total_cents"]


async def test_a_supplier_outage_is_retried_until_it_accepts(shop: Shop) -> None:
    order, pkg = await paid_kepler(shop)
    await shop.supplier.faults(fail_next_orders=2)
    await shop.env.sleep(timedelta(minutes=31))
    state = await shop.settle(order["id"])
    assert state.packages[0].status == "PURCHASED"
    attempts = [c for c in await shop.supplier.calls() if pkg in str(c)]
    assert len(attempts) == 3  # two 503s, then accepted
    assert len(await shop.supplier.orders_for(pkg)) == 1


@pytest.mark.crash_after_supplier_accepts
async def test_a_crash_after_the_supplier_accepted_never_buys_twice(shop: Shop) -> None:
    order, pkg = await paid_kepler(shop)
    await shop.env.sleep(timedelta(minutes=31))
    state = await shop.settle(order["id"])
    assert state.packages[0].status == "PURCHASED"
    attempts = [c for c in await shop.supplier.calls() if pkg in str(c)]
    assert len(attempts) == 2  # the supplier saw the retry...
    bought = await shop.supplier.orders_for(pkg)
    assert len(bought) == 1  # ...and sold once: our package id is its external reference
    assert bought[0]["supplier_order_id"] == state.packages[0].supplier_order_id


async def test_a_supplier_refusal_intercepts_the_package_and_refunds_it(shop: Shop) -> None:
    order, pkg = await paid_kepler(shop, ("KBOX", 1), ("MUG", 1))
    await shop.supplier.faults(refuse_next_orders=1)
    await shop.env.sleep(timedelta(minutes=31))
    state = await shop.settle(order["id"])
    by_location = {p.location: p for p in state.packages}
    assert by_location["SUP-JD"].status == "CANCELLED"
    assert by_location["WH-A"].status == "PENDING"  # the rest of the order goes on
    assert state.status == "PENDING_SHIPMENT"
    kepler = packages_of(order)["SUP-JD"]
    assert [(r.package_id, r.amount_cents, r.reason) for r in await ledger(shop)] == [
        (pkg, kepler["goods_cents"] + kepler["freight_cents"], "SUPPLIER_REFUSED")
    ]
    assert await shop.stock("KBOX") == {"SUP-JD": (20, 0)}


async def test_supplier_callbacks_ship_and_deliver_the_package(shop: Shop) -> None:
    order, _pkg = await paid_kepler(shop)
    await shop.env.sleep(timedelta(minutes=31))
    sid = (await shop.settle(order["id"])).packages[0].supplier_order_id
    assert sid is not None

    shipped = await shop.supplier.advance(sid, "AWAITING_RECEIPT")  # signed callback to the API
    assert shipped["status_code"] == 200
    state = await shop.settle(order["id"])
    assert (state.status, state.packages[0].status) == ("SHIPPED", "SHIPPED")
    await shop.supplier.advance(sid, "RECEIVED")
    state = await shop.settle(order["id"])
    assert (state.status, state.packages[0].status) == ("COMPLETED", "RECEIVED")
    await record(shop.handle(order["id"]), "kepler_delivered")


async def test_supplier_rejection_refunds_goods_and_all_freight_and_restocks(shop: Shop) -> None:
    order, _pkg = await paid_kepler(shop)  # 4000 goods + 800 freight, all on this package
    await shop.env.sleep(timedelta(minutes=31))
    sid = (await shop.settle(order["id"])).packages[0].supplier_order_id
    assert sid is not None
    await shop.supplier.advance(sid, "AWAITING_RECEIPT")
    await shop.supplier.advance(sid, "REJECTED")
    final = await shop.settle(order["id"])
    assert (final.status, final.close_reason) == ("CLOSED", "FULLY_REFUNDED")
    assert [
        (r.amount_cents, r.goods_cents, r.freight_cents, r.freight_borne_by)
        for r in await ledger(shop)
    ] == [(4800, 4000, 800, "platform")]
    assert await shop.stock("KBOX") == {"SUP-JD": (20, 0)}  # back on the supplier's word
    await record(shop.handle(order["id"]), "kepler_rejected")


async def rejectable(shop: Shop) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A paid order of a drop-ship book (3000) and an own mug (2500), both shipped."""
    order = await shop.place([("BOOK", 1), ("MUG", 1)])
    paid = await shop.pay(order)
    book, mug = packages_of(paid)["VENDOR-1"], packages_of(paid)["WH-A"]
    await shop.ship(order["id"], book["id"], f"B{order['id'][:8]}")
    await shop.ship(order["id"], mug["id"], f"M{order['id'][:8]}")
    return paid, book, mug


async def test_one_package_rejecting_the_freight_bearer_refunds_all_freight_platform_borne(
    shop: Shop,
) -> None:
    order, book, mug = await rejectable(shop)
    assert (order["freight_cents"], book["freight_cents"], mug["freight_cents"]) == (800, 800, 0)
    r = await shop.carrier_callback("SF", f"B{order['id'][:8]}", "REJECTED")
    assert r.status_code == 200, r.text
    state = await shop.settle(order["id"])
    assert {p.location: p.status for p in state.packages} == {
        "VENDOR-1": "REJECTED",
        "WH-A": "SHIPPED",
    }
    assert [
        (r.amount_cents, r.goods_cents, r.freight_cents, r.borne_by, r.freight_borne_by)
        for r in await ledger(shop)
    ] == [(3800, 3000, 800, "merchant", "platform")]
    await shop.post(f"/orders/{order['id']}/confirm-receipt", {})
    done = await shop.settle(order["id"])
    assert done.status == "COMPLETED"  # it completes with the rest
    assert done.refunded_cents == 3800
    await record(shop.handle(order["id"]), "dropship_rejected_one_package")


async def test_rejecting_a_package_without_freight_refunds_its_goods_only(shop: Shop) -> None:
    order, _book, _mug = await rejectable(shop)
    await shop.carrier_callback("SF", f"M{order['id'][:8]}", "REJECTED")
    await shop.settle(order["id"])
    assert [(r.amount_cents, r.freight_cents) for r in await ledger(shop)] == [(2500, 0)]


async def test_split_freight_refunds_the_rejected_package_share_merchant_borne(shop: Shop) -> None:
    rule = {"flat_cents": 800, "free_above_cents": 10_000, "policy": "SPLIT"}
    assert (await shop.http.put("/freight-rule", json=rule, headers=shop.as_merchant())).is_success
    order, book, mug = await rejectable(shop)
    assert (book["freight_cents"], mug["freight_cents"]) == (436, 364)  # 800 × 3000/5500, rest
    await shop.carrier_callback("SF", f"B{order['id'][:8]}", "REJECTED")
    await shop.settle(order["id"])
    assert [(r.amount_cents, r.freight_cents, r.freight_borne_by) for r in await ledger(shop)] == [
        (3436, 436, "merchant")
    ]


async def test_rejected_own_goods_return_to_stock_when_the_location_confirms(shop: Shop) -> None:
    order, book, mug = await rejectable(shop)
    assert await shop.stock("MUG") == {"WH-A": (9, 0)}
    await shop.carrier_callback("SF", f"M{order['id'][:8]}", "REJECTED")
    await shop.carrier_callback("SF", f"B{order['id'][:8]}", "REJECTED")
    closed = await shop.settle(order["id"])
    assert (closed.status, closed.close_reason) == ("CLOSED", "FULLY_REFUNDED")
    assert await shop.stock("MUG") == {"WH-A": (9, 0)}  # not before it arrives

    for pkg in (mug, book):
        r = await shop.post(
            f"/orders/{order['id']}/packages/{pkg['id']}/return-received", merchant=True
        )
        assert r.status_code == 200, r.text
    assert await shop.stock("MUG") == {"WH-A": (10, 0)}
    assert await shop.stock("BOOK") == {"VENDOR-1": (10, 0)}
    again = await shop.post(
        f"/orders/{order['id']}/packages/{mug['id']}/return-received", merchant=True
    )
    assert again.status_code in (404, 409)  # the workflow has ended, or refuses a second time
    assert await shop.stock("MUG") == {"WH-A": (10, 0)}
    final = await shop.handle(order["id"]).result()  # with every return in, the order ends
    assert final is not None and final.refunded_cents == order["total_cents"]
    await record(shop.handle(order["id"]), "all_rejected_and_returned")


async def test_cancel_after_payment_intercepts_everything_before_shipping(shop: Shop) -> None:
    before = await shop.wallet()
    order = await shop.place([("TEA", 6), ("MUG", 2)])
    await shop.pay(order, "credit")
    assert await shop.stock("TEA") == {"WH-A": (2, 0), "WH-B": (0, 0)}
    r = await shop.post(f"/orders/{order['id']}/cancel", {"reason": "wrong address"})
    assert r.status_code == 200, r.text
    closed = r.json()
    assert (closed["close_reason"], closed["refunded_cents"]) == (
        "BUYER_CANCELLED",
        order["total_cents"],
    )
    assert {p["status"] for p in closed["packages"]} == {"CANCELLED"}
    assert await shop.stock("TEA") == {"WH-A": (3, 0), "WH-B": (5, 0)}
    assert await shop.stock("MUG") == {"WH-A": (10, 0)}
    assert (await shop.wallet())["credit_used_cents"] == before["credit_used_cents"]
    [refund] = await ledger(shop)
    assert (refund.channel, refund.amount_cents) == ("credit", order["total_cents"])


async def test_cancel_once_a_package_shipped_is_refused_and_points_to_a_refund(shop: Shop) -> None:
    order = await shop.place([("TEA", 6)])
    paid = await shop.pay(order)
    first = paid["packages"][0]["id"]
    await shop.ship(order["id"], first, f"T{order['id'][:8]}")
    r = await shop.post(f"/orders/{order['id']}/cancel", {})
    assert (r.status_code, r.json()["code"]) == (409, "INVALID_TRANSITION")
    assert "refund" in r.json()["detail"]
    after = await shop.order(order["id"])
    assert (after["status"], after["refunded_cents"]) == ("PENDING_SHIPMENT", 0)


async def test_a_mixed_order_keeps_one_status_per_package(shop: Shop) -> None:
    order = await shop.place([("TEA", 6), ("KBOX", 1), ("CARD", 1), ("BOOK", 1)])
    paid = await shop.pay(order)
    pk = packages_of(paid)
    assert {loc: (p["product_type"], p["status"]) for loc, p in pk.items()} == {
        "WH-A": ("SELF", "PENDING"),
        "WH-B": ("SELF", "PENDING"),
        "SUP-JD": ("KEPLER", "AWAITING_SUPPLIER"),
        "DIGITAL": ("VIRTUAL", "PENDING"),
        "VENDOR-1": ("DROPSHIP", "PENDING"),
    }
    assert sum(p["freight_cents"] for p in pk.values()) == paid["freight_cents"]

    card = await shop.ship(order["id"], pk["DIGITAL"]["id"])  # no carrier: usable at once
    assert packages_of(card)["DIGITAL"]["status"] == "DELIVERED"
    assert card["sub_statuses"] == ["PARTIALLY_SHIPPED"]
    for loc in ("WH-A", "WH-B", "VENDOR-1"):
        await shop.ship(order["id"], pk[loc]["id"], f"{loc}{order['id'][:6]}".replace("-", ""))
    state = await shop.settle(order["id"])
    assert state.status == "PENDING_SHIPMENT"  # the Kepler package is still in its window

    await shop.env.sleep(timedelta(minutes=31))
    sid = {p.location: p for p in (await shop.settle(order["id"])).packages}["SUP-JD"]
    assert sid.supplier_order_id is not None
    await shop.supplier.advance(sid.supplier_order_id, "AWAITING_RECEIPT")
    assert (await shop.settle(order["id"])).status == "SHIPPED"
    await shop.post(f"/orders/{order['id']}/confirm-receipt", {})
    done = await shop.settle(order["id"])
    assert (done.status, {p.status for p in done.packages}) == ("COMPLETED", {"RECEIVED"})
    await record(shop.handle(order["id"]), "mixed_order_completed")


async def test_a_slow_supplier_blocks_nobody_and_a_cancel_meanwhile_is_refused(shop: Shop) -> None:
    order, pkg = await paid_kepler(shop, ("KBOX", 1), ("MUG", 1))
    await shop.supplier.faults(fail_next_orders=1000)  # the supplier is down
    await shop.env.sleep(timedelta(minutes=31))
    for _ in range(500):  # bounded: wait for the first failing attempt
        if any(pkg in str(c) for c in await shop.supplier.calls()):
            break
        await asyncio.sleep(0.01)
    r = await shop.post(f"/orders/{order['id']}/cancel", {})
    assert (r.status_code, r.json()["code"]) == (409, "INVALID_TRANSITION")
    assert "in progress" in r.json()["detail"]  # refused at once, not left hanging
    mug = packages_of(order)["WH-A"]["id"]
    shipped = await shop.ship(order["id"], mug, f"M{order['id'][:8]}")  # not stuck behind it
    assert packages_of(shipped)["WH-A"]["status"] == "SHIPPED"

    await shop.supplier.faults(fail_next_orders=0)  # back up: the retry goes through
    state = await shop.settle(order["id"])
    assert {p.location: p.status for p in state.packages}["SUP-JD"] == "PURCHASED"
    assert len(await shop.supplier.orders_for(pkg)) == 1


async def test_rejecting_a_free_gift_moves_no_money_and_the_order_goes_on(shop: Shop) -> None:
    order = await shop.place([("GIFT", 1), ("MUG", 1)])
    paid = await shop.pay(order)
    gift = packages_of(paid)["VENDOR-2"]
    assert (gift["goods_cents"], gift["freight_cents"]) == (0, 0)  # freight sits on the mug
    for loc in ("VENDOR-2", "WH-A"):
        await shop.ship(order["id"], packages_of(paid)[loc]["id"], f"G{loc}{order['id'][:6]}")
    await shop.carrier_callback("SF", f"GVENDOR-2{order['id'][:6]}", "REJECTED")
    state = await shop.settle(order["id"])
    assert {p.location: p.status for p in state.packages} == {
        "VENDOR-2": "REJECTED",
        "WH-A": "SHIPPED",
    }
    assert state.refunded_cents == 0 and await ledger(shop) == []


async def test_supplier_news_about_someone_elses_order_changes_nothing(shop: Shop) -> None:
    order, pkg = await paid_kepler(shop, ("KBOX", 1), ("MUG", 1))
    await shop.env.sleep(timedelta(minutes=31))
    sid = {p.location: p for p in (await shop.settle(order["id"])).packages}["SUP-JD"]
    assert sid.supplier_order_id is not None
    await shop.supplier.advance(sid.supplier_order_id, "AWAITING_RECEIPT")
    mug = packages_of(order)["WH-A"]["id"]
    await shop.ship(order["id"], mug, f"M{order['id'][:8]}")
    before = await shop.settle(order["id"])
    assert {p.status for p in before.packages} == {"SHIPPED"}  # both could be rejected now
    now = await shop.env.get_current_time()
    for package_id in (pkg, mug):  # signed by nobody we trust: straight to the workflow
        await shop.handle(order["id"]).signal(
            OrderWorkflow.supplier_event,
            SupplierNotice(
                package_id=package_id, state="REJECTED", at=now, supplier_order_id="ko_forged"
            ),
        )
    after = await shop.settle(order["id"])
    assert (after.version, after.refunded_cents) == (before.version, 0)
    assert {p.status for p in after.packages} == {"SHIPPED"}
