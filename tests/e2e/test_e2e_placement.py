"""Placing orders: idempotency, and every business refusal changes nothing."""

import pytest

from tests.e2e.harness import Json, Stack, User, eventually, expect_problem, ok, uid

pytestmark = pytest.mark.e2e


async def _orders_of(stack: Stack, buyer: User) -> list[Json]:
    page = ok(await stack.http.get("/orders", headers=buyer.headers))
    assert page["next_cursor"] is None
    items: list[Json] = page["items"]
    return items


async def test_the_same_idempotency_key_places_one_order(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 10})
    key = uid("key")

    first = ok(await stack.place(buyer, [(sku, 2)], key=key), 201)
    again = ok(await stack.place(buyer, [(sku, 1), (sku, 1)], key=key), 201)  # same cart
    assert again == first
    assert await stack.stock(sku) == {"WH-A": (10, 2)}  # locked once
    assert [o["id"] for o in await _orders_of(stack, buyer)] == [first["id"]]

    body = expect_problem(
        await stack.place(buyer, [(sku, 3)], key=key), 409, "IDEMPOTENCY_CONFLICT"
    )
    assert body["order_id"] == first["id"]
    assert await stack.stock(sku) == {"WH-A": (10, 2)}
    assert await stack.order(buyer, first["id"]) == first
    assert [e["type"] for e in await stack.events(buyer, first["id"])] == ["PLACED"]

    # the key is the buyer's own: another buyer's same key is another order
    other = stack.buyer()
    theirs = ok(await stack.place(other, [(sku, 2)], key=key), 201)
    assert theirs["id"] != first["id"]
    assert await stack.stock(sku) == {"WH-A": (10, 4)}


async def test_an_order_beyond_the_stock_is_refused(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 2, "WH-B": 1})
    other = await stack.put_sku({"WH-A": 5})

    body = expect_problem(await stack.place(buyer, [(other, 1), (sku, 4)]), 409, "OUT_OF_STOCK")
    assert body["shortfalls"] == [{"sku": sku, "requested": 4, "available": 3}]
    assert await stack.stock(sku) == {"WH-A": (2, 0), "WH-B": (1, 0)}
    assert await stack.stock(other) == {"WH-A": (5, 0)}  # its line was not locked either
    assert await _orders_of(stack, buyer) == []

    # both locations together serve 3
    placed = ok(await stack.place(buyer, [(sku, 3)]), 201)
    assert await stack.stock(sku) == {"WH-A": (2, 2), "WH-B": (1, 1)}
    # the Web UI's "orders of buyer X" lists the placed order only: the refusal started none
    query = f"WorkflowType = 'OrderWorkflow' AND BuyerId = '{buyer.id}'"

    async def listed() -> list[str]:
        return [w.id async for w in stack.temporal.list_workflows(query)]

    found = await eventually(listed, lambda ids: len(ids) > 0, what="the placed order's workflow")
    assert found == [f"order-{placed['id']}"]


async def test_a_purchase_limit_refuses_the_second_order_until_the_first_closes(
    stack: Stack,
) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 10}, limit_per_buyer=1)

    first = await stack.placed(buyer, [(sku, 1)])
    body = expect_problem(await stack.place(buyer, [(sku, 1)]), 409, "LIMIT_EXCEEDED")
    assert (body["sku"], body["limit"], body["already"], body["requested"]) == (sku, 1, 1, 1)
    assert await stack.stock(sku) == {"WH-A": (10, 1)}
    assert [o["id"] for o in await _orders_of(stack, buyer)] == [first["id"]]
    expect_problem(await stack.place(buyer, [(sku, 2)]), 409, "LIMIT_EXCEEDED")

    # the limit is per buyer
    ok(await stack.place(stack.buyer(), [(sku, 1)]), 201)
    # a closed order no longer counts
    ok(await stack.act(buyer, f"/orders/{first['id']}/cancel"))
    ok(await stack.place(buyer, [(sku, 1)]), 201)
    assert await stack.stock(sku) == {"WH-A": (10, 2)}


async def test_an_unknown_sku_is_refused(stack: Stack) -> None:
    buyer = stack.buyer()
    known = await stack.put_sku({"WH-A": 5})
    missing = uid("NOPE").upper()

    body = expect_problem(await stack.place(buyer, [(known, 1), (missing, 1)]), 422, "UNKNOWN_SKU")
    assert body["skus"] == [missing]
    assert await stack.stock(known) == {"WH-A": (5, 0)}
    assert await _orders_of(stack, buyer) == []
    expect_problem(await stack.http.get(f"/skus/{missing}"), 404, "NOT_FOUND")


async def test_a_delisted_sku_is_refused(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5}, listed=False)

    body = expect_problem(await stack.place(buyer, [(sku, 1)]), 409, "SKU_DELISTED")
    assert body["skus"] == [sku]
    assert await stack.stock(sku) == {"WH-A": (5, 0)}
    assert await _orders_of(stack, buyer) == []
