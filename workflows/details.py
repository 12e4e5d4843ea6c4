"""What the Temporal Web UI shows for an order: search attributes and current details."""

from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

from domain.models import OrderState
from domain.order import next_deadline
from workflows.ids import BUYER_ID, CLOSE_REASON, ORDER_STATUS, ORDER_TOTAL


def money(cents: int) -> str:
    return f"¥{cents // 100}.{cents % 100:02d}"


def summary(order_id: str, buyer_id: str, lines: list[tuple[str, int]]) -> str:
    items = ", ".join(f"{q}× {sku}" for sku, q in lines[:4]) + (" …" if len(lines) > 4 else "")
    return f"Order {order_id} · buyer {buyer_id} · {items}"


def _when(at: datetime | None) -> str:
    return at.isoformat() if at else "-"


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
            "| package | location | type | status | carrier | tracking | auto-confirm |",
            "|---|---|---|---|---|---|---|",
        ]
        out += [
            f"| {p.id} | {p.location} | {p.product_type} | {p.status} | {p.carrier or '-'}"
            f" | {p.tracking_no or '-'} | {_when(p.auto_confirm_at)} |"
            for p in state.packages
        ]
    deadline = next_deadline(state)
    if deadline and state.close_reason is None:
        out += [
            "",
            f"Next timer: **{deadline.kind}** at {deadline.at.isoformat()} — {deadline.describe()}",
        ]
    return "\n".join(out)


def publish(state: OrderState) -> None:
    """Upsert search attributes and current details (no server round trip of its own)."""
    updates: list[SearchAttributeUpdate[Any]] = [
        ORDER_STATUS.value_set(state.status.value),
        BUYER_ID.value_set(state.buyer_id),
        ORDER_TOTAL.value_set(state.total_cents),
    ]
    if state.close_reason:
        updates.append(CLOSE_REASON.value_set(state.close_reason.value))
    workflow.upsert_search_attributes(updates)
    workflow.set_current_details(render(state))
