"""Buy again and reviews over real HTTP, on the dev server and PostgreSQL (SPEC §7)."""

from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

from api.messaging import keyed_id
from tests.e2e.harness import Json, Stack, User, expect_problem, ok

pytestmark = pytest.mark.e2e


async def completed(stack: Stack, buyer: User, lines: list[tuple[str, int]]) -> Json:
    order = await stack.paid(buyer, lines)
    for n in range(len(order["packages"])):
        order = await stack.ship(order, n)
    done: Json = ok(await stack.act(buyer, f"/orders/{order['id']}/confirm-receipt", {}))
    assert (done["status"], done["sub_statuses"]) == ("COMPLETED", ["AWAITING_REVIEW"])
    return done


async def edit_sku(stack: Stack, sku: str, **changes: Any) -> None:
    current = ok(await stack.http.get(f"/skus/{sku}"))
    body = {
        k: current[k] for k in ("title", "price_cents", "product_type", "stock_policy", "listed")
    }
    ok(await stack.http.put(f"/skus/{sku}", json=body | changes, headers=stack.merchant.headers))


async def set_stock(stack: Stack, sku: str, location: str, on_hand: int) -> None:
    ok(
        await stack.http.put(
            f"/skus/{sku}/stock/{location}",
            json={"on_hand": on_hand},
            headers=stack.merchant.headers,
        )
    )


async def reorder(stack: Stack, buyer: User, order_id: str, key: str | None = None) -> Any:
    headers = buyer.headers | ({"Idempotency-Key": key} if key else {})
    return await stack.http.post(f"/orders/{order_id}/reorder", headers=headers)


async def test_buy_again_places_what_can_be_bought_and_names_the_rest(stack: Stack) -> None:
    buyer, other = stack.buyer(), stack.buyer()
    tea = await stack.put_sku({"WH-A": 10}, price_cents=1000)
    mug = await stack.put_sku({"WH-A": 10}, price_cents=2000)
    tray = await stack.put_sku({"WH-A": 10}, price_cents=3000)
    old = await completed(stack, buyer, [(tea, 3), (mug, 1), (tray, 1)])

    await edit_sku(stack, tea, price_cents=1200)  # today's price
    await set_stock(stack, tea, "WH-A", 2)  # 2 of 3 left
    await edit_sku(stack, mug, listed=False)
    await set_stock(stack, tray, "WH-A", 0)

    expect_problem(await reorder(stack, other, old["id"]), 404, "NOT_FOUND")
    expect_problem(await reorder(stack, stack.merchant, old["id"]), 403, "FORBIDDEN")
    body = ok(await reorder(stack, buyer, old["id"], key="again-1"), 201)
    new = body["order"]
    assert new["id"] != old["id"] and new["reorder_of"] == old["id"]
    assert [(x["sku"], x["quantity"], x["unit_price_cents"]) for x in new["lines"]] == [
        (tea, 2, 1200)
    ]
    assert new["status"] == "PENDING_PAYMENT" and new["address"] == old["address"]
    assert sorted((u["sku"], u["reason"], u["placed"]) for u in body["unavailable"]) == sorted(
        [(tea, "OUT_OF_STOCK", 2), (mug, "DELISTED", 0), (tray, "OUT_OF_STOCK", 0)]
    )
    assert await stack.stock(tea) == {"WH-A": (2, 2)}  # locked like any placement

    again = ok(await reorder(stack, buyer, old["id"], key="again-1"), 201)
    assert again["order"]["id"] == new["id"]  # the same key: the same new order
    assert again["unavailable"] == body["unavailable"]
    assert await stack.stock(tea) == {"WH-A": (2, 2)}


