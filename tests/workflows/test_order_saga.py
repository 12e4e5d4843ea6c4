"""The order saga on the time-skipping server: timers, payments and their races."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError

from domain.messages import ShipRequest
from domain.models import Actor
from store import orders
from store.tables import RefundRow, StockHoldRow
from tests.workflows.conftest import Shop, record
from workflows.order import OrderWorkflow
from workflows.orphan_payment import OrphanPaymentWorkflow

DAY = timedelta(days=1)


async def test_unpaid_order_closes_after_24_hours_and_releases_its_stock(shop: Shop) -> None:
    order = await shop.place([("TEA", 4)])
    assert await shop.stock("TEA") == {"WH-A": (3, 0), "WH-B": (5, 4)}  # fullest location first

    deadline = datetime.fromisoformat(order["payment_deadline"])
    assert deadline - datetime.fromisoformat(order["created_at"]) == DAY
    # to just before the deadline, measured on the server's clock (it runs on in real time
    # between calls: a slow machine's second here once carried the order past its deadline)
    await shop.env.sleep(deadline - await shop.env.get_current_time() - timedelta(seconds=30))
    assert (await shop.order(order["id"]))["status"] == "PENDING_PAYMENT"
    await shop.env.sleep(timedelta(seconds=60))

    closed = await shop.handle(order["id"]).result()
    assert closed is not None
    assert (closed.status, closed.close_reason) == ("CLOSED", "PAYMENT_TIMEOUT")
    assert (await shop.order(order["id"]))["close_reason"] == "PAYMENT_TIMEOUT"
    assert await shop.stock("TEA") == {"WH-A": (3, 0), "WH-B": (5, 0)}
    async with shop.db.sessions() as s:
        states = set(await s.scalars(select(StockHoldRow.state)))
    assert states == {"RELEASED"}
    # no payment intent was opened: closed by one local activity, no gateway call
    history = await shop.handle(order["id"]).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled == []
    assert b"close_unless_intents" in b"".join(
        p.data
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        for p in e.marker_recorded_event_attributes.details["data"].payloads
    )
    await record(shop.handle(order["id"]), "payment_deadline_closed_at_once")


async def test_flash_sale_sku_shortens_the_payment_window(shop: Shop) -> None:
    order = await shop.place([("FLASH", 1), ("MUG", 1)])
    await shop.env.sleep(timedelta(minutes=15, seconds=1))
    closed = await shop.handle(order["id"]).result()
    assert closed is not None and closed.close_reason == "PAYMENT_TIMEOUT"


async def test_payment_at_23h59m_succeeds_and_the_timer_no_longer_closes(shop: Shop) -> None:
    order = await shop.place([("TEA", 4)])
    await shop.env.sleep(timedelta(hours=23, minutes=59))
    r = await shop.post(f"/orders/{order['id']}/pay", {"channel": "balance"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "PENDING_SHIPMENT"
    await shop.env.sleep(timedelta(hours=2))
    after = await shop.order(order["id"])
    assert (after["status"], after["close_reason"]) == ("PENDING_SHIPMENT", None)
    assert await shop.stock("TEA") == {"WH-A": (3, 0), "WH-B": (1, 0)}  # lock became deduction
    await record(shop.handle(order["id"]), "paid_with_balance")


async def test_gateway_payment_is_idempotent_on_txn_id(shop: Shop) -> None:
    order = await shop.place([("MUG", 2)])
    for _ in range(3):  # the gateway retries with new event ids, the same txn
        assert (await shop.pay_callback(order, txn_id="alipay-same")).status_code == 200
    paid = await shop.settle(order["id"])
    assert paid.status == "PENDING_SHIPMENT"
    assert paid.payment is not None and paid.payment.txn_id == "alipay-same"
    assert paid.refunds == []
    assert await shop.stock("MUG") == {"WH-A": (8, 0)}  # deducted once
    events = (await shop.http.get(f"/orders/{order['id']}/events", headers=shop.as_buyer())).json()
    assert [e["type"] for e in events] == ["PLACED", "PAID"]
    await record(shop.handle(order["id"]), "paid_by_gateway_with_duplicates")


async def test_a_second_different_payment_is_refunded(shop: Shop) -> None:
    order = await shop.place([("MUG", 1)])
    await shop.pay_callback(order, txn_id="alipay-1")
    await shop.pay_callback(order, txn_id="alipay-2")
    state = await shop.settle(order["id"])
    assert state.payment is not None
    assert state.payment.txn_id == "alipay-1"
    assert [(r.txn_id, r.reason, r.amount_cents) for r in state.refunds] == [
        ("alipay-2", "ALREADY_PAID", order["total_cents"])
    ]
    await record(shop.handle(order["id"]), "second_payment_refunded")


async def test_wrong_amount_is_refunded_and_the_order_stays_unpaid(shop: Shop) -> None:
    order = await shop.place([("MUG", 1)])
    await shop.pay_callback(order, amount=1, txn_id="alipay-short")
    await shop.settle(order["id"])
    state = await shop.order(order["id"])
    assert state["status"] == "PENDING_PAYMENT"
    assert [(r["txn_id"], r["reason"], r["amount_cents"]) for r in state["refunds"]] == [
        ("alipay-short", "WRONG_AMOUNT", 1)
    ]
    refund = await shop.gateway.refund("alipay-short", "alipay-short-R", 1, "WRONG_AMOUNT")
    assert refund.amount_cents == 1  # the sandbox already holds this very refund (idempotent)


async def test_payment_after_the_order_ended_is_refunded_and_recorded(shop: Shop) -> None:
    order = await shop.place([("TEA", 1)])
    await shop.env.sleep(DAY + timedelta(seconds=1))
    await shop.handle(order["id"]).result()  # the workflow has ended

    r = await shop.pay_callback(order, txn_id="alipay-late")
    assert r.status_code == 200 and r.json()["status"] == "refunding"
    orphan = shop.env.client.get_workflow_handle_for(
        OrphanPaymentWorkflow.run, "orphan-payment-alipay-late"
    )
    refund = await orphan.result()
    assert refund.amount_cents == order["total_cents"]
    await record(orphan, "orphan_payment_refunded")
    async with shop.db.sessions() as s:
        rows = list(await s.scalars(select(RefundRow)))
    assert [(x.txn_id, x.reason, x.amount_cents) for x in rows] == [
        ("alipay-late", "ORDER_CLOSED", order["total_cents"])
    ]
    events = (await shop.http.get(f"/orders/{order['id']}/events", headers=shop.as_buyer())).json()
    assert events[-1]["type"] == "LATE_PAYMENT_REFUNDED"
    stored = await shop.order(order["id"])  # the order's own record shows the money went back
    assert [(r["txn_id"], r["reason"]) for r in stored["refunds"]] == [
        ("alipay-late", "ORDER_CLOSED")
    ]
    assert (stored["status"], stored["refunded_cents"]) == ("CLOSED", order["total_cents"])
    again = await shop.pay_callback(order, txn_id="alipay-late")  # gateway retry: one refund
    assert again.status_code == 200
    await shop.env.client.get_workflow_handle("orphan-payment-alipay-late").result()
    async with shop.db.sessions() as s:
        assert len(list(await s.scalars(select(RefundRow)))) == 1


@pytest.mark.parametrize("offset", [timedelta(seconds=-1), timedelta(0), timedelta(seconds=1)])
async def test_timer_and_payment_racing_have_exactly_one_winner(
    shop: Shop, offset: timedelta
) -> None:
    order = await shop.place([("TEA", 2)])
    await shop.env.sleep(DAY + offset)
    r = await shop.pay_callback(order, txn_id=f"alipay-race-{int(offset.total_seconds()) + 1}")
    assert r.status_code == 200
    if r.json()["status"] == "refunding":  # the workflow had ended: the orphan path refunds
        await shop.env.client.get_workflow_handle(shop.started[-1]).result()
    else:
        await shop.settle(order["id"])
    final = await shop.order(order["id"])
    async with shop.db.sessions() as s:
        refunds = list(await s.scalars(select(RefundRow)))
    paid = final["status"] == "PENDING_SHIPMENT"
    closed_and_refunded = final["status"] == "CLOSED" and len(refunds) == 1
    assert paid != closed_and_refunded  # exactly one outcome
    if paid:
        assert refunds == [] and final["payment"] is not None
    if offset < timedelta(0):
        assert paid
    if offset > timedelta(0):
        assert closed_and_refunded and refunds[0].amount_cents == order["total_cents"]


async def test_auto_confirm_ten_days_after_shipment(shop: Shop) -> None:
    order = await shop.place([("BOOK", 1)])
    await shop.post(f"/orders/{order['id']}/pay", {"channel": "balance"})
    pkg = (await shop.order(order["id"]))["packages"][0]["id"]
    r = await shop.post(
        f"/orders/{order['id']}/packages/{pkg}/ship",
        {"carrier": "SF", "tracking_no": "SF100"},
        merchant=True,
    )
    assert r.json()["status"] == "SHIPPED"
    await shop.env.sleep(10 * DAY - timedelta(seconds=5))
    assert (await shop.order(order["id"]))["status"] == "SHIPPED"
    await shop.env.sleep(timedelta(seconds=10))
    done = await shop.order(order["id"])
    assert (done["status"], done["sub_statuses"]) == ("COMPLETED", ["AWAITING_REVIEW"])
    events = (await shop.http.get(f"/orders/{order['id']}/events", headers=shop.as_buyer())).json()
    assert events[-1]["type"] == "RECEIPT_CONFIRMED" and events[-1]["data"]["how"] == "automatic"
    await record(shop.handle(order["id"]), "placed_first_auto_confirmed")


async def test_buyer_extends_receipt_once_by_three_days(shop: Shop) -> None:
    order = await shop.place([("BOOK", 1)])
    await shop.post(f"/orders/{order['id']}/pay", {"channel": "credit"})
    pkg = (await shop.order(order["id"]))["packages"][0]["id"]
    await shop.post(
        f"/orders/{order['id']}/packages/{pkg}/ship",
        {"carrier": "SF", "tracking_no": "SF200"},
        merchant=True,
    )
    await shop.env.sleep(9 * DAY)
    r = await shop.post(f"/orders/{order['id']}/extend-receipt")
    assert r.status_code == 200, r.text
    twice = await shop.post(f"/orders/{order['id']}/extend-receipt")
    assert (twice.status_code, twice.json()["code"]) == (409, "INVALID_TRANSITION")
    await shop.env.sleep(4 * DAY - timedelta(seconds=5))  # day 13 minus 5 s
    assert (await shop.order(order["id"]))["status"] == "SHIPPED"
    await shop.env.sleep(timedelta(seconds=10))
    assert (await shop.order(order["id"]))["status"] == "COMPLETED"
    await record(shop.handle(order["id"]), "receipt_extended")


async def test_sold_out_at_payment_refunds_and_closes(shop: Shop) -> None:
    order = await shop.place([("MUG", 2)])
    r = await shop.http.put("/skus/MUG/stock/WH-A", json={"on_hand": 1}, headers=shop.as_merchant())
    assert r.status_code == 200
    await shop.pay_callback(order, txn_id="alipay-soldout")
    await shop.settle(order["id"])
    final = await shop.order(order["id"])
    assert (final["status"], final["close_reason"]) == ("CLOSED", "OUT_OF_STOCK_AT_PAYMENT")
    assert [(x["txn_id"], x["amount_cents"]) for x in final["refunds"]] == [
        ("alipay-soldout", order["total_cents"])
    ]
    assert await shop.stock("MUG") == {"WH-A": (1, 0)}  # nothing deducted
    await record(shop.handle(order["id"]), "sold_out_at_payment")


async def test_refused_update_is_rejected_by_its_validator(shop: Shop) -> None:
    """(On the real server a rejected update writes no history at all: see tests/e2e.)"""
    order = await shop.place([("TEA", 1)])
    handle = shop.handle(order["id"])
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(
            OrderWorkflow.ship,
            ShipRequest(
                package_id=f"{order['id']}-1",
                carrier="SF",
                tracking_no="X",
                actor=Actor(kind="merchant", id="m"),
            ),
        )
    assert getattr(info.value.cause, "type", None) == "INVALID_TRANSITION"
    accepted = [
        e
        for e in (await handle.fetch_history()).events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert accepted == []  # the order came placed; the refused ship was never accepted
    assert (await shop.order(order["id"]))["version"] == 1


async def test_no_whole_order_travels_through_the_history(shop: Shop) -> None:
    """Placement and payment answer receipts and the workflow builds from them the very
    order the store saved; the API answers actions from that snapshot."""
    for channel in ("balance", "credit"):
        order = await shop.place([("TEA", 2), ("MUG", 1)])  # locked on order; deducted on paying
        handle = shop.handle(order["id"])
        async with shop.db.sessions() as s:
            assert await handle.query(OrderWorkflow.current) == await orders.get(s, order["id"])
        paid = await shop.pay(order, channel)
        assert paid["status"] == "PENDING_SHIPMENT" and len(paid["packages"]) >= 1
        state = await shop.settle(order["id"])
        async with shop.db.sessions() as s:
            assert state == await orders.get(s, order["id"])
        history = (await handle.fetch_history()).events
        assert not [e.event_type for e in history if b"goods_cents" in e.SerializeToString()]
        await record(handle, f"placed_first_paid_with_{channel}")
