"""Input an attacker or a broken partner sends is refused at the edge with a clear code and
changes nothing: amounts beyond 10^12 cents, JSON nested without end, non-integer
quantities, bodies that are not JSON (issue 8, items 3 and 8)."""

import httpx

from gateways.signing import SIGNATURE_HEADER, sign
from tests.conftest import GATEWAY_KEY, PAYMENT_SECRET
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


async def test_a_transaction_that_paid_one_order_never_pays_or_refunds_another(
    shop: Shop,
) -> None:
    x = await shop.place([("TEA", 1)])
    y = await shop.place([("MUG", 1)])
    txn = "alipay-shared-1"
    assert (await shop.pay_callback(x, txn_id=txn)).status_code == 200
    x_paid = await shop.settle(x["id"])
    assert x_paid.payment is not None and x_paid.payment.txn_id == txn

    r = await shop.pay_callback(y, txn_id=txn, amount=y["total_cents"])
    assert (r.status_code, r.json()["status"]) == (200, "anomaly")  # recorded: no retry storm
    y_now = await shop.settle(y["id"])
    assert (y_now.status, y_now.payment, y_now.refunds) == ("PENDING_PAYMENT", None, [])
    events = (await shop.http.get(f"/orders/{y['id']}/events", headers=shop.as_buyer())).json()
    assert events[-1]["type"] == "PAYMENT_ANOMALY"
    assert events[-1]["data"]["belongs_to_order"] == x["id"]
    x_now = await shop.settle(x["id"])
    assert (x_now.status, x_now.refunds, x_now.version) == (
        "PENDING_SHIPMENT",
        [],
        x_paid.version,
    )
    sandbox = shop.gateway.sandbox  # type: ignore[attr-defined]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox), base_url="http://gateway.test"
    ) as gw:
        r = await gw.get(f"/v1/refunds/{txn}-R", headers={"Authorization": f"Bearer {GATEWAY_KEY}"})
    assert r.status_code == 404  # the gateway was never asked to refund it