async def test_buy_again_of_nothing_available_is_refused_and_leaves_nothing(stack: Stack) -> None:
    buyer = stack.buyer()
    mug = await stack.put_sku({"WH-A": 5}, price_cents=2000)
    tray = await stack.put_sku({"WH-A": 5}, price_cents=3000)
    old = await completed(stack, buyer, [(mug, 1), (tray, 2)])
    await edit_sku(stack, mug, listed=False)
    await set_stock(stack, tray, "WH-A", 1)
    stock_before = await stack.stock(tray)
    listed_before = ok(await stack.http.get("/orders", headers=buyer.headers))["items"]
    await set_stock(stack, tray, "WH-A", 0)

    problem = expect_problem(
        await reorder(stack, buyer, old["id"], key="none-1"), 409, "NOTHING_AVAILABLE"
    )
    assert sorted((u["sku"], u["reason"]) for u in problem["unavailable"]) == sorted(
        [(mug, "DELISTED"), (tray, "OUT_OF_STOCK")]
    )
    # refused before any workflow: nothing in the Web UI looks like an order
    new_id = keyed_id("none-1", buyer.id, "reorder", old["id"])
    with pytest.raises(RPCError) as gone:
        await stack.temporal.get_workflow_handle(f"order-{new_id}").describe()
    assert gone.value.status is RPCStatusCode.NOT_FOUND
    expect_problem(
        await stack.http.get(f"/orders/{new_id}", headers=buyer.headers), 404, "NOT_FOUND"
    )
    again = expect_problem(
        await reorder(stack, buyer, old["id"], key="none-1"), 409, "NOTHING_AVAILABLE"
    )
    assert again["unavailable"] == problem["unavailable"]  # the same key: judged afresh
    assert ok(await stack.http.get("/orders", headers=buyer.headers))["items"] == listed_before
    assert await stack.stock(tray) == {"WH-A": (0, 0)} and stock_before == {"WH-A": (1, 0)}


async def test_a_completed_order_is_reviewed_once_per_buyer(stack: Stack) -> None:
    buyer, other = stack.buyer(), stack.buyer()
    tea = await stack.put_sku({"WH-A": 9}, price_cents=1000)
    mug = await stack.put_sku({"WH-A": 9}, price_cents=2000)
    order = await completed(stack, buyer, [(tea, 1), (mug, 1)])
    path = f"/orders/{order['id']}/review"

    for rating in (0, 6):
        expect_problem(await stack.act(buyer, path, {"rating": rating}), 422, "VALIDATION")
    expect_problem(
        await stack.act(buyer, path, {"rating": 4, "text": "x" * 2001}), 422, "VALIDATION"
    )
    expect_problem(await stack.act(other, path, {"rating": 5}), 404, "NOT_FOUND")
    expect_problem(await stack.act(stack.merchant, path, {"rating": 5}), 403, "FORBIDDEN")
    assert ok(await stack.http.get(f"/skus/{tea}/reviews"))["count"] == 0  # refusals wrote nothing

    reviewed = ok(await stack.act(buyer, path, {"rating": 5, "text": "fragrant and fresh"}))
    assert (reviewed["status"], reviewed["sub_statuses"], reviewed["reviewed"]) == (
        "COMPLETED",
        [],
        True,
    )
    expect_problem(await stack.act(buyer, path, {"rating": 1}), 409, "INVALID_TRANSITION")
    for sku in (tea, mug):
        page = ok(await stack.http.get(f"/skus/{sku}/reviews"))  # anyone: no token
        assert (page["average"], page["count"], page["next_cursor"]) == (5.0, 1, None)
        [item] = page["items"]
        assert (item["rating"], item["text"], item["verified_purchase"]) == (
            5,
            "fragrant and fresh",
            True,
        )
        assert item["buyer"] != buyer.id and item["buyer"].startswith(buyer.id[0])  # masked
    events = [e["type"] for e in await stack.events(buyer, order["id"])]
    assert events[-1] == "REVIEWED"

    second = await completed(stack, buyer, [(tea, 2)])
    ok(await stack.act(buyer, f"/orders/{second['id']}/review", {"rating": 2, "text": "meh"}))
    page = ok(await stack.http.get(f"/skus/{tea}/reviews", params={"limit": 1}))
    assert (page["average"], page["count"], page["items"][0]["rating"]) == (3.5, 2, 2)
    rest = ok(await stack.http.get(f"/skus/{tea}/reviews", params={"cursor": page["next_cursor"]}))
    assert [i["rating"] for i in rest["items"]] == [5] and rest["next_cursor"] is None
    expect_problem(
        await stack.http.get(f"/skus/{tea}/reviews", params={"cursor": "bad"}), 422, "VALIDATION"
    )


async def test_an_order_that_is_not_completed_is_not_reviewed(stack: Stack) -> None:
    buyer = stack.buyer()
    tea = await stack.put_sku({"WH-A": 9}, price_cents=1000)
    unpaid = await stack.placed(buyer, [(tea, 1)])
    paid = await stack.paid(buyer, [(tea, 1)])
    for order in (unpaid, paid):
        problem = expect_problem(
            await stack.act(buyer, f"/orders/{order['id']}/review", {"rating": 5}),
            409,
            "INVALID_TRANSITION",
        )
        assert "only a completed order is reviewed" in problem["detail"]
    assert ok(await stack.http.get(f"/skus/{tea}/reviews"))["count"] == 0
