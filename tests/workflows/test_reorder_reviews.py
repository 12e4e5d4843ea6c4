"""Buy again and reviews through the real API on the time-skipping server; their histories
are recorded for the replay test."""

from datetime import timedelta

from tests.workflows.conftest import Shop, record


async def test_a_review_clears_awaiting_review_and_the_window_still_ends(shop: Shop) -> None:
    order = await shop.pay(await shop.place([("TEA", 1)]))
    await shop.ship(order["id"], order["packages"][0]["id"], "SFREV1")
    done = (await shop.post(f"/orders/{order['id']}/confirm-receipt")).json()
    assert done["sub_statuses"] == ["AWAITING_REVIEW"]
    r = await shop.post(f"/orders/{order['id']}/review", {"rating": 4, "text": "good"})
    assert r.status_code == 200, r.text
    assert (r.json()["sub_statuses"], r.json()["reviewed"]) == ([], True)
    page = (await shop.http.get("/skus/TEA/reviews")).json()
    assert (page["average"], page["count"]) == (4.0, 1)
    await shop.env.sleep(timedelta(days=16))  # past the after-sales window: the order ends
    final = await shop.handle(order["id"]).result()
    assert final is not None and final.reviewed
    r = await shop.post(f"/orders/{order['id']}/review", {"rating": 1})
    assert r.status_code == 409  # reviewed, and its workflow is over
    await record(shop.handle(order["id"]), "reviewed")


async def test_a_reorder_is_a_new_order_through_the_same_placement(shop: Shop) -> None:
    old = await shop.pay(await shop.place([("TEA", 2), ("FLASH", 1)]))
    r = await shop.http.post(
        f"/orders/{old['id']}/reorder", headers=shop.as_buyer() | {"Idempotency-Key": "k1"}
    )
    assert r.status_code == 201, r.text
    new = r.json()["order"]
    assert new["reorder_of"] == old["id"]
    assert [(x["sku"], x["quantity"]) for x in new["lines"]] == [("TEA", 2), ("FLASH", 1)]
    assert r.json()["unavailable"] == []
    shop.started.append(f"order-{new['id']}")
    assert await shop.stock("FLASH") == {"WH-B": (1, 1)}  # 2 - 1 paid, 1 locked again
    await record(shop.handle(new["id"]), "placed_first_reordered")
