"""Order lifecycle: guards, transitions, status derived from packages, and timers.

Every transition is `f(state, ..., now, actor) -> Change`: a new state (version + 1) and the
event-log row that describes it. Guards (`check_*`) raise INVALID_TRANSITION and are what
the workflow's update validators call, so a refused request writes nothing.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from domain.errors import invalid_transition
from domain.freight import allocate_freight
from domain.models import (
    SYSTEM,
    Actor,
    Address,
    Allocation,
    CloseReason,
    FreightPolicy,
    OrderEvent,
    OrderLine,
    OrderState,
    OrderStatus,
    OrderTimings,
    Package,
    PackageLine,
    PackageStatus,
    Payment,
    ProductType,
    Refund,
    SubStatus,
)

SHIPPED_STATES = frozenset({PackageStatus.SHIPPED, PackageStatus.DELIVERED, PackageStatus.RECEIVED})
DEAD_STATES = frozenset({PackageStatus.REJECTED, PackageStatus.CANCELLED})
AWAITING_RECEIPT = frozenset({PackageStatus.SHIPPED, PackageStatus.DELIVERED})


@dataclass(frozen=True)
class Change:
    state: OrderState
    event: OrderEvent


class DeadlineKind(StrEnum):
    PAYMENT = "PAYMENT"  # unpaid at the deadline -> CLOSED/PAYMENT_TIMEOUT
    SUPPLIER_PURCHASE = "SUPPLIER_PURCHASE"  # cancel window over: buy KEPLER goods
    AUTO_CONFIRM = "AUTO_CONFIRM"  # shipped packages received automatically
    FINISH = "FINISH"  # after-sales window over: the workflow may end


@dataclass(frozen=True)
class Deadline:
    kind: DeadlineKind
    at: datetime

    def describe(self) -> str:
        return {
            DeadlineKind.PAYMENT: "close if unpaid",
            DeadlineKind.SUPPLIER_PURCHASE: "buy from the supplier (cancel window over)",
            DeadlineKind.AUTO_CONFIRM: "confirm receipt automatically",
            DeadlineKind.FINISH: "end of the after-sales window",
        }[self.kind]


# ---- derivation -------------------------------------------------------------------------


def live_packages(state: OrderState) -> list[Package]:
    return [p for p in state.packages if p.status not in DEAD_STATES]


def derive_status(state: OrderState) -> tuple[OrderStatus, list[SubStatus]]:
    """Order status from its packages (SPEC §1); one package never drags the others."""
    subs: list[SubStatus] = []
    if any(r.status == "PENDING" for r in state.refunds):
        subs.append(SubStatus.REFUNDING)
    if state.close_reason is not None:
        return OrderStatus.CLOSED, subs
    if state.payment is None:
        return OrderStatus.PENDING_PAYMENT, subs
    live = live_packages(state)
    shipped = [p for p in live if p.status in SHIPPED_STATES]
    if live and all(p.status == PackageStatus.RECEIVED for p in live):
        return OrderStatus.COMPLETED, [*subs, SubStatus.AWAITING_REVIEW]
    if live and len(shipped) == len(live):
        return OrderStatus.SHIPPED, subs
    if shipped:
        subs.insert(0, SubStatus.PARTIALLY_SHIPPED)
    return OrderStatus.PENDING_SHIPMENT, subs


def _apply(
    state: OrderState, now: datetime, actor: Actor, type_: str, data: dict[str, Any]
) -> Change:
    """Finish a transition: re-derive the status, bump the version, describe it."""
    status, subs = derive_status(state)
    if status is OrderStatus.COMPLETED and state.completed_at is None:
        state.completed_at = now
    state.status, state.sub_statuses = status, subs
    state.version += 1
    state.updated_at = now
    event = OrderEvent(
        order_id=state.id, version=state.version, type=type_, actor=actor, at=now, data=data
    )
    return Change(state, event)


def _copy(state: OrderState) -> OrderState:
    return state.model_copy(deep=True)


# ---- placement --------------------------------------------------------------------------


def payment_deadline(
    now: datetime, timings: OrderTimings, sku_windows: Iterable[int | None]
) -> datetime:
    """The shortest of the deployment's window and any flash-sale SKU's own window."""
    seconds = [timings.payment_window_seconds] + [m * 60 for m in sku_windows if m is not None]
    return now + timedelta(seconds=min(seconds))


def new_order(
    *,
    order_id: str,
    buyer_id: str,
    lines: list[OrderLine],
    address: Address,
    freight_cents: int,
    freight_policy: FreightPolicy,
    allocations: list[Allocation],
    low_stock: bool,
    deadline: datetime,
    timings: OrderTimings,
    now: datetime,
    actor: Actor,
) -> Change:
    goods = sum(line.quantity * line.unit_price_cents for line in lines)
    state = OrderState(
        id=order_id,
        buyer_id=buyer_id,
        lines=lines,
        address=address,
        goods_cents=goods,
        freight_cents=freight_cents,
        total_cents=goods + freight_cents,
        payment_deadline=deadline,
        low_stock=low_stock,
        freight_policy=freight_policy,
        allocations=allocations,
        timings=timings,
        version=0,
        created_at=now,
        updated_at=now,
    )
    return _apply(state, now, actor, "PLACED", {"total_cents": state.total_cents})


# ---- payment ----------------------------------------------------------------------------


def check_can_pay(state: OrderState) -> None:
    if state.status is not OrderStatus.PENDING_PAYMENT:
        raise invalid_transition(f"order is {state.status}, only an unpaid order can be paid")


def payment_problem(state: OrderState, payment: Payment) -> str | None:
    """Why an incoming payment cannot settle this order (it must then be refunded)."""
    if state.payment is not None and state.payment.txn_id != payment.txn_id:
        return "ALREADY_PAID"
    if state.status is OrderStatus.CLOSED:
        return "ORDER_CLOSED"
    if state.status is not OrderStatus.PENDING_PAYMENT:
        return "NOT_PAYABLE"
    if payment.amount_cents != state.total_cents:
        return "WRONG_AMOUNT"
    return None


def split_packages(
    state: OrderState, allocations: list[Allocation], now: datetime
) -> list[Package]:
    """One package per (location, product type), freight shared by the order's policy.

    KEPLER packages wait out the cancel window before anything is bought from the supplier.
    """
    kinds = {line.sku: line.product_type for line in state.lines}
    prices = {line.sku: line.unit_price_cents for line in state.lines}
    groups: dict[tuple[str, ProductType], list[PackageLine]] = {}
    for a in sorted(allocations, key=lambda a: (a.location, a.sku)):
        groups.setdefault((a.location, kinds[a.sku]), []).append(
            PackageLine(sku=a.sku, quantity=a.quantity)
        )
    packages = [
        Package(
            id=f"{state.id}-{n}",
            location=location,
            product_type=kind,
            lines=lines,
            goods_cents=sum(pl.quantity * prices[pl.sku] for pl in lines),
        )
        for n, ((location, kind), lines) in enumerate(groups.items(), start=1)
    ]
    shares = allocate_freight(
        state.freight_cents, [p.goods_cents for p in packages], state.freight_policy
    )
    window = timedelta(seconds=state.timings.supplier_cancel_window_seconds)
    for package, share in zip(packages, shares, strict=True):
        package.freight_cents = share
        if package.product_type is ProductType.KEPLER:
            package.status, package.purchase_at = PackageStatus.AWAITING_SUPPLIER, now + window
    return packages


def mark_paid(
    state: OrderState, payment: Payment, allocations: list[Allocation], now: datetime, actor: Actor
) -> Change:
    check_can_pay(state)
    s = _copy(state)
    s.payment = payment
    s.paid_cents = payment.amount_cents
    s.allocations = allocations
    s.packages = split_packages(s, allocations, now)
    return _apply(
        s,
        now,
        actor,
        "PAID",
        {
            "channel": payment.channel,
            "txn_id": payment.txn_id,
            "amount_cents": payment.amount_cents,
            "packages": [p.id for p in s.packages],
        },
    )


# ---- shipping and receipt ---------------------------------------------------------------


def _package(state: OrderState, package_id: str) -> Package:
    for p in state.packages:
        if p.id == package_id:
            return p
    raise invalid_transition(f"order {state.id} has no package {package_id}")


def check_can_ship(
    state: OrderState, package_id: str, carrier: str | None, tracking_no: str | None
) -> None:
    if state.status not in (OrderStatus.PENDING_SHIPMENT,):
        raise invalid_transition(f"order is {state.status}; only a paid, unshipped order ships")
    package = _package(state, package_id)
    if package.status is not PackageStatus.PENDING:
        raise invalid_transition(f"package {package_id} is {package.status}, not PENDING")
    needs_logistics = package.product_type is not ProductType.VIRTUAL
    if needs_logistics and not (carrier and tracking_no):
        raise invalid_transition("physical goods ship with a carrier and a tracking number")


def ship(
    state: OrderState,
    package_id: str,
    carrier: str | None,
    tracking_no: str | None,
    now: datetime,
    actor: Actor,
) -> Change:
    check_can_ship(state, package_id, carrier, tracking_no)
    s = _copy(state)
    p = _package(s, package_id)
    p.status, p.shipped_at = PackageStatus.SHIPPED, now
    if p.product_type is ProductType.VIRTUAL:
        p.status, p.delivered_at = PackageStatus.DELIVERED, now
    else:
        p.carrier, p.tracking_no = carrier, tracking_no
    p.auto_confirm_at = now + timedelta(seconds=s.timings.auto_confirm_seconds)
    return _apply(
        s,
        now,
        actor,
        "PACKAGE_SHIPPED",
        {"package_id": package_id, "carrier": carrier, "tracking_no": tracking_no},
    )


def _awaiting_receipt(state: OrderState, package_ids: list[str] | None) -> list[str]:
    if package_ids is None:
        return [p.id for p in state.packages if p.status in AWAITING_RECEIPT]
    for pid in package_ids:
        if _package(state, pid).status not in AWAITING_RECEIPT:
            raise invalid_transition(f"package {pid} is not awaiting receipt")
    return list(dict.fromkeys(package_ids))


def check_can_confirm(state: OrderState, package_ids: list[str] | None) -> None:
    if state.status not in (OrderStatus.PENDING_SHIPMENT, OrderStatus.SHIPPED):
        raise invalid_transition(f"order is {state.status}; nothing is awaiting receipt")
    if not _awaiting_receipt(state, package_ids):
        raise invalid_transition("no shipped package is awaiting receipt")


def confirm_receipt(
    state: OrderState, package_ids: list[str] | None, now: datetime, actor: Actor, how: str
) -> Change:
    check_can_confirm(state, package_ids)
    s = _copy(state)
    ids = _awaiting_receipt(s, package_ids)
    for pid in ids:
        p = _package(s, pid)
        p.status, p.received_at, p.auto_confirm_at = PackageStatus.RECEIVED, now, None
    return _apply(s, now, actor, "RECEIPT_CONFIRMED", {"package_ids": ids, "how": how})


def carrier_delivered(
    state: OrderState, package_id: str, now: datetime, actor: Actor
) -> Change | None:
    """Carrier sign-off: receipt itself for self-operated goods (JD practice), else DELIVERED."""
    p = _package(state, package_id)
    if p.status is not PackageStatus.SHIPPED:
        return None  # late or repeated carrier news changes nothing
    if p.product_type is ProductType.SELF:
        return confirm_receipt(state, [package_id], now, actor, how="carrier sign-off")
    s = _copy(state)
    q = _package(s, package_id)
    q.status, q.delivered_at = PackageStatus.DELIVERED, now
    return _apply(s, now, actor, "PACKAGE_DELIVERED", {"package_id": package_id})


def check_can_extend(state: OrderState) -> None:
    if state.receipt_extended:
        raise invalid_transition("receipt can be extended only once")
    if not any(p.status in AWAITING_RECEIPT for p in state.packages):
        raise invalid_transition("no shipped package is awaiting receipt")


def extend_receipt(state: OrderState, now: datetime, actor: Actor) -> Change:
    check_can_extend(state)
    s = _copy(state)
    s.receipt_extended = True
    extra = timedelta(seconds=s.timings.receipt_extension_seconds)
    for p in s.packages:
        if p.status in AWAITING_RECEIPT and p.auto_confirm_at is not None:
            p.auto_confirm_at += extra
    return _apply(
        s, now, actor, "RECEIPT_EXTENDED", {"seconds": s.timings.receipt_extension_seconds}
    )


# ---- closing and refunds ----------------------------------------------------------------


def check_can_close(state: OrderState, reason: CloseReason) -> None:
    if state.status is not OrderStatus.PENDING_PAYMENT:
        verb = "cancelled" if reason is CloseReason.BUYER_CANCELLED else "closed"
        hint = " (ask for a refund instead)" if state.payment is not None else ""
        raise invalid_transition(f"order is {state.status} and cannot be {verb}{hint}")


def close(
    state: OrderState, reason: CloseReason, now: datetime, actor: Actor, note: str = ""
) -> Change:
    if state.status is OrderStatus.CLOSED:
        raise invalid_transition("order is already closed")
    s = _copy(state)
    s.close_reason, s.closed_at = reason, now
    return _apply(s, now, actor, "CLOSED", {"reason": reason, "note": note})


def add_refund(state: OrderState, refund: Refund, now: datetime, actor: Actor) -> Change:
    s = _copy(state)
    s.refunds.append(refund)
    if refund.status != "FAILED":
        s.refunded_cents += refund.amount_cents
    return _apply(s, now, actor, "REFUNDED", refund.model_dump(mode="json"))


# ---- supplier (KEPLER) -------------------------------------------------------------------


def mark_purchased(
    state: OrderState, package_id: str, supplier_order_id: str, now: datetime, actor: Actor
) -> Change:
    if _package(state, package_id).status is not PackageStatus.AWAITING_SUPPLIER:
        raise invalid_transition(f"package {package_id} is not awaiting the supplier")
    s = _copy(state)
    p = _package(s, package_id)
    p.status, p.supplier_order_id, p.purchase_at = PackageStatus.PURCHASED, supplier_order_id, None
    return _apply(
        s,
        now,
        actor,
        "SUPPLIER_PURCHASED",
        {"package_id": package_id, "supplier_order_id": supplier_order_id},
    )


def check_supplier_notice(state: OrderState, package_id: str, supplier_order_id: str) -> None:
    """The supplier speaks only of KEPLER packages it sold us, under its own order id."""
    p = _package(state, package_id)
    if p.product_type is not ProductType.KEPLER or p.supplier_order_id is None:
        raise invalid_transition(f"package {package_id} was not bought from a supplier")
    if p.supplier_order_id != supplier_order_id:
        raise invalid_transition(f"package {package_id} is not supplier order {supplier_order_id}")


def supplier_shipped(
    state: OrderState, package_id: str, now: datetime, actor: Actor
) -> Change | None:
    """The supplier's 待收货: the package is on its way (None when that is old news)."""
    if _package(state, package_id).status is not PackageStatus.PURCHASED:
        return None
    s = _copy(state)
    p = _package(s, package_id)
    p.status, p.shipped_at, p.carrier = PackageStatus.SHIPPED, now, "supplier"
    p.auto_confirm_at = now + timedelta(seconds=s.timings.auto_confirm_seconds)
    return _apply(s, now, actor, "PACKAGE_SHIPPED", {"package_id": package_id, "by": "supplier"})


