"""What operators do to an order from the Temporal Web UI ("Request Cancellation") and
what reconciliation does to an order whose workflow was terminated: never an orphan."""

from typing import Any

from temporalio.client import WorkflowExecutionStatus

from domain.messages import order_input
from domain.models import OrderState
from store import orders
from tests.workflows.conftest import Shop, record
from workflows.ids import order_workflow_id
from workflows.order import OrderWorkflow


async def _events(shop: Shop, order_id: str, *, staff: bool = False) -> list[dict[str, Any]]:
    headers = shop.as_merchant() if staff else shop.as_buyer()
    r = await shop.http.get(f"/orders/{order_id}/events", headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json())


async def test_cancel_requested_in_the_web_ui_closes_an_unpaid_order(shop: Shop) -> None:
    order = await shop.place([("TEA", 4)])
    assert await shop.stock("TEA") == {"WH-A": (3, 0), "WH-B": (5, 4)}

    handle = shop.handle(order["id"])
    await handle.cancel()  # what the Web UI's "Request Cancellation" sends
    closed = await handle.result()  # the workflow ends by itself, not as "Canceled"

    assert closed is not None
    assert (closed.status, closed.close_reason) == ("CLOSED", "OPERATOR_CANCELLED")
    assert (await handle.describe()).status is WorkflowExecutionStatus.COMPLETED
    assert (await shop.order(order["id"]))["close_reason"] == "OPERATOR_CANCELLED"
    assert await shop.stock("TEA") == {"WH-A": (3, 0), "WH-B": (5, 0)}  # the lock is released
    last = (await _events(shop, order["id"], staff=True))[-1]
    assert (last["type"], last["actor"]["kind"]) == ("CLOSED", "operator")
    seen_by_buyer = (await _events(shop, order["id"]))[-1]["actor"]
    assert seen_by_buyer == {"kind": "platform", "id": "platform"}
    await record(handle, "operator_cancelled_unpaid")


async def test_cancel_requested_in_the_web_ui_refunds_a_paid_order(shop: Shop) -> None:
    before = await shop.wallet()
    order = await shop.place([("TEA", 2), ("MUG", 1)])
    await shop.pay(order)
    assert (await shop.wallet())["balance_cents"] == before["balance_cents"] - order["total_cents"]

    handle = shop.handle(order["id"])
    await handle.cancel()
    closed = await handle.result()

    assert closed is not None
    assert (closed.status, closed.close_reason) == ("CLOSED", "OPERATOR_CANCELLED")
    assert closed.refunded_cents == order["total_cents"]
    assert [r.reason for r in closed.refunds] == ["OPERATOR_CANCELLED"]
    assert {p.status for p in closed.packages} == {"CANCELLED"}
    assert (await shop.wallet())["balance_cents"] == before["balance_cents"]
    assert await shop.stock("TEA") == {"WH-A": (3, 0), "WH-B": (5, 0)}  # back on hand
    assert await shop.stock("MUG") == {"WH-A": (10, 0)}
    await record(handle, "operator_cancelled_paid")


async def test_cancel_requested_after_shipping_is_refused_and_the_order_goes_on(
    shop: Shop,
) -> None:
    order = await shop.place([("TEA", 1)])
    paid = await shop.pay(order)
    await shop.ship(order["id"], paid["packages"][0]["id"], tracking_no="SF-OP-1")

    handle = shop.handle(order["id"])
    await handle.cancel()
    await handle.cancel()  # clicked twice: one refusal each, nothing else
    state = await shop.settle(order["id"])

    assert (state.status, state.close_reason, state.refunds) == ("SHIPPED", None, [])
    refusals = [e for e in await _events(shop, order["id"]) if e["type"] == "CANCEL_REFUSED"]
    assert refusals and refusals[0]["data"]["reason"] == "OPERATOR_CANCELLED"
    assert "cannot be cancelled" in refusals[0]["data"]["detail"]
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
    r = await shop.post(f"/orders/{order['id']}/confirm-receipt")  # the order still works
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "COMPLETED"


async def test_an_order_started_again_after_termination_is_closed_and_refunded(
    shop: Shop,
) -> None:
    before = await shop.wallet()
    order = await shop.place([("TEA", 3)])
    await shop.pay(order)
    handle = shop.handle(order["id"])
    await handle.terminate("an operator pressed Terminate")

    async with shop.db.sessions() as session:  # what reconciliation starts it with
        stored = await orders.get(session, order["id"])
    assert stored is not None
    again = await shop.env.client.start_workflow(
        OrderWorkflow.run,
        order_input(stored, resume=True),
        id=order_workflow_id(order["id"]),
        task_queue=shop.settings.task_queue,
    )
    closed: OrderState | None = await again.result()

    assert closed is not None
    assert (closed.status, closed.close_reason) == ("CLOSED", "WORKFLOW_LOST")
    # carried on from the stored snapshot: closed, then the refund's answer from the channel
    assert closed.version == stored.version + 2
    assert [r.status for r in closed.refunds] == ["SUCCEEDED"]
    assert (await shop.wallet())["balance_cents"] == before["balance_cents"]
    assert await shop.stock("TEA") == {"WH-A": (3, 0), "WH-B": (5, 0)}
    closing, answered = (await _events(shop, order["id"]))[-2:]
    assert (closing["type"], closing["actor"]["id"]) == ("CLOSED", "reconciler")
    assert answered["type"] == "REFUND_SUCCEEDED"
    await record(again, "reconciled_paid")
