"""Gateway payments (alipay/wechat) through the sandbox, whose signed callbacks reach the API
on its real URL: duplicates settle once, wrong amounts and late payments are refunded."""

import uuid
from typing import Any

import pytest

from domain.messages import ReconcileInput, ReconcileResult
from tests.e2e.harness import Json, Stack, User, ok, refunds_answered
from workflows.reconcile import ReconcileWorkflow

pytestmark = pytest.mark.e2e


async def _intent(stack: Stack, buyer: User, order: Json, channel: str = "alipay") -> Json:
    intent: Json = ok(
        await stack.act(buyer, f"/orders/{order['id']}/payment-intents", {"channel": channel}),
        201,
    )
    assert intent["amount_cents"] == order["total_cents"]
    assert intent["pay_url"] == f"{stack.gateway_url}/pay/{intent['intent_id']}"
    return intent


async def _pay(stack: Stack, intent: Json, **options: Any) -> Json:
    """The buyer pays on the sandbox's page; the sandbox calls our webhook back."""
    paid: Json = ok(await stack.http.post(intent["pay_url"], params=options))
    assert paid["delivered"] is True, paid
    assert paid["status_code"] == 200, paid
    return paid


async def _deliveries(stack: Stack, event_ids: list[str]) -> list[Json]:
    """The sandbox's delivery log for these events, once it has nothing left to send."""
    log = ok(await stack.gateway("GET", "/v1/deliveries", params={"wait_seconds": 10}))
    assert log["idle"] is True
    records = {r["event_id"]: r for r in log["deliveries"]}
    return [records[e] for e in event_ids]


async def _gateway_refund(stack: Stack, refund_id: str) -> Json:
    data: Json = ok(await stack.gateway("GET", f"/v1/refunds/{refund_id}"))
    return data


async def test_a_payment_delivered_three_times_settles_the_order_once(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5}, price_cents=3000)
    order = await stack.placed(buyer, [(sku, 1)])
    intent = await _intent(stack, buyer, order)

    paid = await _pay(stack, intent, duplicates=2)
    txn_id = paid["txn_id"]
    assert txn_id.startswith("alipay-")
    assert len(set(paid["event_ids"])) == 3
    settled = await stack.wait_order(
        buyer, order["id"], lambda o: o["status"] != "PENDING_PAYMENT", "the payment to land"
    )
    assert settled["status"] == "PENDING_SHIPMENT"

    # every copy reached the API and was accepted (2xx), none was retried or refused
    for record in await _deliveries(stack, paid["event_ids"]):
        assert record["status"] == "delivered", record
        assert [a["status_code"] for a in record["attempts"]] == [200], record
    # the copies are now signals in the workflow's history; an update is handled after them
    shipped = await stack.ship(settled)
    assert shipped["status"] == "SHIPPED"

    assert shipped["payment"]["txn_id"] == txn_id
    assert shipped["payment"]["channel"] == "alipay"
    assert shipped["payment"]["amount_cents"] == order["total_cents"]
    assert shipped["paid_cents"] == order["total_cents"]
    assert (shipped["refunds"], shipped["refunded_cents"]) == ([], 0)
    types = [e["type"] for e in await stack.events(buyer, order["id"])]
    assert types == ["PLACED", "PAID", "PACKAGE_SHIPPED"]
    assert (await stack.gateway("GET", f"/v1/refunds/{txn_id}-R")).status_code == 404
    assert await stack.stock(sku) == {"WH-A": (4, 0)}


async def test_a_payment_of_the_wrong_amount_is_refunded_and_the_order_stays_payable(
    stack: Stack,
) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5}, price_cents=3000)
    order = await stack.placed(buyer, [(sku, 2)])
    intent = await _intent(stack, buyer, order, channel="wechat")

    paid = await _pay(stack, intent, amount_cents=1)
    after = await stack.wait_order(
        buyer, order["id"], refunds_answered, "the wrong amount to be refunded"
    )
    assert after["status"] == "PENDING_PAYMENT"
    assert after["payment"] is None
    assert after["paid_cents"] == 0
    [refund] = after["refunds"]
    assert refund["reason"] == "WRONG_AMOUNT"
    assert (refund["txn_id"], refund["channel"], refund["amount_cents"]) == (
        paid["txn_id"],
        "wechat",
        1,
    )
    assert refund["status"] == "SUCCEEDED"
    assert after["refunded_cents"] == 1
    assert await _gateway_refund(stack, refund["id"]) == {
        "refund_id": refund["id"],
        "txn_id": paid["txn_id"],
        "amount_cents": 1,
        "status": "succeeded",
    }
    assert [e["type"] for e in await stack.events(buyer, order["id"])] == [
        "PLACED",
        "REFUNDED",
        "REFUND_SUCCEEDED",
    ]
    assert await stack.stock(sku) == {"WH-A": (5, 2)}  # still locked for this order

    await stack.top_up(buyer, order["total_cents"])
    settled = ok(await stack.act(buyer, f"/orders/{order['id']}/pay", {"channel": "balance"}))
    assert settled["status"] == "PENDING_SHIPMENT"


def _refund_event(events: list[Json]) -> Json | None:
    """The refund of a payment that came after the order closed: recorded by the order's own
    workflow (REFUNDED) if it still ran, else by the late-payment workflow."""
    found = [e for e in events if e["type"] in ("REFUNDED", "LATE_PAYMENT_REFUNDED")]
    assert len(found) <= 1, events
    return found[0] if found else None