# ---- refunds of packages ------------------------------------------------------------------


def _returned(state: OrderState) -> list[Refund]:
    """Refunds of the order's own payment that went through (not late or duplicate ones)."""
    if state.payment is None:
        return []
    txn = state.payment.txn_id
    return [r for r in state.refunds if r.txn_id == txn and r.status != "FAILED"]


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
    p = _package(state, package_id)
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
        p = _package(s, pid)
        p.status, p.auto_confirm_at, p.purchase_at = status, None, None
        if status is PackageStatus.REJECTED:
            p.rejected_at = now
        else:
            p.cancelled_at = now
    for refund in refunds:
        s.refunds.append(refund)
        if refund.status != "FAILED":
            s.refunded_cents += refund.amount_cents
    if not live_packages(s) and s.close_reason is None:
        s.close_reason, s.closed_at = CloseReason.FULLY_REFUNDED, now


def check_can_reject(state: OrderState, package_id: str) -> None:
    if _package(state, package_id).status not in AWAITING_RECEIPT:
        raise invalid_transition(f"package {package_id} is not on its way to the buyer")


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
    s = _copy(state)
    _end_packages(s, [package_id], PackageStatus.REJECTED, now, [refund])
    _package(s, package_id).restocked = restocked
    return _apply(
        s,
        now,
        actor,
        "PACKAGE_REJECTED",
        {
            "package_id": package_id,
            "refund_id": refund.id,
            "amount_cents": refund.amount_cents,
            "freight_cents": refund.freight_cents,
            "freight_borne_by": refund.freight_borne_by,
        },
    )


