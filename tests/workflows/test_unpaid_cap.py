"""At the API: a buyer's placement past ORDERS_MAX_UNPAID_ORDERS is a 429 that says why, and
leaves no lock; paying one of them makes room; another buyer is not held up."""

from api.auth import Role, mint
from tests.workflows.conftest import ADDRESS, Shop
from workflows.ids import order_workflow_id


async def test_the_21st_unpaid_order_is_429_and_paying_one_makes_room(shop: Shop) -> None:
    placed = [await shop.place([("MUG", 1)], key=f"k-{i}") for i in range(20)]
    assert await shop.stock("MUG") == {"WH-A": (10, 0)}  # MUG deducts on payment: no locks
    cart = {"lines": [{"sku": "TEA", "quantity": 1}], "address": ADDRESS}
    refused = await shop.http.post("/orders", json=cart, headers=shop.as_buyer())
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "TOO_MANY_UNPAID_ORDERS"
    assert "20 unpaid orders already" in refused.json()["detail"]
    assert await shop.stock("TEA") == {"WH-A": (3, 0), "WH-B": (5, 0)}  # nothing locked

    other = {"Authorization": f"Bearer {mint(shop.settings.jwt_secret, 'b-other', Role.BUYER)}"}
    theirs = await shop.http.post("/orders", json=cart, headers=other)
    assert theirs.status_code == 201, theirs.text
    shop.started.append(order_workflow_id(theirs.json()["id"]))  # ended with the test

    await shop.pay(placed[0])
    assert (await shop.place([("TEA", 1)]))["status"] == "PENDING_PAYMENT"
