"""Fulfilment: supplier (KEPLER) purchases, refunds of packages, rejection (拒收), returns,
and intercepting packages when a paid order is cancelled before anything ships.

Same shape as `domain.order`: guards raise INVALID_TRANSITION, transitions return a Change.
"""

from dataclasses import replace
from datetime import datetime, timedelta

from domain.errors import invalid_transition
from domain.models import (
    Actor,
    Allocation,
    CloseReason,
    EventType,
    FreightPolicy,
    OrderState,
    OrderStatus,
    PackageStatus,
    ProductType,
    Refund,
    RefundRequestStatus,
    RefundStatus,
)
from domain.order import (
    AWAITING_RECEIPT,
    Change,
    applied,
    copied,
    count_refund,
    live_packages,
    package_of,
)

# ---- supplier (KEPLER) -------------------------------------------------------------------


def mark_purchased(
    state: OrderState, package_id: str, supplier_order_id: str, now: datetime, actor: Actor
) -> Change:
    if package_of(state, package_id).status is not PackageStatus.AWAITING_SUPPLIER:
        raise invalid_transition(f"package {package_id} is not awaiting the supplier")
    s = copied(state)
    p = package_of(s, package_id)
    p.status, p.supplier_order_id, p.purchase_at = PackageStatus.PURCHASED, supplier_order_id, None
    return applied(
        s,
        now,
        actor,
        EventType.SUPPLIER_PURCHASED,
        {"package_id": package_id, "supplier_order_id": supplier_order_id},
    )


def check_supplier_notice(
    state: OrderState, package_id: str, supplier_order_id: str, *, unrecorded_ok: bool = False
) -> None:
    """The supplier speaks only of KEPLER packages it sold us, under its own order id.

    `unrecorded_ok`: the purchase may not be saved yet (the webhook lets such news through;
    the workflow holds it until its purchase call has answered, then checks again).
    """
    p = package_of(state, package_id)
    if p.product_type is not ProductType.KEPLER:
        raise invalid_transition(f"package {package_id} was not bought from a supplier")
    if p.supplier_order_id is None:
        if unrecorded_ok:
            return
        raise invalid_transition(f"package {package_id} was not bought from a supplier")
    if p.supplier_order_id != supplier_order_id:
        raise invalid_transition(f"package {package_id} is not supplier order {supplier_order_id}")


def supplier_shipped(
    state: OrderState, package_id: str, now: datetime, actor: Actor
) -> Change | None:
    """The supplier's 待收货: the package is on its way (None when that is old news)."""
    if package_of(state, package_id).status is not PackageStatus.PURCHASED:
        return None
    s = copied(state)
    p = package_of(s, package_id)
    p.status, p.shipped_at, p.carrier = PackageStatus.SHIPPED, now, "supplier"
    p.auto_confirm_at = now + timedelta(seconds=s.timings.auto_confirm_seconds)
    return applied(
        s, now, actor, EventType.PACKAGE_SHIPPED, {"package_id": package_id, "by": "supplier"}
    )


# ---- refunds of packages ------------------------------------------------------------------


def _returned(state: OrderState) -> list[Refund]:
    """Refunds of the order's own payment that went through (not late or duplicate ones)."""
    if state.payment is None:
        return []
    txn = state.payment.txn_id
    return [r for r in state.refunds if r.txn_id == txn and r.status != RefundStatus.FAILED]


def paid_and_kept(state: OrderState) -> int:
    """What the order's own payment still holds: paid minus refunds of that payment."""
    if state.payment is None:
        return 0
    return state.payment.amount_cents - sum(r.amount_cents for r in _returned(state))


def package_refund(state: OrderState, package_id: str, reason: str, now: datetime) -> Refund:
    """Goods and freight share of one package. Under ONE_PACKAGE the package bearing the
    freight carries all of it, and the platform bears that freight (Dangdang practice)."""
    if state.payment is None:
        raise invalid_transition("nothing was paid")
    p = package_of(state, package_id)
    platform = state.freight_policy is FreightPolicy.ONE_PACKAGE and p.freight_cents > 0
    return Refund(
        id=f"{package_id}-{reason.lower()}",
        txn_id=state.payment.txn_id,
        channel=state.payment.channel,
        amount_cents=p.goods_cents + p.freight_cents,
        goods_cents=p.goods_cents,
        freight_cents=p.freight_cents,
        borne_by="merchant",
        freight_borne_by="platform" if platform else "merchant",
        package_id=package_id,
        reason=reason,
        created_at=now,
    )


def whole_refund(state: OrderState, reason: str, now: datetime) -> Refund:
    """Everything the order's payment still holds, back through its channel."""
    if state.payment is None:
        raise invalid_transition("nothing was paid")
    amount = paid_and_kept(state)
    freight_left = state.freight_cents - sum(r.freight_cents for r in _returned(state))
    freight = max(0, min(freight_left, amount))
    return Refund(
        id=f"{state.id}-{reason.lower()}",
        txn_id=state.payment.txn_id,
        channel=state.payment.channel,
        amount_cents=amount,
        goods_cents=amount - freight,
        freight_cents=freight,
        reason=reason,
        created_at=now,
    )