def check_can_confirm_return(state: OrderState, package_id: str) -> None:
    p = _package(state, package_id)
    if p.status is not PackageStatus.REJECTED or p.restocked:
        raise invalid_transition(f"package {package_id} is not a rejected package on its way back")


def confirm_return(state: OrderState, package_id: str, now: datetime, actor: Actor) -> Change:
    """The location confirms the rejected goods arrived: they go back on hand."""
    check_can_confirm_return(state, package_id)
    s = _copy(state)
    _package(s, package_id).restocked = True
    return _apply(s, now, actor, "RETURN_RECEIVED", {"package_id": package_id})


def cancel_packages(
    state: OrderState,
    package_ids: list[str],
    refunds: list[Refund],
    now: datetime,
    actor: Actor,
    reason: str,
) -> Change:
    """Intercept packages before they ship (cancelled, refunded, stock restored)."""
    s = _copy(state)
    _end_packages(s, package_ids, PackageStatus.CANCELLED, now, refunds)
    return _apply(
        s,
        now,
        actor,
        "PACKAGES_CANCELLED",
        {"package_ids": package_ids, "reason": reason, "refunds": [r.id for r in refunds]},
    )


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
    state: OrderState, refund: Refund, now: datetime, actor: Actor, note: str
) -> Change:
    """Intercept every live package, refund what the payment still holds, close."""
    check_can_cancel(state)
    s = _copy(state)
    ids = [p.id for p in live_packages(s)]
    _end_packages(s, ids, PackageStatus.CANCELLED, now, [refund])
    s.close_reason, s.closed_at = CloseReason.BUYER_CANCELLED, now
    return _apply(
        s,
        now,
        actor,
        "CLOSED",
        {
            "reason": CloseReason.BUYER_CANCELLED,
            "note": note,
            "package_ids": ids,
            "refund_id": refund.id,
        },
    )


