"""The order under slow and failing parts, on the time-skipping server: refunds made outside
the order's lock, supplier cancels with the lock let go, store failures recorded as
ORDER_ERROR without ending the order, and an operator's retry."""

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, text
from temporalio.client import WorkflowExecutionStatus

from store.tables import OrderEventRow, OrderRow, RefundRow
from tests.workflows.conftest import Shop, record
from tests.workflows.test_after_sales import admin, ask_refund
from tests.workflows.test_fulfilment import packages_of, paid_kepler
from tests.workflows.test_late_payments import _intent, _pay, _sandbox
from workflows.ids import ORDER_ERROR, RETRY_SIGNAL
from workflows.order import OrderWorkflow

DAY = timedelta(hours=24)


async def gateway_faults(shop: Shop, **faults: int) -> None:
    sandbox = shop.gateway.sandbox  # type: ignore[attr-defined]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox), base_url="http://gateway.test"
    ) as gw:
        r = await gw.post(
            "/v1/_faults", json=faults, headers={"Authorization": "Bearer test-gateway-key"}
        )
        assert r.status_code == 200, r.text


async def events(shop: Shop, order_id: str) -> list[dict[str, Any]]:
    r = await shop.http.get(f"/orders/{order_id}/events", headers=shop.as_buyer())
    assert r.status_code == 200, r.text
    return list(r.json())


async def paid_by_gateway(shop: Shop, *lines: tuple[str, int]) -> dict[str, Any]:
    order = await shop.place(list(lines))
    assert (await shop.pay_callback(order)).status_code == 200
    state = await shop.settle(order["id"])
    assert state.status == "PENDING_SHIPMENT"
    return await shop.order(order["id"])


# ---- refunds outside the lock -------------------------------------------------------------


async def test_a_refund_the_gateway_cannot_make_yet_blocks_nothing_and_lands_later(
    shop: Shop,
) -> None:
    order = await paid_by_gateway(shop, ("TEA", 1), ("BOOK", 1))
    await gateway_faults(shop, fail_next_refunds=1000)  # the refund service is down
    request = (await ask_refund(shop, order["id"], ("BOOK", 1))).json()
    r = await shop.post(f"/orders/{order['id']}/refunds/{request['id']}/agree", merchant=True)
    assert r.status_code == 200, r.text  # answered: the money is under way, not awaited

    pending = await shop.order(order["id"])
    assert [(x["id"], x["status"]) for x in pending["refunds"]] == [(request["id"], "PENDING")]
    assert "REFUNDING" in pending["sub_statuses"]
    tea = next(p for p in pending["packages"] if any(ln["sku"] == "TEA" for ln in p["lines"]))
    shipped = await shop.ship(order["id"], tea["id"], f"T{order['id'][:8]}")  # not behind it
    assert next(p for p in shipped["packages"] if p["id"] == tea["id"])["status"] == "SHIPPED"
    assert [x["status"] for x in shipped["refunds"]] == ["PENDING"]

    await gateway_faults(shop, fail_next_refunds=0)  # back up: the next attempt goes through
    await shop.env.sleep(timedelta(minutes=10))
    state = await shop.settle(order["id"])
    assert [(x.id, x.status, x.failure) for x in state.refunds] == [
        (request["id"], "SUCCEEDED", None)
    ]
    assert state.refunded_cents == 3000 and "REFUNDING" not in state.sub_statuses
    types = [e["type"] for e in await events(shop, order["id"])]
    assert types.index("REFUND_AGREED") < types.index("PACKAGE_SHIPPED")
    assert types.index("PACKAGE_SHIPPED") < types.index("REFUND_SUCCEEDED")
    async with shop.db.sessions() as s:
        rows = list(await s.scalars(select(RefundRow)))
    assert [(x.id, x.status) for x in rows] == [(request["id"], "SUCCEEDED")]
    await record(shop.handle(order["id"]), "refund_pending_then_settled")


