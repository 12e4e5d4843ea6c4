"""What the Temporal Web UI shows for an after-sales case: search attributes and details."""

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from domain.after_sales import AfterSalesCase
from domain.models import money
from workflows.ids import BUYER_ID, CASE_STATUS, ORDER_ID, SHOP_ID


def summary(case: AfterSalesCase) -> str:
    items = ", ".join(f"{line.quantity}× {line.sku}" for line in case.lines[:4])
    return f"Case {case.id} · {case.type} · order {case.order_id} · {items}"


def initial_attributes(case: AfterSalesCase) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(CASE_STATUS, case.status.value),
            SearchAttributePair(ORDER_ID, case.order_id),
            SearchAttributePair(BUYER_ID, case.buyer_id),
            SearchAttributePair(SHOP_ID, case.shop_id),
        ]
    )


def render(case: AfterSalesCase) -> str:
    """Markdown for the Web UI's 'current details': status, what happens next, timeline."""
    amount = case.agreed_cents if case.agreed_cents is not None else case.claim_cents
    out = [
        f"**{case.status}** · {case.type} · order {case.order_id} · claim"
        f" {money(case.claim_cents)} · refund {money(amount)} · v{case.version}",
        f"Lines: {', '.join(f'{line.quantity}× {line.sku}' for line in case.lines)}",
    ]
    if case.proposed_cents is not None:
        out.append(f"Merchant proposes {money(case.proposed_cents)}")
    if case.return_tracking_no:
        out.append(f"Return: {case.return_carrier} {case.return_tracking_no}")
    if case.replacements:
        out.append(f"Replacement: package {', '.join(case.replacements)}")
    if case.settlement is not None:
        out.append("Settling: the order is moving the money and stock")
    elif case.deadline is not None:
        out.append(
            f"Deadline: **{case.status}** until {case.deadline.isoformat(timespec='seconds')}"
            f" — then {case.deadline_action}"
        )
    if case.refund_id:
        out.append(f"Refund {case.refund_id}: {case.refund_status}")
    out += ["", "| when | who | action | status | note |", "|---|---|---|---|---|"]
    out += [
        f"| {e.at.isoformat(timespec='seconds')} | {e.actor.kind} {e.actor.id} | {e.action}"
        f" | {e.status} | {e.note} |"
        for e in case.timeline[-12:]
    ]
    return "\n".join(out)


def publish(case: AfterSalesCase) -> None:
    workflow.upsert_search_attributes([CASE_STATUS.value_set(case.status.value)])
    workflow.set_current_details(render(case))