# ---- timers -----------------------------------------------------------------------------


def next_deadline(state: OrderState) -> Deadline | None:
    """The earliest thing the order's timer must do, if any."""
    if state.close_reason is not None:
        return None
    if state.status is OrderStatus.PENDING_PAYMENT:
        return Deadline(DeadlineKind.PAYMENT, state.payment_deadline)
    due: list[Deadline] = [
        Deadline(DeadlineKind.SUPPLIER_PURCHASE, p.purchase_at)
        for p in state.packages
        if p.status is PackageStatus.AWAITING_SUPPLIER and p.purchase_at is not None
    ]
    due += [
        Deadline(DeadlineKind.AUTO_CONFIRM, p.auto_confirm_at)
        for p in state.packages
        if p.status in AWAITING_RECEIPT and p.auto_confirm_at is not None
    ]
    if not due and state.status is OrderStatus.COMPLETED and state.completed_at is not None:
        window = timedelta(seconds=state.timings.after_sales_window_seconds)
        due.append(Deadline(DeadlineKind.FINISH, state.completed_at + window))
    return min(due, key=lambda d: d.at) if due else None


def awaiting_return(state: OrderState) -> list[Package]:
    """Rejected own/drop-ship packages whose goods have not yet come back to their location."""
    return [p for p in state.packages if p.status is PackageStatus.REJECTED and not p.restocked]


