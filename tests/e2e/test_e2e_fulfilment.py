"""Fulfilment beyond the own warehouse over real HTTP: a KEPLER package bought from the
supplier sandbox once the (short, e2e) cancel window has passed and moved on by its signed
callbacks, a rejection (拒收) under the ONE_PACKAGE freight rule, cancels after payment, and
the supplier webhook's defences."""

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.e2e.harness import (
    FREIGHT_CENTS,
    SUPPLIER_CANCEL_WINDOW_SECONDS,
    Json,
    Stack,
    eventually,
    expect_problem,
    ok,
    refunds_answered,
    uid,
)

pytestmark = pytest.mark.e2e


def by_location(order: Json) -> dict[str, Json]:
    return {p["location"]: p for p in order["packages"]}


def package_of(order: Json, package_id: str) -> Json:
    found: list[Json] = [p for p in order["packages"] if p["id"] == package_id]
    [package] = found
    return package


async def test_a_mixed_order_buys_its_kepler_package_after_the_window_and_completes(
    stack: Stack,
) -> None:
    buyer = stack.buyer()
    own = await stack.put_sku({"WH-A": 2, "WH-B": 2}, price_cents=1500)  # 3 → two warehouses
    kbox = await stack.put_sku({"SUP-JD": 5}, price_cents=4000, product_type="KEPLER")
    card = await stack.put_sku(
        {"DIGITAL": 50}, price_cents=1000, product_type="VIRTUAL", policy="DEDUCT_ON_PAYMENT"
    )
    paid = await stack.paid(buyer, [(own, 3), (kbox, 1), (card, 1)])
    order_id = paid["id"]
    pk = by_location(paid)
    assert {loc: (p["product_type"], p["status"]) for loc, p in pk.items()} == {
        "WH-A": ("SELF", "PENDING"),
        "WH-B": ("SELF", "PENDING"),
        "SUP-JD": ("KEPLER", "AWAITING_SUPPLIER"),
        "DIGITAL": ("VIRTUAL", "PENDING"),
    }
    assert sum(p["freight_cents"] for p in pk.values()) == paid["freight_cents"] == FREIGHT_CENTS
    kepler = pk["SUP-JD"]
    purchase_at = datetime.fromisoformat(kepler["purchase_at"])
    paid_at = datetime.fromisoformat(paid["payment"]["paid_at"])
    assert (purchase_at - paid_at).total_seconds() == pytest.approx(
        SUPPLIER_CANCEL_WINDOW_SECONDS, abs=1
    )

    # the Web UI's current details name the supplier purchase and its time
    details = await stack.current_details(order_id)
    [row] = [line for line in details.splitlines() if kepler["id"] in line]
    assert "AWAITING_SUPPLIER" in row, details
    _, _, when = row.partition("supplier purchase at ")
    # to the second, as the Web UI shows it
    assert datetime.fromisoformat(when.strip(" |")) == purchase_at.replace(microsecond=0), details
    assert "SUPPLIER_PURCHASE" in details, details
    assert [c for c in await stack.supplier_calls() if c["external_ref"] == kepler["id"]] == []

    # the virtual package needs no carrier; the own packages ship from both warehouses
    card_done = ok(
        await stack.act(stack.merchant, f"/orders/{order_id}/packages/{pk['DIGITAL']['id']}/ship")
    )
    assert package_of(card_done, pk["DIGITAL"]["id"])["status"] == "DELIVERED"
    assert card_done["sub_statuses"] == ["PARTIALLY_SHIPPED"]
    for loc in ("WH-A", "WH-B"):
        shipped = ok(
            await stack.act(
                stack.merchant,
                f"/orders/{order_id}/packages/{pk[loc]['id']}/ship",
                {"carrier": "SF", "tracking_no": uid("SF")},
            )
        )
        assert package_of(shipped, pk[loc]["id"])["status"] == "SHIPPED"
    assert shipped["status"] == "PENDING_SHIPMENT"  # the Kepler package has not shipped

    # the window passes: the workflow buys once, with our package id as the reference
    purchased = await stack.wait_order(
        buyer,
        order_id,
        lambda o: package_of(o, kepler["id"])["status"] == "PURCHASED",
        "the supplier purchase after the cancel window",
    )
    sid = package_of(purchased, kepler["id"])["supplier_order_id"]
    assert sid and package_of(purchased, kepler["id"])["purchase_at"] is None
    assert purchased["status"] == "PENDING_SHIPMENT"
    [bought] = await stack.supplier_orders(kepler["id"])
    assert (bought["supplier_order_id"], bought["status"], bought["items"]) == (
        sid,
        "ACCEPTED",
        [{"sku": kbox, "quantity": 1}],
    )
    calls = [c for c in await stack.supplier_calls() if c["external_ref"] == kepler["id"]]
    assert [(c["outcome"], c["supplier_order_id"]) for c in calls] == [("created", sid)]
    assert "supplier purchase at" not in await stack.current_details(order_id)

    # the supplier ships (待收货) and the buyer receives (已收货): real signed callbacks
    sent = await stack.supplier_advance(sid, "AWAITING_RECEIPT")
    assert (sent["delivered"], sent["status_code"]) == (True, 200), sent
    on_way = await stack.wait_order(
        buyer,
        order_id,
        lambda o: package_of(o, kepler["id"])["status"] == "SHIPPED",
        "the supplier's AWAITING_RECEIPT callback",
    )
    assert on_way["status"] == "SHIPPED"  # every live package is on its way
    assert package_of(on_way, kepler["id"])["auto_confirm_at"] is not None
    sent = await stack.supplier_advance(sid, "RECEIVED")
    assert (sent["delivered"], sent["status_code"]) == (True, 200), sent
    received = await stack.wait_order(
        buyer,
        order_id,
        lambda o: package_of(o, kepler["id"])["status"] == "RECEIVED",
        "the supplier's RECEIVED callback",
    )
    assert received["status"] == "SHIPPED"  # the others still await the buyer
    assert {p["id"]: p["status"] for p in received["packages"]} == {
        pk["WH-A"]["id"]: "SHIPPED",
        pk["WH-B"]["id"]: "SHIPPED",
        kepler["id"]: "RECEIVED",
        pk["DIGITAL"]["id"]: "DELIVERED",
    }

    done = ok(await stack.act(buyer, f"/orders/{order_id}/confirm-receipt"))
    assert (done["status"], done["sub_statuses"]) == ("COMPLETED", ["AWAITING_REVIEW"])
    assert {p["status"] for p in done["packages"]} == {"RECEIVED"}
    assert (done["refunded_cents"], done["refunds"]) == (0, [])
    events = await stack.events(buyer, order_id)
    supplier_moves = [
        (e["type"], e["actor"]) for e in events if e["actor"]["kind"] in ("supplier", "system")
    ]
    assert supplier_moves == [
        ("SUPPLIER_PURCHASED", {"kind": "system", "id": "timer"}),
        ("PACKAGE_SHIPPED", {"kind": "supplier", "id": sid}),
        ("RECEIPT_CONFIRMED", {"kind": "supplier", "id": sid}),
    ]
    assert events[-1]["type"] == "RECEIPT_CONFIRMED"
    assert await stack.supplier_orders(kepler["id"]) == [bought | {"status": "RECEIVED"}]