async def test_a_refused_refund_keeps_the_channels_reason_and_a_failed_retry_says_so(
    shop: Shop,
) -> None:
    order = await paid_by_gateway(shop, ("TEA", 2))
    await gateway_faults(shop, refuse_next_refunds=2)
    r = await shop.post(f"/orders/{order['id']}/cancel", {"reason": "changed my mind"})
    assert r.status_code == 200, r.text
    closed = r.json()
    assert [x["status"] for x in closed["refunds"]] == ["FAILED"]  # the answer came in time
    failure = closed["refunds"][0]["failure"]
    assert "cannot take refunds" in failure  # the gateway's own words
    refund_id = closed["refunds"][0]["id"]
    failed_event = next(e for e in await events(shop, order["id"]) if e["type"] == "REFUND_FAILED")
    assert failed_event["data"]["failure"] == failure
    listed = await shop.http.get("/orders?refund_failed=true", headers=admin(shop))
    assert [o["id"] for o in listed.json()["items"]] == [order["id"]]
    async with shop.db.sessions() as s:
        row = await s.get(RefundRow, refund_id)
    assert row is not None and (row.status, row.failure) == ("FAILED", failure)

    again = await shop.http.post(f"/admin/refunds/{refund_id}/retry", headers=admin(shop))
    assert again.status_code == 502, again.text  # refused again: not a plain 200
    assert again.json()["code"] == "REFUND_FAILED"
    assert "cannot take refunds" in again.json()["detail"]
    assert (await shop.order(order["id"]))["refunded_cents"] == 0

    third = await shop.http.post(f"/admin/refunds/{refund_id}/retry", headers=admin(shop))
    assert third.status_code == 200, third.text
    assert (third.json()["status"], third.json()["failure"]) == ("SUCCEEDED", None)
    ended = await shop.handle(order["id"]).result()
    assert ended is not None and ended.refunded_cents == order["total_cents"]
    await record(shop.handle(order["id"]), "refund_failed_pending_retried")


# ---- supplier cancels with the lock let go ------------------------------------------------


async def test_a_second_cancel_while_the_supplier_answers_is_refused_and_others_go_on(
    shop: Shop,
) -> None:
    order, pkg = await paid_kepler(shop, ("KBOX", 1), ("MUG", 1))
    await shop.env.sleep(timedelta(minutes=31))
    purchased = await shop.settle(order["id"])
    assert {p.location: p.status for p in purchased.packages}["SUP-JD"] == "PURCHASED"
    await shop.supplier.faults(fail_next_cancels=3)  # the supplier answers after 3 failures

    first = asyncio.create_task(shop.post(f"/orders/{order['id']}/cancel", {"reason": "slow"}))
    for _ in range(500):  # bounded: until the supplier has been asked once
        if any("cancel" in str(c) for c in await shop.supplier.calls()):
            break
        await asyncio.sleep(0.01)
    second = await shop.post(f"/orders/{order['id']}/cancel", {})
    assert (second.status_code, second.json()["code"]) == (409, "INVALID_TRANSITION")
    assert "cancel is in progress" in second.json()["detail"]
    mug = packages_of(order)["WH-A"]["id"]
    shipped = await shop.ship(order["id"], mug, f"M{order['id'][:8]}")  # the lock is free
    assert packages_of(shipped)["WH-A"]["status"] == "SHIPPED"

    answer = await first  # 409, or 503 when the supplier took longer than the API's deadline
    assert answer.status_code in (409, 503), answer.text
    # the supplier cancelled, but a package shipped meanwhile: the order can no longer be
    # cancelled, so the supplier's package alone is intercepted and refunded
    for _ in range(1500):  # bounded (30 s): the supplier's answer, after its failures
        if (await shop.supplier.orders_for(pkg))[0]["status"] == "CANCELLED":
            break
        await asyncio.sleep(0.02)
    for _ in range(1500):  # and the order's handling of it, once the lock is taken again
        current = await shop.handle(order["id"]).query(OrderWorkflow.current)
        if current is not None and current.refunds:
            break
        await asyncio.sleep(0.02)
    state = await shop.settle(order["id"])
    assert {p.location: p.status for p in state.packages} == {
        "SUP-JD": "CANCELLED",
        "WH-A": "SHIPPED",
    }
    assert (await shop.supplier.orders_for(pkg))[0]["status"] == "CANCELLED"
    assert [r.status for r in state.refunds] == ["SUCCEEDED"]
    await record(shop.handle(order["id"]), "kepler_cancelled_at_supplier_unlocked")


