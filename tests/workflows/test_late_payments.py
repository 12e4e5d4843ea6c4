"""No captured payment lost, on the time-skipping server with the sandbox gateway calling the
API back: a late payment whose refund the gateway refuses is a FAILED refund an admin
retries; captures whose callbacks never came are found by the sweep and by closing an
unpaid order's intents. The buyer always pays on the sandbox's pay page."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio import workflow
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.payments import PaymentActivities, gateway_failure, missing_captures
from api.auth import Role, mint
from domain.messages import PaymentNotice, SweepInput
from gateways.payments import PaymentGatewayClient, PaymentGatewayError, PaymentRefused
from runtime.relay import Relay
from sandboxes.payments import create_app as create_sandbox
from store import intents
from store.tables import PaymentRow, RefundRow
from tests.conftest import GATEWAY_KEY, PAYMENT_SECRET, Supplier
from tests.workflows.conftest import Shop, record
from workflows import calls, ids
from workflows.orphan_payment import OrphanPaymentWorkflow

DAY = timedelta(days=1)


@pytest.fixture
async def gateway(supplier: Supplier) -> AsyncIterator[PaymentGatewayClient]:
    """The sandbox gateway, its callbacks delivered to the test's API (the supplier
    sandbox's callback route reaches the same app)."""
    sandbox = create_sandbox(
        PAYMENT_SECRET,
        GATEWAY_KEY,
        public_url="http://gateway.test",
        transport=httpx.ASGITransport(app=supplier.callbacks),
        retry_base_delay=0.01,
        max_attempts=2,
    )
    async with sandbox.router.lifespan_context(sandbox):
        client = PaymentGatewayClient(
            "http://gateway.test", GATEWAY_KEY, transport=httpx.ASGITransport(app=sandbox)
        )
        client.sandbox = sandbox  # type: ignore[attr-defined]
        yield client
        await client.aclose()


async def _sandbox(shop: Shop, method: str, path: str, **kwargs: Any) -> httpx.Response:
    app = shop.gateway.sandbox  # type: ignore[attr-defined]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as http:
        headers = {"Authorization": f"Bearer {GATEWAY_KEY}"}
        return await http.request(method, path, headers=headers, **kwargs)


async def _faults(shop: Shop, **faults: int) -> None:
    assert (await _sandbox(shop, "POST", "/v1/_faults", json=faults)).status_code == 200


async def _intent(shop: Shop, order: dict[str, Any], channel: str = "alipay") -> dict[str, Any]:
    r = await shop.post(f"/orders/{order['id']}/payment-intents", {"channel": channel})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _pay(shop: Shop, intent: dict[str, Any]) -> dict[str, Any]:
    """The buyer pays on the sandbox's page; the sandbox calls the API back."""
    r = await _sandbox(shop, "POST", f"/pay/{intent['intent_id']}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _admin(shop: Shop) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(shop.settings.jwt_secret, 'admin-1', Role.ADMIN)}"}


async def _refund_rows(shop: Shop) -> list[tuple[str, str, str | None]]:
    async with shop.db.sessions() as s:
        return [(r.id, r.status, r.failure) for r in await s.scalars(select(RefundRow))]


async def _failed_listed(shop: Shop) -> list[str]:
    r = await shop.http.get("/orders", params={"refund_failed": "true"}, headers=_admin(shop))
    assert r.status_code == 200, r.text
    return [o["id"] for o in r.json()["items"]]


async def _ended_unpaid(shop: Shop) -> tuple[dict[str, Any], dict[str, Any]]:
    """An order with an open intent whose workflow has ended (the payment window passed while
    the gateway refused to close the intent: the order closed all the same)."""
    order = await shop.place([("MUG", 1)])
    intent = await _intent(shop, order)
    await _faults(shop, refuse_next_closes=1000)
    await shop.env.sleep(DAY + timedelta(seconds=1))
    await shop.handle(order["id"]).result()
    return order, intent