async def test_rejecting_the_freight_bearing_package_refunds_all_freight_platform_borne(
    stack: Stack,
) -> None:
    buyer = stack.buyer()
    book = await stack.put_sku({"VENDOR-1": 10}, price_cents=3000, product_type="DROPSHIP")
    mug = await stack.put_sku({"WH-A": 10}, price_cents=2500)
    paid = await stack.paid(buyer, [(book, 1), (mug, 1)])  # 5500 + flat 500, never free
    order_id = paid["id"]
    assert (paid["goods_cents"], paid["freight_cents"]) == (5500, FREIGHT_CENTS)
    pk = by_location(paid)
    # ONE_PACKAGE: all freight on the most valuable package, the drop-shipped book
    assert (pk["VENDOR-1"]["freight_cents"], pk["WH-A"]["freight_cents"]) == (FREIGHT_CENTS, 0)
    for index in range(2):
        shipped = await stack.ship(paid, index)
    assert shipped["status"] == "SHIPPED"
    book_pkg, mug_pkg = by_location(shipped)["VENDOR-1"], by_location(shipped)["WH-A"]
    assert await stack.stock(book) == {"VENDOR-1": (9, 0)}

    answer = ok(await stack.carrier_event(book_pkg, "REJECTED"))
    assert answer["status"] == "forwarded"
    rejected = await stack.wait_order(
        buyer,
        order_id,
        lambda o: package_of(o, book_pkg["id"])["status"] == "REJECTED" and refunds_answered(o),
        "the carrier's REJECTED callback",
    )
    assert package_of(rejected, mug_pkg["id"])["status"] == "SHIPPED"  # the other goes on
    assert (rejected["status"], rejected["close_reason"]) == ("SHIPPED", None)
    [refund] = rejected["refunds"]
    assert (
        refund["package_id"],
        refund["reason"],
        refund["amount_cents"],
        refund["goods_cents"],
        refund["freight_cents"],
        refund["borne_by"],
        refund["freight_borne_by"],
        refund["status"],
    ) == (
        book_pkg["id"],
        "REJECTED",
        3500,
        3000,
        FREIGHT_CENTS,
        "merchant",
        "platform",
        "SUCCEEDED",
    )
    assert rejected["refunded_cents"] == 3500
    assert (await stack.wallet(buyer))["balance_cents"] == 3500  # topped up exactly the total
    assert await stack.stock(book) == {"VENDOR-1": (9, 0)}  # not back before it arrives

    done = ok(await stack.act(buyer, f"/orders/{order_id}/confirm-receipt"))
    assert done["status"] == "COMPLETED"
    assert {p["id"]: p["status"] for p in done["packages"]} == {
        book_pkg["id"]: "REJECTED",
        mug_pkg["id"]: "RECEIVED",
    }
    assert await stack.stock(book) == {"VENDOR-1": (9, 0)}
    assert await stack.stock(mug) == {"WH-A": (9, 0)}

    # the buyer may not say the goods came back; the merchant does
    path = f"/orders/{order_id}/packages/{book_pkg['id']}/return-received"
    expect_problem(await stack.act(buyer, path), 403, "FORBIDDEN")
    expect_problem(
        await stack.act(
            stack.merchant, f"/orders/{order_id}/packages/{mug_pkg['id']}/return-received"
        ),
        409,
        "INVALID_TRANSITION",
    )
    returned = ok(await stack.act(stack.merchant, path))
    assert package_of(returned, book_pkg["id"])["restocked"] is True
    assert await stack.stock(book) == {"VENDOR-1": (10, 0)}
    expect_problem(await stack.act(stack.merchant, path), 409, "INVALID_TRANSITION")  # only once
    assert await stack.stock(book) == {"VENDOR-1": (10, 0)}
    assert await stack.stock(mug) == {"WH-A": (9, 0)}
    events = await stack.events(stack.merchant, order_id)
    assert [e["type"] for e in events][-4:] == [
        "PACKAGE_REJECTED",
        "REFUND_SUCCEEDED",  # the channel's answer, after the order's lock was let go
        "RECEIPT_CONFIRMED",
        "RETURN_RECEIVED",
    ]