def is_finished(state: OrderState, now: datetime) -> bool:
    """Nothing more can happen to the order: the workflow may end."""
    if awaiting_return(state):
        return False
    if state.status is OrderStatus.CLOSED:
        return True
    deadline = next_deadline(state)
    return deadline is not None and deadline.kind is DeadlineKind.FINISH and now >= deadline.at


def due_purchases(state: OrderState, now: datetime) -> list[Package]:
    return [
        p
        for p in state.packages
        if p.status is PackageStatus.AWAITING_SUPPLIER
        and p.purchase_at is not None
        and p.purchase_at <= now
    ]


def on_deadline(state: OrderState, deadline: Deadline, now: datetime) -> Change | None:
    """What a fired timer does by itself; None when nothing is due (or it needs I/O)."""
    if deadline.kind is DeadlineKind.PAYMENT and state.status is OrderStatus.PENDING_PAYMENT:
        return close(state, CloseReason.PAYMENT_TIMEOUT, now, SYSTEM)
    if deadline.kind is DeadlineKind.AUTO_CONFIRM:
        due = [
            p.id
            for p in state.packages
            if p.status in AWAITING_RECEIPT
            and p.auto_confirm_at is not None
            and p.auto_confirm_at <= now
        ]
        if due:
            return confirm_receipt(state, due, now, SYSTEM, how="automatic")
    return None
