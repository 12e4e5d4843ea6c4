"""Orders travel their whole life over HTTP: place, pay, ship, receive."""

import pytest

from sandboxes.carrier import send_carrier_event
from tests.e2e.harness import ADDRESS, FREIGHT_CENTS, Stack, eventually, ok, uid
from workflows.ids import BUYER_ID, ORDER_STATUS, ORDER_TOTAL, order_workflow_id

pytestmark = pytest.mark.e2e


async def test_an_order_paid_from_the_balance_is_shipped_received_and_completed(
    stack: Stack,
) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 10}, price_cents=2500)
    await stack.top_up(buyer, 10_000)

    placed = ok(await stack.place(buyer, [(sku, 2)], key=uid("key")), 201)
    order_id = placed["id"]
    assert placed["buyer_id"] == buyer.id
    assert placed["status"] == "PENDING_PAYMENT"
    assert placed["sub_statuses"] == []
    assert placed["close_reason"] is None
    assert placed["payment"] is None
    assert placed["address"] == ADDRESS
    assert [
        (line["sku"], line["quantity"], line["unit_price_cents"]) for line in placed["lines"]
    ] == [(sku, 2, 2500)]
    assert (placed["goods_cents"], placed["freight_cents"], placed["total_cents"]) == (
        5000,
        FREIGHT_CENTS,
        5000 + FREIGHT_CENTS,
    )
    assert placed["version"] == 1
    # the order's public view: where its stock is held and its durations stay inside
    assert not {"allocations", "timings", "freight_policy"} & set(placed)
    assert placed["low_stock"] is False  # "selling fast, pay soon" is shown
    assert await stack.stock(sku) == {"WH-A": (10, 2)}  # locked on order
    assert await stack.order(buyer, order_id) == placed

    paid = ok(await stack.act(buyer, f"/orders/{order_id}/pay", {"channel": "balance"}))
    assert paid["status"] == "PENDING_SHIPMENT"
    assert paid["sub_statuses"] == []
    assert paid["payment"]["channel"] == "balance"
    assert paid["paid_cents"] == paid["total_cents"] == 5500
    assert (await stack.wallet(buyer))["balance_cents"] == 10_000 - 5500
    assert await stack.stock(sku) == {"WH-A": (8, 0)}  # the lock became a deduction
    [package] = paid["packages"]
    assert package["status"] == "PENDING"
    assert package["location"] == "WH-A"
    assert package["lines"] == [{"sku": sku, "quantity": 2, "refunded_quantity": 0}]
    assert package["freight_cents"] == FREIGHT_CENTS

    tracking = uid("SF")
    shipped = ok(
        await stack.act(
            stack.merchant,
            f"/orders/{order_id}/packages/{package['id']}/ship",
            {"carrier": "SF", "tracking_no": tracking},
        )
    )
    assert shipped["status"] == "SHIPPED"
    [package] = shipped["packages"]
    assert (package["status"], package["carrier"], package["tracking_no"]) == (
        "SHIPPED",
        "SF",
        tracking,
    )
    assert package["auto_confirm_at"] is not None

    completed = ok(await stack.act(buyer, f"/orders/{order_id}/confirm-receipt"))
    assert completed["status"] == "COMPLETED"
    assert completed["sub_statuses"] == ["AWAITING_REVIEW"]
    assert completed["packages"][0]["status"] == "RECEIVED"
    assert completed["version"] == 4
    assert await stack.order(buyer, order_id) == completed
    assert await stack.order(stack.merchant, order_id) == completed

    events = await stack.events(buyer, order_id)
    assert [(e["version"], e["type"], e["actor"]) for e in events] == [
        (1, "PLACED", {"kind": "buyer", "id": buyer.id}),
        (2, "PAID", {"kind": "buyer", "id": buyer.id}),
        (3, "PACKAGE_SHIPPED", {"kind": "merchant", "id": "merchant"}),  # a role, no staff id
        (4, "RECEIPT_CONFIRMED", {"kind": "buyer", "id": buyer.id}),
    ]
    staff_view = await stack.events(stack.merchant, order_id)
    assert staff_view[2]["actor"] == {"kind": "merchant", "id": stack.merchant.id}

    # the Web UI's view: search attributes on the workflow, and a list by query
    desc = await stack.temporal.get_workflow_handle(order_workflow_id(order_id)).describe()
    attrs = desc.typed_search_attributes
    assert attrs.get(ORDER_STATUS) == "COMPLETED"
    assert attrs.get(BUYER_ID) == buyer.id
    assert attrs.get(ORDER_TOTAL) == 5500

    async def listed() -> list[str]:
        query = f"OrderStatus='COMPLETED' AND BuyerId='{buyer.id}'"
        return [wf.id async for wf in stack.temporal.list_workflows(query)]

    found = await eventually(listed, bool, what="the visibility store to list the order")
    assert found == [order_workflow_id(order_id)]