async def test_a_late_refund_refused_for_good_is_failed_listed_and_retried(shop: Shop) -> None:
    order, intent = await _ended_unpaid(shop)
    await _faults(shop, refuse_next_refunds=1)

    paid = await _pay(shop, intent)  # the buyer had the page open, and pays
    assert paid["delivered"] is True
    txn = paid["txn_id"]
    orphan = shop.env.client.get_workflow_handle_for(
        OrphanPaymentWorkflow.run, ids.orphan_payment_workflow_id(txn)
    )
    shop.started.append(ids.orphan_payment_workflow_id(txn))
    refund = await orphan.result()
    assert (await orphan.describe()).status is WorkflowExecutionStatus.COMPLETED  # not Failed
    await record(orphan, "orphan_payment_refund_failed")
    reason = "injected fault: the payer's account cannot take refunds"
    assert (refund.id, refund.status, refund.failure) == (f"{txn}-R", "FAILED", reason)

    assert await _refund_rows(shop) == [(f"{txn}-R", "FAILED", reason)]
    async with shop.db.sessions() as s:
        assert [p.order_id for p in await s.scalars(select(PaymentRow))] == [order["id"]]
    stored = await shop.order(order["id"])
    assert [(r["id"], r["status"], r["failure"]) for r in stored["refunds"]] == [
        (f"{txn}-R", "FAILED", reason)
    ]
    assert (stored["status"], stored["refunded_cents"]) == ("CLOSED", 0)
    assert await _failed_listed(shop) == [order["id"]]
    events = (await shop.http.get(f"/orders/{order['id']}/events", headers=shop.as_buyer())).json()
    assert events[-1]["type"] == "LATE_PAYMENT_REFUND_FAILED"
    assert events[-1]["data"]["failure"] == reason

    # an admin retries; the gateway refuses again: the answer says so, nothing changes
    await _faults(shop, refuse_next_refunds=1)
    url = f"/admin/refunds/{txn}-R/retry"
    again = await shop.http.post(url, headers=_admin(shop))
    assert again.status_code == 502, again.text
    assert (again.json()["code"], again.json()["failure"]) == ("REFUND_FAILED", reason)
    assert await _refund_rows(shop) == [(f"{txn}-R", "FAILED", reason)]
    assert await _failed_listed(shop) == [order["id"]]
    gateway_refund = await _sandbox(shop, "GET", f"/v1/refunds/{txn}-R")
    assert gateway_refund.status_code == 404  # no money moved

    # and once more: it goes through
    done = await shop.http.post(url, headers=_admin(shop))
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["failure"]) == ("SUCCEEDED", None)
    retry = shop.env.client.get_workflow_handle(ids.orphan_refund_retry_id(txn))
    shop.started.append(ids.orphan_refund_retry_id(txn))
    await record(retry, "orphan_payment_refund_retried")
    assert await _refund_rows(shop) == [(f"{txn}-R", "SUCCEEDED", None)]
    stored = await shop.order(order["id"])
    assert [(r["status"], r["failure"]) for r in stored["refunds"]] == [("SUCCEEDED", None)]
    assert stored["refunded_cents"] == order["total_cents"]
    assert await _failed_listed(shop) == []
    gateway_refund = await _sandbox(shop, "GET", f"/v1/refunds/{txn}-R")
    assert gateway_refund.json()["amount_cents"] == order["total_cents"]
    done_again = await shop.http.post(url, headers=_admin(shop))
    assert done_again.status_code == 409  # SUCCEEDED: nothing to retry
    types = [
        e["type"]
        for e in (
            await shop.http.get(f"/orders/{order['id']}/events", headers=shop.as_buyer())
        ).json()
    ]
    assert types[-3:] == ["LATE_PAYMENT_REFUND_FAILED", "REFUND_RETRIED", "REFUND_RETRIED"]


async def test_a_late_refund_the_gateway_cannot_make_in_a_day_is_failed_not_lost(
    shop: Shop,
) -> None:
    order, intent = await _ended_unpaid(shop)
    await _faults(shop, fail_next_refunds=1000)  # 503 for every try
    txn = (await _pay(shop, intent))["txn_id"]
    shop.started.append(ids.orphan_payment_workflow_id(txn))
    orphan = shop.env.client.get_workflow_handle_for(
        OrphanPaymentWorkflow.run, ids.orphan_payment_workflow_id(txn)
    )
    await shop.env.sleep(DAY + timedelta(hours=1))  # past the refund's budget
    refund = await orphan.result()
    assert refund.status == "FAILED"
    assert refund.failure is not None and "within its bounds" in refund.failure
    [(refund_id, status, failure)] = await _refund_rows(shop)
    assert (refund_id, status) == (f"{txn}-R", "FAILED") and failure == refund.failure
    assert await _failed_listed(shop) == [order["id"]]


