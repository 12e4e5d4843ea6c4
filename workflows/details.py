"""What the Temporal Web UI shows for an order: search attributes and current details."""

from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, SearchAttributeUpdate
from temporalio.exceptions import ApplicationError

from domain.models import (
    CloseReason,
    OrderState,
    OrderStatus,
    Package,
    PackageStatus,
    RefundStatus,
    money,
)
from domain.order import failed_refunds, next_deadline, open_case_count, refund_failed
from workflows.ids import (
    BUYER_ID,
    CLOSE_REASON,
    OPEN_CASES,
    ORDER_STATUS,
    ORDER_TOTAL,
    PAID_AT,
    REFUND_FAILED,
    SHOP_ID,
)


def summary(order_id: str, buyer_id: str, lines: list[tuple[str, int]]) -> str:
    items = ", ".join(f"{q}× {sku}" for sku, q in lines[:4]) + (" …" if len(lines) > 4 else "")
    return f"Order {order_id} · buyer {buyer_id} · {items}"


def _when(at: datetime | None) -> str:
    return at.isoformat(timespec="seconds") if at else "-"


def _next(p: Package) -> str:
    if p.purchase_at:
        return f"supplier purchase at {_when(p.purchase_at)}"
    if p.auto_confirm_at:
        return f"auto-confirm at {_when(p.auto_confirm_at)}"
    if p.status is PackageStatus.REJECTED and not p.restocked:
        return "awaiting the return at its location"
    return "-"


def render(state: OrderState) -> str:
    """Markdown for the Web UI's 'current details'."""
    subs = f" ({', '.join(state.sub_statuses)})" if state.sub_statuses else ""
    closed = f" — {state.close_reason}" if state.close_reason else ""
    out = [
        f"**{state.status}**{subs}{closed} · total {money(state.total_cents)}"
        f" · paid {money(state.paid_cents)} · refunded {money(state.refunded_cents)}"
        f" · v{state.version}"
    ]
    if state.payment:
        out.append(f"Paid via {state.payment.channel} (txn {state.payment.txn_id})")
    if state.packages:
        out += [
            "",
            "| package | location | type | status | freight | carrier | tracking | next |",
            "|---|---|---|---|---|---|---|---|",
        ]
        out += [
            f"| {p.id} | {p.location} | {p.product_type} | {p.status} | {money(p.freight_cents)}"
            f" | {p.carrier or '-'} | {p.tracking_no or p.supplier_order_id or '-'}"
            f" | {_next(p)} |"
            for p in state.packages
        ]
    failed = failed_refunds(state)
    if failed:
        out += ["", "**Failed refunds** (an admin retries them):"]
        out += [
            f"- {r.id}: {money(r.amount_cents)} via {r.channel} — {r.reason}: {r.failure or '?'}"
            for r in failed
        ]
    pending = [r for r in state.refunds if r.status == RefundStatus.PENDING]
    if pending:
        out += ["", "**Refunds under way** (the channel has not answered yet):"]
        out += [f"- {r.id}: {money(r.amount_cents)} via {r.channel} — {r.reason}" for r in pending]
    open_requests = [r for r in state.refund_requests if r.status == "REQUESTED"]
    open_cases = [c for c in state.cases if c.open]
    if open_requests or open_cases:
        out += ["", "**Refunding:**"]
        out += [
            f"- refund request {r.id}: {money(r.amount_cents)}, agreed automatically at"
            f" {_when(r.respond_by)}"
            for r in open_requests
        ]
        out += [f"- after-sales case {c.id} ({c.type}): see after-sales-{c.id}" for c in open_cases]
    deadline = next_deadline(state)
    if deadline and state.close_reason is None:
        out += [
            "",
            f"Next timer: **{deadline.kind}** at {_when(deadline.at)} — {deadline.describe()}",
        ]
    return "\n".join(out)


def attributes(state: OrderState) -> list[SearchAttributePair[Any]]:
    """The order's search attributes (the API starts an order's workflow with them)."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(ORDER_STATUS, state.status.value),
        SearchAttributePair(BUYER_ID, state.buyer_id),
        SearchAttributePair(ORDER_TOTAL, state.total_cents),
        SearchAttributePair(REFUND_FAILED, refund_failed(state)),
    ]
    if state.close_reason:
        pairs.append(SearchAttributePair(CLOSE_REASON, state.close_reason.value))
    if state.payment is not None:
        pairs.append(SearchAttributePair(PAID_AT, state.payment.paid_at))
    pairs.append(SearchAttributePair(OPEN_CASES, open_case_count(state)))
    return pairs


def start_attributes(state: OrderState) -> list[SearchAttributePair[Any]]:
    """What an order's workflow starts with: its attributes and its shop, which never
    changes, so no step upserts it (and workflows started before shops never get it)."""
    return [*attributes(state), SearchAttributePair(SHOP_ID, state.shop_id)]


def publish(state: OrderState, *, always_upsert: bool = True) -> None:
    """Upsert search attributes and current details (no server round trip of its own). An
    adopted placement (`always_upsert=False`) started with its attributes: none to write."""
    updates = [pair.key.value_set(pair.value) for pair in attributes(state)]
    changed = _changed(updates)
    if changed or always_upsert:
        workflow.upsert_search_attributes(changed or updates[:1])
    workflow.set_current_details(render(state))


def _changed(updates: list[SearchAttributeUpdate[Any]]) -> list[SearchAttributeUpdate[Any]]:
    """Only what differs from the workflow's attributes now (the history keeps each upsert:
    the same buyer and total again would only weigh it down). A publish that changes none
    still upserts the status, so every publish stays one command, as it always was."""
    now = workflow.info().typed_search_attributes
    return [u for u in updates if now.get(u.key) != u.value]


def publish_rejected(buyer_id: str, error: ApplicationError) -> None:
    """A refused placement: no order, but operators can find the attempt."""
    workflow.upsert_search_attributes(
        [
            ORDER_STATUS.value_set(OrderStatus.CLOSED.value),
            BUYER_ID.value_set(buyer_id),
            CLOSE_REASON.value_set(CloseReason.PLACEMENT_REJECTED.value),
        ]
    )
    workflow.set_current_details(
        f"**CLOSED** — {CloseReason.PLACEMENT_REJECTED}: {error.type}: {error.message}"
    )