async def test_an_order_from_two_warehouses_ships_as_two_packages(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 3, "WH-B": 2}, price_cents=1000)

    placed = await stack.placed(buyer, [(sku, 5)])
    assert await stack.stock(sku) == {"WH-A": (3, 3), "WH-B": (2, 2)}
    await stack.top_up(buyer, placed["total_cents"])
    paid = ok(await stack.act(buyer, f"/orders/{placed['id']}/pay", {"channel": "balance"}))
    assert await stack.stock(sku) == {"WH-A": (0, 0), "WH-B": (0, 0)}

    a, b = paid["packages"]
    assert (a["location"], a["lines"], a["status"]) == (
        "WH-A",
        [{"sku": sku, "quantity": 3, "refunded_quantity": 0}],
        "PENDING",
    )
    assert (b["location"], b["lines"], b["status"]) == (
        "WH-B",
        [{"sku": sku, "quantity": 2, "refunded_quantity": 0}],
        "PENDING",
    )
    assert (a["freight_cents"], b["freight_cents"]) == (FREIGHT_CENTS, 0)  # ONE_PACKAGE

    one = await stack.ship(paid, 0)
    assert one["status"] == "PENDING_SHIPMENT"
    assert one["sub_statuses"] == ["PARTIALLY_SHIPPED"]
    assert [p["status"] for p in one["packages"]] == ["SHIPPED", "PENDING"]

    both = await stack.ship(one, 1)
    assert both["status"] == "SHIPPED"
    assert both["sub_statuses"] == []
    assert [p["status"] for p in both["packages"]] == ["SHIPPED", "SHIPPED"]

    # the carrier signs package A off: for self-operated goods that is the receipt
    first = both["packages"][0]
    answer = await send_carrier_event(
        f"{stack.base_url}/webhooks/carriers",
        stack.settings.carrier_webhook_secret,
        carrier=first["carrier"],
        tracking_no=first["tracking_no"],
        event="DELIVERED",
    )
    assert ok(answer)["status"] == "forwarded"
    received = await stack.wait_order(
        buyer,
        placed["id"],
        lambda o: o["packages"][0]["status"] == "RECEIVED",
        "the carrier's sign-off to confirm package A",
    )
    assert received["status"] == "SHIPPED"  # package B is still on its way
    assert [p["status"] for p in received["packages"]] == ["RECEIVED", "SHIPPED"]
    last = (await stack.events(buyer, placed["id"]))[-1]
    assert (last["type"], last["actor"]) == ("RECEIPT_CONFIRMED", {"kind": "carrier", "id": "SF"})
    assert last["data"]["package_ids"] == [first["id"]]

    done = ok(
        await stack.act(
            buyer, f"/orders/{placed['id']}/confirm-receipt", {"package_ids": [b["id"]]}
        )
    )
    assert done["status"] == "COMPLETED"
    assert [p["status"] for p in done["packages"]] == ["RECEIVED", "RECEIVED"]
