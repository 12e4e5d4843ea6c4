"""The search attributes operators filter on in the Web UI: PaidAt ("paid more than N hours
ago and not shipped") and OpenCases, queried as the Web UI queries them."""

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from scripts import search_attributes
from tests.conftest import binary
from tests.e2e.harness import Stack, eventually, expect_problem, ok
from tests.e2e.test_e2e_after_sales import form, open_case
from workflows.ids import SEARCH_ATTRIBUTES

pytestmark = pytest.mark.e2e


async def _found(stack: Stack, query: str) -> list[str]:
    return [w.id async for w in stack.temporal.list_workflows(query)]


async def test_paid_and_not_shipped_and_open_cases_are_searchable(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5})
    unpaid = await stack.placed(buyer, [(sku, 1)])
    paid = await stack.paid(buyer, [(sku, 1)])
    shipped = await stack.ship(await stack.paid(buyer, [(sku, 1)]))
    ids = {o["id"]: f"order-{o['id']}" for o in (unpaid, paid, shipped)}
    mine = f"BuyerId = '{buyer.id}'"

    # "paid more than N ago and not shipped": N is 0 here, the query is the operator's
    later = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    query = f"{mine} AND PaidAt < '{later}' AND OrderStatus = 'PENDING_SHIPMENT'"
    found = await eventually(
        lambda: _found(stack, query), lambda f: len(f) == 1, what="the paid, unshipped order"
    )
    assert found == [ids[paid["id"]]]
    earlier = datetime.fromisoformat(paid["payment"]["paid_at"]) - timedelta(seconds=1)
    assert await _found(stack, f"{mine} AND PaidAt < '{earlier.isoformat()}'") == []

    # an open after-sales case counts on its order, and no longer once it is withdrawn
    ok(await stack.act(buyer, f"/orders/{shipped['id']}/confirm-receipt", {}))
    case = ok(await open_case(stack, buyer, shipped["id"], form("REFUND_ONLY", [(sku, 1)])), 201)
    with_case = await eventually(
        lambda: _found(stack, f"{mine} AND OpenCases = 1"),
        lambda f: len(f) == 1,
        what="the order with an open case",
    )
    assert with_case == [ids[shipped["id"]]]
    ok(await stack.act(buyer, f"/after-sales/{case['id']}/withdraw", {"version": case["version"]}))
    await eventually(
        lambda: _found(stack, f"{mine} AND OpenCases = 0 AND WorkflowId = '{ids[shipped['id']]}'"),
        lambda f: len(f) == 1,
        what="the case to close on its order",
    )


async def test_the_register_command_adds_what_a_cluster_lacks_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=binary("temporal"))
    try:
        monkeypatch.setenv("TEMPORAL_ADDRESS", env.client.service_client.config.target_host)
        monkeypatch.setenv("TEMPORAL_NAMESPACE", env.client.namespace)
        assert await search_attributes.register() == sorted(k.name for k in SEARCH_ATTRIBUTES)
        assert await search_attributes.register() == []  # already there: nothing to do
        listed = await env.client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=env.client.namespace)
        )
        assert listed.custom_attributes["PaidAt"] == IndexedValueType.INDEXED_VALUE_TYPE_DATETIME
        assert listed.custom_attributes["OpenCases"] == IndexedValueType.INDEXED_VALUE_TYPE_INT
    finally:
        await env.shutdown()


async def test_the_order_list_filters_as_operators_do(stack: Stack) -> None:
    """GET /orders takes the console's filters; bad ones are refused with the reason."""
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5})
    unpaid = await stack.placed(buyer, [(sku, 1)])
    paid = await stack.paid(buyer, [(sku, 1)])
    shipped = await stack.ship(await stack.paid(buyer, [(sku, 1)]))

    async def listed(query: str) -> list[str]:
        page = ok(
            await stack.http.get(
                f"/orders?buyer_id={buyer.id}&{query}", headers=stack.merchant.headers
            )
        )
        return [o["id"] for o in page["items"]]

    assert await listed("unshipped_hours=0") == [paid["id"]]
    assert await listed("unshipped_hours=1") == []
    paid_at = datetime.fromisoformat(paid["payment"]["paid_at"])
    window = {
        "paid_from": paid_at.isoformat(),
        "paid_to": (paid_at + timedelta(microseconds=1)).isoformat(),
    }
    assert await listed(urlencode(window)) == [paid["id"]]
    assert set(await listed("paid_from=2000-01-01T00:00:00Z")) == {paid["id"], shipped["id"]}
    assert await listed("refund_failed=true") == []
    assert set(await listed("refund_failed=false")) == {unpaid["id"], paid["id"], shipped["id"]}
    assert await listed("has_open_case=true") == []
    for query, detail in (
        ("placed_from=2026-01-01T00:00:00", "placed_from: give a zone (Z or +08:00)"),
        ("paid_to=0001-01-01T00:00:00%2B08:00", "paid_to: a time from 1970 to 9998"),
        ("placed_to=9999-12-31T23:59:59-08:00", "placed_to: a time from 1970 to 9998"),
        ("unshipped_hours=-1", "unshipped_hours: Input should be greater than or equal to 0"),
        (
            "sub_status=LOST",
            "sub_status: Input should be 'PARTIALLY_SHIPPED', 'REFUNDING' or 'AWAITING_REVIEW'",
        ),
    ):
        answer = await stack.http.get(f"/orders?{query}", headers=stack.merchant.headers)
        assert expect_problem(answer, 422, "VALIDATION")["detail"].endswith(detail), query