def _end_packages(
    s: OrderState,
    package_ids: list[str],
    status: PackageStatus,
    now: datetime,
    refunds: list[Refund],
) -> None:
    for pid in package_ids:
        p = package_of(s, pid)
        p.status, p.auto_confirm_at, p.purchase_at = status, None, None
        if status is PackageStatus.REJECTED:
            p.rejected_at = now
        else:
            p.cancelled_at = now
    for refund in refunds:
        count_refund(s, refund)
    if not live_packages(s) and s.close_reason is None:
        s.close_reason, s.closed_at = CloseReason.FULLY_REFUNDED, now


def check_can_reject(state: OrderState, package_id: str) -> None:
    package = package_of(state, package_id)
    if package.status not in AWAITING_RECEIPT:
        raise invalid_transition(f"package {package_id} is not on its way to the buyer")
    if package.replacement_for is not None:  # nothing to refund: its case's parties take it up
        raise invalid_transition(f"package {package_id} is an exchange's replacement")


def reject(
    state: OrderState,
    package_id: str,
    refund: Refund,
    now: datetime,
    actor: Actor,
    *,
    restocked: bool,
) -> Change:
    """The buyer refused the package (拒收): it is refunded; with nothing else live, the order
    closes FULLY_REFUNDED. `restocked`: the goods are already back (the supplier's word)."""
    check_can_reject(state, package_id)
    s = copied(state)
    _end_packages(s, [package_id], PackageStatus.REJECTED, now, [refund])
    package_of(s, package_id).restocked = restocked
    change = applied(
        s,
        now,
        actor,
        EventType.PACKAGE_REJECTED,
        {
            "package_id": package_id,
            "refund_id": refund.id,
            "amount_cents": refund.amount_cents,
            "freight_cents": refund.freight_cents,
            "freight_borne_by": refund.freight_borne_by,
        },
    )
    back = package_allocations(state, [package_id]) if restocked else []  # already back
    return replace(change, restore=back)


def check_can_confirm_return(state: OrderState, package_id: str) -> None:
    p = package_of(state, package_id)
    if p.status is not PackageStatus.REJECTED or p.restocked:
        raise invalid_transition(f"package {package_id} is not a rejected package on its way back")


def confirm_return(state: OrderState, package_id: str, now: datetime, actor: Actor) -> Change:
    """The location confirms the rejected goods arrived: they go back on hand."""
    check_can_confirm_return(state, package_id)
    s = copied(state)
    package_of(s, package_id).restocked = True
    change = applied(s, now, actor, EventType.RETURN_RECEIVED, {"package_id": package_id})
    return replace(change, restore=package_allocations(state, [package_id]))


def cancel_packages(
    state: OrderState,
    package_ids: list[str],
    refunds: list[Refund],
    now: datetime,
    actor: Actor,
    reason: str,
) -> Change:
    """Intercept packages before they ship (cancelled, refunded, stock restored)."""
    s = copied(state)
    _end_packages(s, package_ids, PackageStatus.CANCELLED, now, refunds)
    change = applied(
        s,
        now,
        actor,
        EventType.PACKAGES_CANCELLED,
        {"package_ids": package_ids, "reason": reason, "refunds": [r.id for r in refunds]},
    )
    return replace(change, restore=package_allocations(state, package_ids))


def package_allocations(state: OrderState, package_ids: list[str]) -> list[Allocation]:
    """The stock a package took: what goes back on hand when it returns or is intercepted."""
    return [
        Allocation(sku=line.sku, location=p.location, quantity=line.quantity)
        for p in state.packages
        if p.id in package_ids
        for line in p.lines
    ]


def check_can_cancel(state: OrderState) -> None:
    """The buyer's cancel: before payment, or after it while nothing has shipped (intercept).

    A package that shipped and was then rejected still shipped: the order is past cancel.
    """
    if state.status is OrderStatus.PENDING_PAYMENT:
        return
    shipped = any(p.shipped_at is not None for p in state.packages)
    if state.status is OrderStatus.PENDING_SHIPMENT and not shipped:
        return
    hint = " (a package has shipped: ask for a refund instead)" if shipped else ""
    raise invalid_transition(f"order is {state.status} and cannot be cancelled{hint}")


def cancel_paid(
    state: OrderState,
    refund: Refund,
    now: datetime,
    actor: Actor,
    note: str,
    reason: CloseReason = CloseReason.BUYER_CANCELLED,
) -> Change:
    """Intercept every live package, refund what the payment still holds, close."""
    check_can_cancel(state)
    s = copied(state)
    for request in s.refund_requests:  # everything is refunded at once: they are moot
        if request.status is RefundRequestStatus.REQUESTED:
            request.status, request.decided_at = RefundRequestStatus.REFUSED, now
            request.refuse_reason = "the order was cancelled and refunded in full"
    ids = [p.id for p in live_packages(s)]
    _end_packages(s, ids, PackageStatus.CANCELLED, now, [refund])
    s.close_reason, s.closed_at = reason, now
    change = applied(
        s,
        now,
        actor,
        EventType.CLOSED,
        {
            "reason": reason,
            "note": note,
            "package_ids": ids,
            "refund_id": refund.id,
        },
    )
    return replace(change, restore=package_allocations(state, ids))
