"""Input an attacker or a broken partner sends is refused at the edge with a clear code and
changes nothing: amounts beyond 10^12 cents, JSON nested without end, non-integer
quantities, bodies that are not JSON (issue 8, items 3 and 8)."""

from gateways.signing import SIGNATURE_HEADER, sign
from tests.conftest import PAYMENT_SECRET
from tests.workflows.conftest import ADDRESS, Shop


async def test_a_signed_payment_beyond_the_amount_bound_is_refused_and_changes_nothing(
    shop: Shop,
) -> None:
    order = await shop.place([("TEA", 1)])
    r = await shop.pay_callback(order, amount=10**30)
    assert (r.status_code, r.json()["code"]) == (422, "VALIDATION")
    r = await shop.pay_callback(order, amount=10**12 + 1)
    assert r.status_code == 422
    after = await shop.order(order["id"])
    assert (after["status"], after["version"], after["refunds"]) == ("PENDING_PAYMENT", 1, [])


async def test_json_nested_without_end_is_a_problem_never_a_500(shop: Shop) -> None:
    body = b"[" * 100_000
    signed = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, PAYMENT_SECRET)}
    r = await shop.http.post("/webhooks/payments", content=body, headers=signed)
    assert (r.status_code, r.json()["code"]) == (422, "VALIDATION")
    r = await shop.http.post(
        "/orders", content=body, headers=shop.as_buyer() | {"Content-Type": "application/json"}
    )
    assert (r.status_code, r.json()["code"]) == (400, "MALFORMED_BODY")
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_a_quantity_must_be_a_json_integer(shop: Shop) -> None:
    for quantity in (True, "1", 1.5):
        body = {"lines": [{"sku": "TEA", "quantity": quantity}], "address": ADDRESS}
        r = await shop.http.post("/orders", json=body, headers=shop.as_buyer())
        assert (r.status_code, r.json()["code"]) == (422, "VALIDATION"), quantity
    assert await shop.stock("TEA") == {"WH-A": (3, 0), "WH-B": (5, 0)}  # nothing locked