async def test_a_capture_whose_callback_was_dropped_is_swept_into_its_order(shop: Shop) -> None:
    order = await shop.place([("MUG", 1)])
    intent = await _intent(shop, order, "wechat")
    await _faults(shop, drop_next_callbacks=1)
    paid = await _pay(shop, intent)
    assert (paid["event_ids"], len(paid["dropped"])) == ([], 1)  # the gateway never told us
    assert (await shop.settle(order["id"])).status == "PENDING_PAYMENT"

    now = datetime.now(UTC)  # the gateway's clock (the test server's skips ahead)
    _, missing = await missing_captures(shop.db, shop.gateway, now - DAY)
    assert [c.txn_id for c in missing] == [paid["txn_id"]]  # what the chaos invariant sees

    acts = PaymentActivities(
        shop.db, shop.gateway, Relay(shop.db, shop.env.client, shop.settings.task_queue)
    )
    swept = await ActivityEnvironment().run(acts.sweep_captures, SweepInput(grace_seconds=0))
    assert (swept.checked, swept.delivered) == (1, [paid["txn_id"]])
    settled = await shop.settle(order["id"])
    assert settled.status == "PENDING_SHIPMENT"
    assert settled.payment is not None
    assert (settled.payment.txn_id, settled.payment.channel) == (paid["txn_id"], "wechat")
    assert await missing_captures(shop.db, shop.gateway, now - DAY) == (1, [])
    swept = await ActivityEnvironment().run(acts.sweep_captures, SweepInput(grace_seconds=0))
    assert (swept.checked, swept.delivered) == (1, [])  # nothing twice


@workflow.defn
class SettleProbe:
    """Calls settle_open_intents as the order workflow will (a test-only workflow)."""

    @workflow.run
    async def run(self, order_id: str) -> list[PaymentNotice]:
        found: list[PaymentNotice] = await calls.partner(
            ids.SETTLE_OPEN_INTENTS,
            order_id,
            "probe",
            calls.SETTLE_INTENTS,
            list[PaymentNotice],
        )
        return found


async def test_closing_an_unpaid_orders_intents_finds_the_one_paid(shop: Shop) -> None:
    order = await shop.place([("MUG", 1)])
    unpaid, paid_intent = await _intent(shop, order), await _intent(shop, order, "wechat")
    await _faults(shop, drop_next_callbacks=1)
    paid = await _pay(shop, paid_intent)

    async with Worker(
        shop.env.client,
        task_queue=f"probe-{uuid.uuid4().hex[:8]}",
        workflows=[SettleProbe],
        activities=[PaymentActivities(shop.db, shop.gateway).settle_open_intents],
        workflow_runner=UnsandboxedWorkflowRunner(),  # a test module is no workflow module
    ) as probe:
        found = await shop.env.client.execute_workflow(
            SettleProbe.run,
            order["id"],
            id=f"probe-{uuid.uuid4().hex}",
            task_queue=probe.task_queue,
        )
        again = await shop.env.client.execute_workflow(
            SettleProbe.run,
            order["id"],
            id=f"probe-{uuid.uuid4().hex}",
            task_queue=probe.task_queue,
        )
    assert [(n.txn_id, n.channel, n.amount_cents, n.order_id) for n in found] == [
        (paid["txn_id"], "wechat", order["total_cents"], order["id"])
    ]
    assert again == found  # idempotent
    late = await _sandbox(shop, "POST", f"/pay/{unpaid['intent_id']}")
    assert late.status_code == 409  # closed: the buyer can no longer pay it
    assert (await _sandbox(shop, "GET", f"/v1/intents/{unpaid['intent_id']}")).json()[
        "status"
    ] == "closed"


async def test_an_intent_the_gateway_does_not_know_fails_settling_for_good(shop: Shop) -> None:
    order = await shop.place([("MUG", 1)])
    async with shop.db.transaction() as s:
        await intents.record(
            s,
            intent_id="pi_unknown",
            order_id=order["id"],
            channel="alipay",
            amount_cents=1,
            now=await shop.env.get_current_time(),
        )
    acts = PaymentActivities(shop.db, shop.gateway)
    with pytest.raises(ApplicationError) as info:
        await ActivityEnvironment().run(acts.settle_open_intents, order["id"])
    assert (info.value.type, info.value.non_retryable) == ("PAYMENT_GATEWAY_ERROR", True)


def test_gateway_errors_are_classified_by_type() -> None:
    refused = gateway_failure(PaymentRefused("no", retryable=False, status_code=422))
    down = gateway_failure(PaymentGatewayError("503", retryable=True, status_code=503))
    garbled = gateway_failure(PaymentGatewayError("bad JSON", retryable=False))
    assert (refused.non_retryable, down.non_retryable, garbled.non_retryable) == (
        True,
        False,
        True,
    )