async def test_a_buyer_cancels_an_unpaid_order_and_a_late_payment_is_refunded(
    stack: Stack,
) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5, "WH-B": 1}, price_cents=3000)
    order = await stack.placed(buyer, [(sku, 6)])
    assert await stack.stock(sku) == {"WH-A": (5, 5), "WH-B": (1, 1)}
    intent = await _intent(stack, buyer, order)
    # the gateway refuses to close the intent when the order closes (else its page could no
    # longer take the money): the order closes all the same
    ok(await stack.gateway("POST", "/v1/_faults", json={"refuse_next_closes": 1}))

    cancelled = ok(
        await stack.act(buyer, f"/orders/{order['id']}/cancel", {"reason": "changed my mind"})
    )
    assert cancelled["status"] == "CLOSED"
    assert cancelled["close_reason"] == "BUYER_CANCELLED"
    assert await stack.stock(sku) == {"WH-A": (5, 0), "WH-B": (1, 0)}  # locks released
    last = (await stack.events(buyer, order["id"]))[-1]
    assert (last["type"], last["actor"]) == ("CLOSED", {"kind": "buyer", "id": buyer.id})
    assert last["data"] == {"reason": "BUYER_CANCELLED", "note": "changed my mind"}

    # the buyer had the pay page open and pays anyway
    paid = await _pay(stack, intent)
    events = await stack.wait_events(
        buyer, order["id"], lambda ev: _refund_event(ev) is not None, "the late refund"
    )
    refund = _refund_event(events)
    assert refund is not None
    assert refund["data"]["txn_id"] == paid["txn_id"]
    assert refund["data"]["amount_cents"] == order["total_cents"]
    assert refund["data"]["reason"] == "ORDER_CLOSED"
    gateway_refund = await _gateway_refund(stack, refund["data"]["id"])
    assert (gateway_refund["txn_id"], gateway_refund["amount_cents"]) == (
        paid["txn_id"],
        order["total_cents"],
    )
    assert gateway_refund["status"] == "succeeded"

    final = await stack.order(buyer, order["id"])
    assert (final["status"], final["close_reason"]) == ("CLOSED", "BUYER_CANCELLED")
    assert final["payment"] is None  # never kept
    assert await stack.stock(sku) == {"WH-A": (5, 0), "WH-B": (1, 0)}


async def test_a_merchant_closes_an_unpaid_order(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 4})
    order = await stack.placed(buyer, [(sku, 3)])
    assert await stack.stock(sku) == {"WH-A": (4, 3)}

    closed = ok(
        await stack.act(stack.merchant, f"/orders/{order['id']}/close", {"reason": "no reply"})
    )
    assert (closed["status"], closed["close_reason"]) == ("CLOSED", "SELLER_CLOSED")
    assert await stack.order(buyer, order["id"]) == closed
    assert await stack.stock(sku) == {"WH-A": (4, 0)}
    last = (await stack.events(buyer, order["id"]))[-1]
    assert (last["type"], last["actor"]) == ("CLOSED", {"kind": "merchant", "id": "merchant"})


async def test_a_payment_whose_callback_never_came_is_found_by_the_sweep(stack: Stack) -> None:
    buyer = stack.buyer()
    sku = await stack.put_sku({"WH-A": 5}, price_cents=3000)
    order = await stack.placed(buyer, [(sku, 1)])
    intent = await _intent(stack, buyer, order, channel="wechat")
    faults = {"drop_next_callbacks": 1}
    assert ok(await stack.gateway("POST", "/v1/_faults", json=faults)) == {
        "fail_next_refunds": 0,
        "refuse_next_refunds": 0,
        "drop_next_callbacks": 1,
        "refuse_next_closes": 0,
    }

    paid = ok(await stack.http.post(intent["pay_url"]))  # the gateway took the money...
    assert (paid["event_ids"], paid["delivered"], len(paid["dropped"])) == ([], False, 1)
    captured = ok(await stack.gateway("GET", f"/v1/intents/{intent['intent_id']}"))
    assert (captured["status"], captured["txn_id"]) == ("captured", paid["txn_id"])
    assert (await stack.order(buyer, order["id"]))["status"] == "PENDING_PAYMENT"  # ...silently

    result: ReconcileResult = await stack.temporal.execute_workflow(
        ReconcileWorkflow.run,
        ReconcileInput(grace_seconds=0),
        id=f"reconcile-sweep-{uuid.uuid4().hex[:8]}",
        task_queue=stack.settings.task_queue,
    )
    assert paid["txn_id"] in result.captures_delivered
    settled = await stack.wait_order(
        buyer, order["id"], lambda o: o["status"] != "PENDING_PAYMENT", "the swept payment"
    )
    assert settled["status"] == "PENDING_SHIPMENT"
    assert (settled["payment"]["txn_id"], settled["payment"]["channel"]) == (
        paid["txn_id"],
        "wechat",
    )
    assert settled["paid_cents"] == order["total_cents"]
    assert [e["type"] for e in await stack.events(buyer, order["id"])] == ["PLACED", "PAID"]
    again: ReconcileResult = await stack.temporal.execute_workflow(
        ReconcileWorkflow.run,
        ReconcileInput(grace_seconds=0),
        id=f"reconcile-sweep-{uuid.uuid4().hex[:8]}",
        task_queue=stack.settings.task_queue,
    )
    assert paid["txn_id"] not in again.captures_delivered  # in the ledger now