async def test_a_cancel_after_payment_intercepts_everything_before_anything_ships(
    stack: Stack,
) -> None:
    buyer = stack.buyer()
    tea = await stack.put_sku({"WH-A": 2, "WH-B": 3}, price_cents=1200)
    kbox = await stack.put_sku({"SUP-JD": 4}, price_cents=4000, product_type="KEPLER")
    paid = await stack.paid(buyer, [(tea, 5), (kbox, 1)])
    order_id, total = paid["id"], paid["total_cents"]
    assert {p["status"] for p in paid["packages"]} == {"PENDING", "AWAITING_SUPPLIER"}
    assert len(paid["packages"]) == 3
    assert await stack.stock(tea) == {"WH-A": (0, 0), "WH-B": (0, 0)}
    assert (await stack.wallet(buyer))["balance_cents"] == 0

    closed = ok(await stack.act(buyer, f"/orders/{order_id}/cancel", {"reason": "wrong size"}))
    assert (closed["status"], closed["close_reason"]) == ("CLOSED", "BUYER_CANCELLED")
    assert {p["status"] for p in closed["packages"]} == {"CANCELLED"}
    assert closed["refunded_cents"] == total
    [refund] = closed["refunds"]
    assert (refund["amount_cents"], refund["channel"], refund["status"]) == (
        total,
        "balance",
        "SUCCEEDED",
    )
    assert await stack.order(buyer, order_id) == closed
    assert await stack.stock(tea) == {"WH-A": (2, 0), "WH-B": (3, 0)}
    assert await stack.stock(kbox) == {"SUP-JD": (4, 0)}
    assert (await stack.wallet(buyer))["balance_cents"] == total

    # inside the cancel window: the order ends and the supplier never hears of it
    await stack.temporal.get_workflow_handle(f"order-{order_id}").result()
    kepler = by_location(paid)["SUP-JD"]["id"]
    assert [c for c in await stack.supplier_calls() if c["external_ref"] == kepler] == []
    assert await stack.supplier_orders(kepler) == []


async def test_a_cancel_once_a_package_shipped_is_refused_and_points_to_a_refund(
    stack: Stack,
) -> None:
    buyer = stack.buyer()
    tea = await stack.put_sku({"WH-A": 1, "WH-B": 1}, price_cents=1200)
    paid = await stack.paid(buyer, [(tea, 2)])
    shipped = await stack.ship(paid, 0)
    assert shipped["sub_statuses"] == ["PARTIALLY_SHIPPED"]

    refused = expect_problem(
        await stack.act(buyer, f"/orders/{paid['id']}/cancel", {"reason": "too late"}),
        409,
        "INVALID_TRANSITION",
    )
    assert "refund" in refused["detail"], refused
    assert await stack.order(buyer, paid["id"]) == shipped  # a refused request changes nothing
    assert await stack.stock(tea) == {"WH-A": (0, 0), "WH-B": (0, 0)}