# ---- a store that refuses for good --------------------------------------------------------


async def refuse_events(shop: Shop, event_type: str) -> None:
    """A real failure for good: the database itself refuses this event's row."""
    async with shop.db.transaction() as s:
        await s.execute(
            text(
                f"CREATE TRIGGER refuse_{event_type.lower()} BEFORE INSERT ON order_events "
                f"WHEN NEW.type = '{event_type}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        )


async def allow_events(shop: Shop, event_type: str) -> None:
    async with shop.db.transaction() as s:
        await s.execute(text(f"DROP TRIGGER refuse_{event_type.lower()}"))


async def order_errors(shop: Shop, order_id: str) -> list[dict[str, Any]]:
    async with shop.db.sessions() as s:
        rows = await s.scalars(
            select(OrderEventRow).where(
                OrderEventRow.order_id == order_id, OrderEventRow.type == "ORDER_ERROR"
            )
        )
        return [r.data for r in rows]


async def test_a_save_refused_for_good_is_an_order_error_and_the_order_goes_on(
    shop: Shop,
) -> None:
    order = await shop.place([("MUG", 1)])
    paid = await shop.pay(order)
    await refuse_events(shop, "PACKAGE_SHIPPED")
    pid = paid["packages"][0]["id"]
    r = await shop.post(
        f"/orders/{order['id']}/packages/{pid}/ship",
        {"carrier": "SF", "tracking_no": "E1"},
        merchant=True,
    )
    assert (r.status_code, r.json()["code"]) == (500, "ORDER_ERROR"), r.text
    handle = shop.handle(order["id"])
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    assert (await shop.order(order["id"]))["status"] == "PENDING_SHIPMENT"  # nothing adopted
    [error] = await order_errors(shop, order["id"])
    assert error["step"] == "PACKAGE_SHIPPED" and "refused" in error["reason"]
    assert (await handle.describe()).typed_search_attributes.get(ORDER_ERROR) is True
    flagged = await shop.http.get("/orders?order_error=true", headers=admin(shop))
    assert [o["id"] for o in flagged.json()["items"]] == [order["id"]]

    await allow_events(shop, "PACKAGE_SHIPPED")  # fixed: the same action now goes through
    shipped = await shop.ship(order["id"], pid, "E1")
    assert shipped["status"] == "SHIPPED"


async def test_a_timer_step_refused_for_good_waits_for_an_operator_and_never_spins(
    shop: Shop,
) -> None:
    order = await shop.place([("TEA", 1)])
    await refuse_events(shop, "CLOSED")
    await shop.env.sleep(DAY + timedelta(seconds=1))
    handle = shop.handle(order["id"])
    state = await shop.settle(order["id"])
    assert state.status == "PENDING_PAYMENT"  # the close was not adopted
    [error] = await order_errors(shop, order["id"])
    assert error["step"] == "CLOSED"
    length = (await handle.describe()).history_length
    await shop.env.sleep(DAY)  # no retry loop, no timer: the order waits
    await shop.settle(order["id"])
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    assert (await handle.describe()).history_length - length < 12  # the two settle updates

    await allow_events(shop, "CLOSED")
    await handle.signal(RETRY_SIGNAL)  # an operator's word (Web UI: Send Signal "retry")
    closed = await handle.result()
    assert closed is not None and (closed.status, closed.close_reason) == (
        "CLOSED",
        "PAYMENT_TIMEOUT",
    )
    assert await shop.stock("TEA") == {"WH-A": (3, 0), "WH-B": (5, 0)}
    async with shop.db.sessions() as s:
        row = await s.get(OrderRow, order["id"])
    assert row is not None and (row.status, row.order_error) == ("CLOSED", True)


async def test_a_signal_that_cannot_be_saved_is_recorded_and_later_news_still_lands(
    shop: Shop,
) -> None:
    order = await shop.place([("TEA", 1), ("MUG", 1)])
    paid = await shop.pay(order)
    for p in paid["packages"]:
        await shop.ship(order["id"], p["id"], f"S{p['id'][-8:]}")
    await refuse_events(shop, "RECEIPT_CONFIRMED")
    first = paid["packages"][0]
    r = await shop.carrier_callback("SF", f"S{first['id'][-8:]}", "DELIVERED")
    assert r.status_code == 200, r.text
    state = await shop.settle(order["id"])
    assert all(p.status == "SHIPPED" for p in state.packages)
    assert [e["step"] for e in await order_errors(shop, order["id"])] == ["RECEIPT_CONFIRMED"]
    assert (await shop.handle(order["id"]).describe()).status == WorkflowExecutionStatus.RUNNING

    await allow_events(shop, "RECEIPT_CONFIRMED")
    r = await shop.post(f"/orders/{order['id']}/confirm-receipt", {})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "COMPLETED"


# ---- an unpaid order closes its intents first (no callback is delivered here) -------------


async def test_a_payment_whose_callback_never_came_is_taken_at_the_deadline(shop: Shop) -> None:
    order = await shop.place([("MUG", 1)])
    intent = await _intent(shop, order)
    paid = await _pay(shop, intent)  # captured at the gateway; its callback is lost
    await shop.env.sleep(DAY + timedelta(seconds=1))
    state = await shop.settle(order["id"])
    assert (state.status, state.close_reason) == ("PENDING_SHIPMENT", None)  # paid, not closed
    assert state.payment is not None and state.payment.txn_id == paid["txn_id"]
    assert state.refunds == []
    events = (await shop.http.get(f"/orders/{order['id']}/events", headers=shop.as_buyer())).json()
    assert [e["type"] for e in events] == ["PLACED", "PAID"]
    await record(shop.handle(order["id"]), "payment_deadline_intents_closed_first")


async def test_an_unpaid_order_closed_at_its_deadline_can_no_longer_be_paid(shop: Shop) -> None:
    order = await shop.place([("MUG", 1)])
    intent = await _intent(shop, order)
    await shop.env.sleep(DAY + timedelta(seconds=1))
    closed = await shop.handle(order["id"]).result()
    assert closed is not None and (closed.status, closed.close_reason) == (
        "CLOSED",
        "PAYMENT_TIMEOUT",
    )
    status = await _sandbox(shop, "GET", f"/v1/intents/{intent['intent_id']}")
    assert status.json()["status"] == "closed"
    late = await _sandbox(shop, "POST", f"/pay/{intent['intent_id']}")
    assert late.status_code == 409  # the page open in a tab can no longer take the money
    await record(shop.handle(order["id"]), "payment_timeout_intents_closed")


async def test_a_cancel_of_an_order_paid_unseen_finds_the_payment_and_is_refused(
    shop: Shop,
) -> None:
    order = await shop.place([("MUG", 1)])
    intent = await _intent(shop, order)
    paid = await _pay(shop, intent)
    r = await shop.post(f"/orders/{order['id']}/cancel", {"reason": "never mind"})
    assert (r.status_code, r.json()["code"]) == (409, "INVALID_TRANSITION"), r.text
    assert "ask for a refund" in r.json()["detail"]
    state = await shop.order(order["id"])
    assert state["status"] == "PENDING_SHIPMENT"
    assert state["payment"]["txn_id"] == paid["txn_id"]
