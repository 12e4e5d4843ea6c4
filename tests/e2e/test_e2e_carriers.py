"""Carriers from a list: a package ships with a listed carrier, named in any case and kept
upper-case, so its carrier's callbacks find it whatever case they use; an unknown carrier
is refused naming the list, and nothing changes."""

import pytest

from domain.carriers import CARRIERS
from sandboxes.carrier import send_carrier_event
from tests.e2e.harness import Stack, expect_problem, ok, uid

pytestmark = pytest.mark.e2e


async def test_anyone_reads_the_carriers(stack: Stack) -> None:
    assert {"SF", "ZTO", "YTO", "YD", "STO", "JD", "EMS", "DBL"} <= set(CARRIERS)
    listed = ok(await stack.http.get("/carriers"))  # no token
    assert [c["code"] for c in listed] == list(CARRIERS)
    assert next(c for c in listed if c["code"] == "SF")["name"].startswith("顺丰速运")


async def test_a_carrier_in_any_case_is_one_carrier_and_an_unknown_one_is_refused(
    stack: Stack,
) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5})
    order = await stack.paid(buyer, [(sku, 1)])
    package = order["packages"][0]["id"]
    path = f"/orders/{order['id']}/packages/{package}/ship"
    tracking = uid("T").replace("-", "")
    for bad in ("顺丰", "UPSX", " "):
        problem = expect_problem(
            await stack.act(stack.merchant, path, {"carrier": bad, "tracking_no": tracking}),
            422,
            "VALIDATION",
        )
        assert "carrier" in problem["detail"]
        if bad.strip():
            assert "SF, ZTO" in problem["detail"]  # it names the list
    assert (await stack.order(buyer, order["id"]))["version"] == order["version"]

    shipped = ok(
        await stack.act(stack.merchant, path, {"carrier": " sf ", "tracking_no": tracking})
    )
    assert shipped["packages"][0]["carrier"] == "SF"
    # the carrier calls back in its own case: the package is found all the same
    answer = await send_carrier_event(
        f"{stack.base_url}/webhooks/carriers",
        stack.settings.carrier_webhook_secret,
        carrier="Sf",
        tracking_no=tracking,
        event="DELIVERED",
    )
    assert answer.status_code == 200, answer.text
    delivered = await stack.wait_order(
        buyer,
        order["id"],
        lambda o: o["packages"][0]["status"] == "RECEIVED",  # signed for: received
        "the delivery to land",
    )
    assert delivered["packages"][0]["carrier"] == "SF"