async def test_a_supplier_refusing_to_cancel_a_purchase_is_a_409_and_the_order_goes_on(
    stack: Stack,
) -> None:
    buyer = stack.buyer()
    kbox = await stack.put_sku({"SUP-JD": 4}, price_cents=4000, product_type="KEPLER")
    paid = await stack.paid(buyer, [(kbox, 1)])
    order_id = paid["id"]
    [package] = paid["packages"]
    purchased = await stack.wait_order(
        buyer,
        order_id,
        lambda o: o["packages"][0]["status"] == "PURCHASED",
        "the supplier purchase after the cancel window",
    )
    sid = purchased["packages"][0]["supplier_order_id"]

    await stack.supplier_faults(refuse_cancels=True)
    try:
        refused = expect_problem(
            await stack.act(buyer, f"/orders/{order_id}/cancel", {"reason": "too slow"}),
            409,
            "SUPPLIER_REFUSED_CANCEL",
        )
    finally:
        await stack.supplier_faults(refuse_cancels=False)
    assert package["id"] in refused["detail"], refused
    assert await stack.order(buyer, order_id) == purchased  # unchanged, version included
    assert (await stack.wallet(buyer))["balance_cents"] == 0
    assert await stack.stock(kbox) == {"SUP-JD": (3, 0)}
    [bought] = await stack.supplier_orders(package["id"])
    assert (bought["supplier_order_id"], bought["status"]) == (sid, "ACCEPTED")

    # once the supplier agrees, the same cancel goes through
    closed = ok(await stack.act(buyer, f"/orders/{order_id}/cancel", {"reason": "too slow"}))
    assert (closed["close_reason"], closed["refunded_cents"]) == (
        "BUYER_CANCELLED",
        paid["total_cents"],
    )
    assert [b["status"] for b in await stack.supplier_orders(package["id"])] == ["CANCELLED"]
    assert await stack.stock(kbox) == {"SUP-JD": (4, 0)}


async def test_supplier_callbacks_must_be_signed_new_and_about_its_own_package(
    stack: Stack,
) -> None:
    buyer = stack.buyer()
    kbox = await stack.put_sku({"SUP-JD": 4}, price_cents=4000, product_type="KEPLER")
    mug = await stack.put_sku({"WH-A": 4}, price_cents=2500)
    paid = await stack.paid(buyer, [(kbox, 1), (mug, 1)])
    kepler = by_location(paid)["SUP-JD"]
    await stack.ship(paid, [p["location"] for p in paid["packages"]].index("WH-A"))
    before = await stack.wait_order(
        buyer,
        paid["id"],
        lambda o: package_of(o, kepler["id"])["status"] == "PURCHASED",
        "the supplier purchase after the cancel window",
    )
    sid = package_of(before, kepler["id"])["supplier_order_id"]
    own = by_location(before)["WH-A"]
    history = await stack.history_length(paid["id"])
    event_id = uid("evt")

    async def refused(status: int, code: str, package_id: str, state: str, **kw: Any) -> None:
        expect_problem(await stack.supplier_callback(package_id, state, **kw), status, code)

    for secret in ("not-the-secret", stack.settings.carrier_webhook_secret):
        await refused(
            401,
            "UNAUTHENTICATED",
            kepler["id"],
            "RECEIVED",
            supplier_order_id=sid,
            event_id=event_id,
            secret=secret,
        )
    await refused(404, "NOT_FOUND", uid("no-such-package"), "RECEIVED", supplier_order_id=sid)
    # the supplier speaks for its own purchases: not for our warehouse's package, nor for
    # another of its orders
    await refused(404, "NOT_FOUND", own["id"], "REJECTED", supplier_order_id=sid)
    await refused(404, "NOT_FOUND", kepler["id"], "AWAITING_RECEIPT", supplier_order_id="ko_x")
    for state in ("SHIPPED", "received", ""):
        await refused(422, "VALIDATION", kepler["id"], state, supplier_order_id=sid)
    assert await stack.history_length(paid["id"]) == history  # no signal reached the order
    assert await stack.order(buyer, paid["id"]) == before

    # refused attempts recorded nothing: the same event id, properly signed, is accepted once
    # (RECEIVED of a package the supplier has not shipped: the order ignores it)
    at = datetime.now(UTC)
    first = await stack.supplier_callback(
        kepler["id"], "RECEIVED", supplier_order_id=sid, event_id=event_id, at=at
    )
    assert ok(first)["status"] == "forwarded"
    again = await stack.supplier_callback(  # the supplier's retry: the same callback
        kepler["id"], "RECEIVED", supplier_order_id=sid, event_id=event_id, at=at
    )
    assert ok(again)["status"] == "duplicate"
    await eventually(
        lambda: stack.history_length(paid["id"]),
        lambda n: n > history,
        what="the accepted callback's signal",
    )
    assert await stack.order(buyer, paid["id"]) == before
