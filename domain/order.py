"""Order lifecycle: guards, transitions, status derived from packages, and timers.

Every transition is `f(state, ..., now, actor) -> Change`: a new state (version + 1) and the
event-log row that describes it. Guards (`check_*`) raise INVALID_TRANSITION and are what
the workflow's update validators call, so a refused request writes nothing.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from domain.errors import invalid_transition
from domain.freight import allocate_freight
from domain.models import (
    DEFAULT_SHOP,
    SYSTEM,
    Actor,
    Address,
    Allocation,
    CloseReason,
    EventType,
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
    RefundRequestStatus,
    RefundStatus,
    SubStatus,
    Take,
    Unavailable,
)

SHIPPED_STATES = frozenset({PackageStatus.SHIPPED, PackageStatus.DELIVERED, PackageStatus.RECEIVED})
DEAD_STATES = frozenset({PackageStatus.REJECTED, PackageStatus.CANCELLED})
AWAITING_RECEIPT = frozenset({PackageStatus.SHIPPED, PackageStatus.DELIVERED})


@dataclass(frozen=True)
class Change:
    """A transition: the new state, its event, and what it does to stock (the store applies
    exactly this, in the same transaction)."""

    state: OrderState
    event: OrderEvent
    release_stock: bool = False  # an unpaid order closed: its locks go
    restore: list[Allocation] = field(default_factory=list)  # goods back on hand
    returns: list[Allocation] = field(default_factory=list)  # refunded units back, once per
    return_ref: str = ""  # ... this reference (a refund request, a case)
    takes: list[Allocation] = field(default_factory=list)  # units off hand (a replacement),
    take_ref: str = ""  # ... once per this reference


class DeadlineKind(StrEnum):
    PAYMENT = "PAYMENT"  # unpaid at the deadline -> CLOSED/PAYMENT_TIMEOUT
    SUPPLIER_PURCHASE = "SUPPLIER_PURCHASE"  # cancel window over: buy KEPLER goods
    AUTO_CONFIRM = "AUTO_CONFIRM"  # shipped packages received automatically
    REFUND_RESPONSE = "REFUND_RESPONSE"  # the merchant did not answer: the refund is agreed
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
            DeadlineKind.REFUND_RESPONSE: "agree the refund request automatically",
            DeadlineKind.FINISH: "end of the after-sales window",
        }[self.kind]


# ---- derivation -------------------------------------------------------------------------


def live_packages(state: OrderState) -> list[Package]:
    """The packages of what was bought (an exchange's replacement carries no money or units
    of its own: its case follows it)."""
    return [p for p in state.packages if p.status not in DEAD_STATES and p.replacement_for is None]


def requested_takes(state: OrderState) -> list[Take]:
    """Units of refund requests still waiting for the merchant."""
    return [
        t
        for r in state.refund_requests
        if r.status is RefundRequestStatus.REQUESTED
        for t in r.takes
    ]


def has_open_refunds(state: OrderState) -> bool:
    """A refund request or an after-sales case is open: the order shows REFUNDING and its
    workflow stays open."""
    return (
        bool(requested_takes(state))
        or any(c.open for c in state.cases)
        or any(r.status == RefundStatus.PENDING for r in state.refunds)
    )


def derive_status(state: OrderState) -> tuple[OrderStatus, list[SubStatus]]:
    """Order status from its packages (SPEC §1); one package never drags the others."""
    subs: list[SubStatus] = []
    if has_open_refunds(state):
        subs.append(SubStatus.REFUNDING)
    if state.close_reason is not None:
        return OrderStatus.CLOSED, subs
    if state.payment is None:
        return OrderStatus.PENDING_PAYMENT, subs
    live = live_packages(state)
    shipped = [p for p in live if p.status in SHIPPED_STATES]
    if live and all(p.status == PackageStatus.RECEIVED for p in live):
        return OrderStatus.COMPLETED, subs if state.reviewed else [*subs, SubStatus.AWAITING_REVIEW]
    if live and len(shipped) == len(live):
        return OrderStatus.SHIPPED, subs
    if shipped:
        subs.insert(0, SubStatus.PARTIALLY_SHIPPED)
    return OrderStatus.PENDING_SHIPMENT, subs


def applied(
    state: OrderState, now: datetime, actor: Actor, type_: EventType, data: dict[str, Any]
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


def copied(state: OrderState) -> OrderState:
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
    reorder_of: str | None = None,
    unavailable: list[Unavailable] | None = None,
    shop_id: str = DEFAULT_SHOP,
    checkout_id: str | None = None,
) -> Change:
    goods = sum(line.quantity * line.unit_price_cents for line in lines)
    state = OrderState(
        id=order_id,
        buyer_id=buyer_id,
        shop_id=shop_id,
        checkout_id=checkout_id,
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
        reorder_of=reorder_of,
        unavailable=unavailable or [],
        version=0,
        created_at=now,
        updated_at=now,
    )
    data: dict[str, Any] = {"total_cents": state.total_cents}
    if reorder_of is not None:
        data |= {
            "reorder_of": reorder_of,
            "unavailable": [u.model_dump(mode="json") for u in state.unavailable],
        }
    return applied(state, now, actor, EventType.PLACED, data)


class Placement(BaseModel):
    """What placing an order took from the database (prices, freight, where its stock is
    held, its payment deadline, when): the workflow builds the same order from it and its
    own input (`placed`), so the order itself never travels back through its history."""

    model_config = ConfigDict(extra="forbid")  # an older result (a whole order) is not one
    lines: list[OrderLine]
    freight_cents: int
    freight_policy: FreightPolicy
    allocations: list[Allocation]
    low_stock: bool
    deadline: datetime
    unavailable: list[Unavailable] = []
    at: datetime
    shop_id: str = DEFAULT_SHOP  # the shop whose SKUs these are
    checkout_id: str | None = None


def placement_of(state: OrderState) -> Placement:
    """The placement an order was built from (a retried placement answers with it)."""
    return Placement(
        lines=state.lines,
        freight_cents=state.freight_cents,
        freight_policy=state.freight_policy,
        allocations=state.allocations,
        low_stock=state.low_stock,
        deadline=state.payment_deadline,
        unavailable=state.unavailable,
        shop_id=state.shop_id,
        checkout_id=state.checkout_id,
        at=state.created_at,
    )


def placed(
    p: Placement,
    *,
    order_id: str,
    buyer_id: str,
    address: Address,
    timings: OrderTimings,
    reorder_of: str | None,
) -> Change:
    """The order a placement makes: the same in the store that saves it and in the workflow."""
    return new_order(
        order_id=order_id,
        buyer_id=buyer_id,
        lines=p.lines,
        address=address,
        freight_cents=p.freight_cents,
        freight_policy=p.freight_policy,
        allocations=p.allocations,
        low_stock=p.low_stock,
        deadline=p.deadline,
        timings=timings,
        now=p.at,
        actor=Actor(kind="buyer", id=buyer_id),
        reorder_of=reorder_of,
        unavailable=p.unavailable if reorder_of else [],
        shop_id=p.shop_id,
        checkout_id=p.checkout_id,
    )


class PaymentAccepted(BaseModel):
    """What accepting a payment took from the database: where the stock was deducted, and
    when. The workflow marks the order paid from it (`mark_paid`), as the store did; `state`
    only when a later workflow task had already moved the order on (the stored order)."""

    model_config = ConfigDict(extra="forbid")
    allocations: list[Allocation] = []
    at: datetime | None = None
    state: OrderState | None = None


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
    s = copied(state)
    s.payment = payment
    s.paid_cents = payment.amount_cents
    s.allocations = allocations
    s.packages = split_packages(s, allocations, now)
    return applied(
        s,
        now,
        actor,
        EventType.PAID,
        {
            "channel": payment.channel,
            "txn_id": payment.txn_id,
            "amount_cents": payment.amount_cents,
            "packages": [p.id for p in s.packages],
        },
    )


# ---- shipping and receipt ---------------------------------------------------------------


def package_of(state: OrderState, package_id: str) -> Package:
    for p in state.packages:
        if p.id == package_id:
            return p
    raise invalid_transition(f"order {state.id} has no package {package_id}")


def check_can_ship(
    state: OrderState, package_id: str, carrier: str | None, tracking_no: str | None
) -> None:
    package = check_package_ships(state, package_id)
    needs_logistics = package.product_type is not ProductType.VIRTUAL
    if needs_logistics and not (carrier and tracking_no):
        raise invalid_transition("physical goods ship with a carrier and a tracking number")


def check_package_ships(state: OrderState, package_id: str) -> Package:
    """The package may ship now (with whatever logistics its goods need)."""
    if state.status not in (OrderStatus.PENDING_SHIPMENT,):
        raise invalid_transition(f"order is {state.status}; only a paid, unshipped order ships")
    package = package_of(state, package_id)
    if package.status is not PackageStatus.PENDING:
        raise invalid_transition(f"package {package_id} is {package.status}, not PENDING")
    if any(t.package_id == package_id for t in requested_takes(state)):
        raise invalid_transition(
            f"a refund request is open on package {package_id}: agree or refuse it first"
        )
    return package


def ship(
    state: OrderState,
    package_id: str,
    carrier: str | None,
    tracking_no: str | None,
    now: datetime,
    actor: Actor,
) -> Change:
    check_can_ship(state, package_id, carrier, tracking_no)
    s = copied(state)
    p = package_of(s, package_id)
    p.status, p.shipped_at = PackageStatus.SHIPPED, now
    if p.product_type is ProductType.VIRTUAL:
        p.status, p.delivered_at = PackageStatus.DELIVERED, now
    else:
        p.carrier, p.tracking_no = carrier, tracking_no
    p.auto_confirm_at = now + timedelta(seconds=s.timings.auto_confirm_seconds)
    return applied(
        s,
        now,
        actor,
        EventType.PACKAGE_SHIPPED,
        {"package_id": package_id, "carrier": carrier, "tracking_no": tracking_no},
    )


def shipped_as(
    state: OrderState, package_id: str, carrier: str | None, tracking_no: str | None
) -> bool:
    """The package has already shipped with this carrier and tracking number: shipping it so
    again (a bulk upload sent twice) is done, not refused."""
    package = next((p for p in state.packages if p.id == package_id), None)
    return (
        package is not None
        and package.shipped_at is not None
        and (package.carrier, package.tracking_no) == (carrier, tracking_no)
    )


def _awaiting_receipt(state: OrderState, package_ids: list[str] | None) -> list[str]:
    if package_ids is None:
        return [p.id for p in live_packages(state) if p.status in AWAITING_RECEIPT]
    for pid in package_ids:
        package = package_of(state, pid)
        if package.status not in AWAITING_RECEIPT:
            raise invalid_transition(f"package {pid} is not awaiting receipt")
        if package.replacement_for is not None:
            raise invalid_transition(
                f"package {pid} replaces goods of case {package.replacement_for}: confirm it there"
            )
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
    s = copied(state)
    ids = _awaiting_receipt(s, package_ids)
    for pid in ids:
        p = package_of(s, pid)
        p.status, p.received_at, p.auto_confirm_at = PackageStatus.RECEIVED, now, None
    return applied(s, now, actor, EventType.RECEIPT_CONFIRMED, {"package_ids": ids, "how": how})


def carrier_delivered(
    state: OrderState, package_id: str, now: datetime, actor: Actor
) -> Change | None:
    """Carrier sign-off: receipt itself for self-operated goods (JD practice), else DELIVERED."""
    p = package_of(state, package_id)
    if p.status is not PackageStatus.SHIPPED:
        return None  # late or repeated carrier news changes nothing
    if p.product_type is ProductType.SELF and p.replacement_for is None:
        return confirm_receipt(state, [package_id], now, actor, how="carrier sign-off")
    s = copied(state)
    q = package_of(s, package_id)
    q.status, q.delivered_at = PackageStatus.DELIVERED, now
    return applied(s, now, actor, EventType.PACKAGE_DELIVERED, {"package_id": package_id})


def check_can_extend(state: OrderState) -> None:
    if state.receipt_extended:
        raise invalid_transition("receipt can be extended only once")
    if not any(p.status in AWAITING_RECEIPT for p in live_packages(state)):
        raise invalid_transition("no shipped package is awaiting receipt")


def extend_receipt(state: OrderState, now: datetime, actor: Actor) -> Change:
    check_can_extend(state)
    s = copied(state)
    s.receipt_extended = True
    extra = timedelta(seconds=s.timings.receipt_extension_seconds)
    for p in s.packages:
        if p.status in AWAITING_RECEIPT and p.auto_confirm_at is not None:
            p.auto_confirm_at += extra
    return applied(
        s, now, actor, EventType.RECEIPT_EXTENDED, {"seconds": s.timings.receipt_extension_seconds}
    )


# ---- review -------------------------------------------------------------------------------

MAX_REVIEW_TEXT = 2000


def check_can_review(state: OrderState) -> None:
    if state.status is not OrderStatus.COMPLETED:
        raise invalid_transition(f"order is {state.status}; only a completed order is reviewed")
    if state.reviewed:
        raise invalid_transition("this order has been reviewed already")


def review(state: OrderState, rating: int, text: str, now: datetime, actor: Actor) -> Change:
    """The buyer's one review (rating 1-5 and text): AWAITING_REVIEW clears."""
    check_can_review(state)
    s = copied(state)
    s.reviewed = True
    skus = [line.sku for line in s.lines]
    return applied(
        s, now, actor, EventType.REVIEWED, {"rating": rating, "text": text, "skus": skus}
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
    s = copied(state)
    s.close_reason, s.closed_at = reason, now
    change = applied(s, now, actor, EventType.CLOSED, {"reason": reason, "note": note})
    return replace(change, release_stock=True)


def cancel_refused(
    state: OrderState, reason: CloseReason, why: str, now: datetime, actor: Actor
) -> Change:
    """An operator's cancellation (or reconciliation's) that the order's state does not allow
    (a package has shipped): written down, and the order goes on."""
    return applied(
        copied(state), now, actor, EventType.CANCEL_REFUSED, {"reason": reason, "detail": why}
    )


def count_refund(s: OrderState, refund: Refund) -> None:
    """Put a refund on a copy of the order; only money that moved counts as refunded."""
    s.refunds.append(refund)
    if refund.status != RefundStatus.FAILED:
        s.refunded_cents += refund.amount_cents


def add_refund(state: OrderState, refund: Refund, now: datetime, actor: Actor) -> Change:
    s = copied(state)
    count_refund(s, refund)
    return applied(s, now, actor, EventType.REFUNDED, refund.model_dump(mode="json"))


# ---- timers -----------------------------------------------------------------------------


def next_deadline(state: OrderState, *, hold_finish: bool = True) -> Deadline | None:
    """The earliest thing the order's timer must do, if any.

    `hold_finish=False` is how orders placed before after-sales behaved: they timed the end of
    the after-sales window even while something held them open (kept for their replay)."""
    if state.close_reason is not None:
        return None
    if state.status is OrderStatus.PENDING_PAYMENT:
        return Deadline(DeadlineKind.PAYMENT, state.payment_deadline)
    held = {t.package_id for t in requested_takes(state)}  # bought once the refund is decided
    due: list[Deadline] = [
        Deadline(DeadlineKind.SUPPLIER_PURCHASE, p.purchase_at)
        for p in state.packages
        if p.status is PackageStatus.AWAITING_SUPPLIER
        and p.purchase_at is not None
        and p.id not in held
    ]
    due += [
        Deadline(DeadlineKind.REFUND_RESPONSE, r.respond_by)
        for r in state.refund_requests
        if r.status is RefundRequestStatus.REQUESTED
    ]
    due += [
        Deadline(DeadlineKind.AUTO_CONFIRM, p.auto_confirm_at)
        for p in state.packages
        if p.status in AWAITING_RECEIPT and p.auto_confirm_at is not None
    ]
    if (
        not due
        and state.status is OrderStatus.COMPLETED
        and state.completed_at is not None
        and not (hold_finish and held_open(state))
    ):
        window = timedelta(seconds=state.timings.after_sales_window_seconds)
        due.append(Deadline(DeadlineKind.FINISH, state.completed_at + window))
    return min(due, key=lambda d: d.at) if due else None


def awaiting_return(state: OrderState) -> list[Package]:
    """Rejected own/drop-ship packages whose goods have not yet come back to their location."""
    return [p for p in state.packages if p.status is PackageStatus.REJECTED and not p.restocked]


def held_open(state: OrderState) -> bool:
    """Something still to come keeps the workflow open past its own deadlines: a rejected
    package on its way back, an open refund request or after-sales case, or a refund the
    channel refused for good (an admin retries it through the workflow)."""
    return bool(awaiting_return(state)) or has_open_refunds(state) or refund_failed(state)


def failed_refunds(state: OrderState) -> list[Refund]:
    """Refunds the channel refused for good: an admin retries them."""
    return [r for r in state.refunds if r.status == RefundStatus.FAILED]


def refund_failed(state: OrderState) -> bool:
    return bool(failed_refunds(state))


def open_case_count(state: OrderState) -> int:
    return sum(1 for c in state.cases if c.open)


def is_finished(state: OrderState, now: datetime, *, hold: bool = True) -> bool:
    """Nothing more can happen to the order: the workflow may end.

    `hold=False` is how orders placed before after-sales decided it (kept for their replay):
    only a rejected package on its way back held them open."""
    if held_open(state) if hold else awaiting_return(state):
        return False
    if state.status is OrderStatus.CLOSED:
        return True
    deadline = next_deadline(state, hold_finish=hold)  # the old rule timed FINISH regardless
    return deadline is not None and deadline.kind is DeadlineKind.FINISH and now >= deadline.at


def due_purchases(state: OrderState, now: datetime) -> list[Package]:
    held = {t.package_id for t in requested_takes(state)}
    return [
        p
        for p in state.packages
        if p.status is PackageStatus.AWAITING_SUPPLIER
        and p.purchase_at is not None
        and p.purchase_at <= now
        and p.id not in held
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
