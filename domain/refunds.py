"""Refunds of chosen lines (SPEC §6.1, §6.3): what is left to refund, which packages the units
leave, the money (goods, freight with the last line, caps), and the before-shipment request.

Every unit counts once: refunded units, units of REQUESTED refund requests and units held by
open after-sales cases are all subtracted before anything new is allowed.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from domain.errors import DomainError, ErrorCode, invalid_transition
from domain.fulfilment import paid_and_kept
from domain.models import (
    Actor,
    Allocation,
    CloseReason,
    EventType,
    FreightPolicy,
    LineRequest,
    OrderState,
    OrderStatus,
    Package,
    PackageStatus,
    Payment,
    ProductType,
    Refund,
    RefundRequest,
    RefundRequestStatus,
    RefundStatus,
    Take,
)
from domain.order import (
    SHIPPED_STATES,
    Change,
    applied,
    copied,
    count_refund,
    live_packages,
    package_of,
    requested_takes,
)

UNSHIPPED = frozenset(
    {PackageStatus.PENDING, PackageStatus.AWAITING_SUPPLIER, PackageStatus.PURCHASED}
)
MAX_REFUND_REQUESTS = 50  # per order: bounds the state a buyer can grow


# ---- what is left -------------------------------------------------------------------------


def reserved_takes(state: OrderState) -> list[Take]:
    """Units promised to a refund that has not happened yet."""
    return requested_takes(state) + [t for c in state.cases if c.open for t in c.takes]


def _reserved(state: OrderState) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for t in reserved_takes(state):
        out[(t.package_id, t.sku)] = out.get((t.package_id, t.sku), 0) + t.quantity
    return out


def left_in(state: OrderState, packages: Iterable[Package]) -> dict[tuple[str, str], int]:
    """(package, SKU) -> units that may still be refunded there."""
    reserved = _reserved(state)
    return {
        (p.id, line.sku): line.quantity - line.refunded_quantity - reserved.get((p.id, line.sku), 0)
        for p in packages
        for line in p.lines
    }


def live_units(state: OrderState) -> int:
    """Units still owed to (or kept by) the buyer and paid for: not refunded, not dead."""
    return sum(
        line.quantity - line.refunded_quantity for p in live_packages(state) for line in p.lines
    )


def merged(lines: Iterable[LineRequest]) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in lines:
        out[line.sku] = out.get(line.sku, 0) + line.quantity
    return out


def plan_takes(state: OrderState, lines: list[LineRequest], packages: list[Package]) -> list[Take]:
    """Spread the wanted units over the eligible packages, emptying the smallest first (fewer
    half-packages). Refuses an SKU the order does not have, and any line asked beyond what is
    left of it (every short SKU at once)."""
    known = {line.sku for line in state.lines}
    wanted = merged(lines)
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise DomainError(
            ErrorCode.VALIDATION, f"the order has no line {', '.join(unknown)}", {"skus": unknown}
        )
    left = left_in(state, packages)
    takes: list[Take] = []
    short: dict[str, int] = {}
    for sku, quantity in wanted.items():
        pools = sorted((n, pid) for (pid, s), n in left.items() if s == sku and n > 0)
        have = sum(n for n, _ in pools)
        if have < quantity:
            short[sku] = have
            continue
        need = quantity
        for n, pid in pools:
            if need == 0:
                break
            k = min(n, need)
            takes.append(Take(package_id=pid, sku=sku, quantity=k))
            need -= k
    if short:
        what = ", ".join(f"{n} {sku}" for sku, n in short.items())
        raise DomainError(
            ErrorCode.INVALID_TRANSITION,
            f"more than is left to refund: only {what} left",
            {"left": short},
        )
    return takes


# ---- the money ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Money:
    """A refund's parts, and what each package gives up (to keep its own books right)."""

    goods_cents: int
    freight_cents: int
    per_package: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (goods, freight)

    @property
    def amount_cents(self) -> int:
        return self.goods_cents + self.freight_cents


def money_for(state: OrderState, takes: list[Take], amount_cap: int | None = None) -> Money:
    """What taking these units back refunds now.

    Goods: units × unit price. Freight: under ONE_PACKAGE, all freight still held by live
    packages, and only when this refund leaves no live unit (the last line); under SPLIT, each
    package's share pro-rata to the goods it gives up, the package's last unit taking the
    remainder (so the shares sum exactly). Capped by `amount_cap` (a negotiated amount) and by
    what the order's payment still holds: the sum refunded never exceeds the sum paid.
    """
    prices = {line.sku: line.unit_price_cents for line in state.lines}
    by_package: dict[str, list[Take]] = {}
    for t in takes:
        by_package.setdefault(t.package_id, []).append(t)
    per: dict[str, tuple[int, int]] = {}
    for pid, ts in by_package.items():
        p = package_of(state, pid)
        goods = sum(t.quantity * prices[t.sku] for t in ts)
        units = sum(t.quantity for t in ts)
        remaining = sum(line.quantity - line.refunded_quantity for line in p.lines)
        freight = 0
        if state.freight_policy is FreightPolicy.SPLIT and p.freight_cents:
            if units >= remaining:
                freight = p.freight_cents
            elif p.goods_cents > 0:
                freight = p.freight_cents * goods // p.goods_cents
        per[pid] = (goods, freight)
    if state.freight_policy is FreightPolicy.ONE_PACKAGE and live_units(state) == sum(
        t.quantity for t in takes
    ):
        for p in live_packages(state):
            g, _ = per.get(p.id, (0, 0))
            if p.freight_cents or p.id in per:
                per[p.id] = (g, p.freight_cents)
    goods = sum(g for g, _ in per.values())
    freight = sum(f for _, f in per.values())
    cap = paid_and_kept(state)
    if amount_cap is not None:
        cap = min(cap, amount_cap)
    goods = max(0, min(goods, cap))
    freight = max(0, min(freight, cap - goods))
    return Money(goods, freight, per)


def take_out(s: OrderState, takes: list[Take], money: Money, now: datetime) -> None:
    """Apply a refund's units to a copy of the order. Unshipped units leave their package (an
    emptied package is CANCELLED); shipped units stay and count as refunded. Packages give up
    the goods and freight they refunded; order lines count the refunded units. Under
    ONE_PACKAGE, freight left on a cancelled package moves to the most valuable live one."""
    for t in takes:
        p = package_of(s, t.package_id)
        for line in p.lines:
            if line.sku == t.sku:
                if p.status in SHIPPED_STATES:
                    line.refunded_quantity += t.quantity
                else:
                    line.quantity -= t.quantity
        p.lines = [line for line in p.lines if line.quantity > 0]
        for order_line in s.lines:
            if order_line.sku == t.sku:
                order_line.refunded_quantity += t.quantity
    for pid, (goods, freight) in money.per_package.items():
        p = package_of(s, pid)
        p.goods_cents = max(0, p.goods_cents - goods)
        p.freight_cents = max(0, p.freight_cents - freight)
        if not p.lines and p.status in UNSHIPPED:
            p.status, p.cancelled_at, p.purchase_at = PackageStatus.CANCELLED, now, None
    if s.freight_policy is FreightPolicy.ONE_PACKAGE:
        stranded = sum(p.freight_cents for p in s.packages if p.status is PackageStatus.CANCELLED)
        live = live_packages(s)
        if stranded and live:
            for p in s.packages:
                if p.status is PackageStatus.CANCELLED:
                    p.freight_cents = 0
            max(live, key=lambda p: p.goods_cents).freight_cents += stranded


def returned_units(state: OrderState, takes: list[Take]) -> list[Allocation]:
    """Where refunded units go back on hand: each take at its package's location."""
    where = {p.id: p.location for p in state.packages}
    return [Allocation(sku=t.sku, location=where[t.package_id], quantity=t.quantity) for t in takes]


def paid_by(state: OrderState, refund: Refund) -> Payment:
    """The payment a refund returns: the order's own, or one it did not keep (named by the
    refund itself)."""
    if state.payment is not None and state.payment.txn_id == refund.txn_id:
        return state.payment
    return Payment(
        channel=refund.channel,
        txn_id=refund.txn_id,
        amount_cents=refund.amount_cents,
        paid_at=refund.created_at,
    )


def book(s: OrderState, refund: Refund, now: datetime) -> None:
    """Record a refund on a copy of the order; with nothing left live it closes FULLY_REFUNDED."""
    count_refund(s, refund)
    if s.close_reason is None and live_units(s) == 0:
        s.close_reason, s.closed_at = CloseReason.FULLY_REFUNDED, now


def line_refund(
    state: OrderState,
    refund_id: str,
    takes: list[Take],
    reason: str,
    now: datetime,
    amount_cap: int | None = None,
) -> tuple[Refund, Money]:
    if state.payment is None:
        raise invalid_transition("nothing was paid")
    money = money_for(state, takes, amount_cap)
    refund = Refund(
        id=refund_id,
        txn_id=state.payment.txn_id,
        channel=state.payment.channel,
        amount_cents=money.amount_cents,
        goods_cents=money.goods_cents,
        freight_cents=money.freight_cents,
        reason=reason,
        created_at=now,
    )
    return refund, money


# ---- refund before shipment (§6.1) ----------------------------------------------------------


def check_can_request(state: OrderState, lines: list[LineRequest]) -> list[Take]:
    """The takes a before-shipment refund of these lines would make, or a refusal."""
    if state.status is not OrderStatus.PENDING_SHIPMENT:
        raise invalid_transition(
            f"order is {state.status}; a refund before shipment needs a paid order with "
            "unshipped packages (after shipment, open an after-sales case)"
        )
    if len(state.refund_requests) >= MAX_REFUND_REQUESTS:
        raise invalid_transition(f"an order takes at most {MAX_REFUND_REQUESTS} refund requests")
    unshipped = [p for p in live_packages(state) if p.status in UNSHIPPED]
    shipped_only = sorted(
        {line.sku for line in lines} - {pl.sku for p in unshipped for pl in p.lines}
        & {line.sku for line in state.lines}
    )
    if shipped_only:
        raise invalid_transition(
            f"{', '.join(shipped_only)} already shipped: open an after-sales case instead"
        )
    takes = plan_takes(state, lines, unshipped)
    for t in takes:
        p = package_of(state, t.package_id)
        if p.status is PackageStatus.PURCHASED:
            left = sum(line.quantity for line in p.lines)
            if sum(x.quantity for x in takes if x.package_id == p.id) < left:
                raise invalid_transition(
                    f"package {p.id} was already bought from the supplier: only all of it can "
                    "be refunded before it ships"
                )
    return takes


def request_refund(
    state: OrderState,
    request_id: str,
    lines: list[LineRequest],
    reason: str,
    now: datetime,
    actor: Actor,
) -> Change:
    takes = check_can_request(state, lines)
    money = money_for(state, takes)
    s = copied(state)
    request = RefundRequest(
        id=request_id,
        order_id=state.id,
        lines=[LineRequest(sku=k, quantity=v) for k, v in merged(lines).items()],
        takes=takes,
        goods_cents=money.goods_cents,
        freight_cents=money.freight_cents,
        amount_cents=money.amount_cents,
        respond_by=now + timedelta(seconds=state.timings.refund_response_seconds),
        reason=reason,
        created_at=now,
    )
    s.refund_requests.append(request)
    return applied(s, now, actor, EventType.REFUND_REQUESTED, request.model_dump(mode="json"))


def request_of(state: OrderState, request_id: str) -> RefundRequest:
    for r in state.refund_requests:
        if r.id == request_id:
            return r
    raise DomainError(ErrorCode.NOT_FOUND, f"order {state.id} has no refund request {request_id}")


def check_can_decide(state: OrderState, request_id: str) -> RefundRequest:
    request = request_of(state, request_id)
    if request.status is not RefundRequestStatus.REQUESTED:
        raise invalid_transition(f"refund request {request_id} is {request.status}, not REQUESTED")
    return request


def refuse_request(
    state: OrderState, request_id: str, reason: str, now: datetime, actor: Actor
) -> Change:
    check_can_decide(state, request_id)
    s = copied(state)
    r = request_of(s, request_id)
    r.status, r.refuse_reason, r.decided_at = RefundRequestStatus.REFUSED, reason, now
    return applied(
        s, now, actor, EventType.REFUND_REFUSED, {"request_id": request_id, "reason": reason}
    )


def supplier_packages_to_cancel(state: OrderState, request_id: str) -> list[Package]:
    """Bought KEPLER packages this request empties: the supplier must cancel them first."""
    request = request_of(state, request_id)
    return [
        p
        for p in state.packages
        if p.status is PackageStatus.PURCHASED
        and p.product_type is ProductType.KEPLER
        and any(t.package_id == p.id for t in request.takes)
    ]


def refund_of_request(state: OrderState, request_id: str, now: datetime) -> tuple[Refund, Money]:
    """The money of an agreed request, worked out now (freight goes with the last line)."""
    request = check_can_decide(state, request_id)
    return line_refund(state, request.id, request.takes, "REFUND_REQUEST", now)


def complete_request(
    state: OrderState, request_id: str, refund: Refund, money: Money, now: datetime, actor: Actor
) -> Change:
    """Agreed (by the merchant or the clock): the lines leave their packages, the money moved
    (or FAILED, for an admin to retry)."""
    request = check_can_decide(state, request_id)
    s = copied(state)
    take_out(s, request.takes, money, now)
    r = request_of(s, request_id)
    r.status = (
        RefundRequestStatus.FAILED
        if refund.status == RefundStatus.FAILED
        else RefundRequestStatus.REFUNDED
    )
    r.goods_cents, r.freight_cents, r.amount_cents = (
        refund.goods_cents,
        refund.freight_cents,
        refund.amount_cents,
    )
    r.refund_id, r.decided_at = refund.id, now
    book(s, refund, now)
    change = applied(
        s,
        now,
        actor,
        EventType.REFUND_AGREED,
        {
            "request_id": request_id,
            "refund_id": refund.id,
            "amount_cents": refund.amount_cents,
            "freight_cents": refund.freight_cents,
            "status": refund.status,
        },
    )
    units = returned_units(state, request.takes)  # back on hand, once per request
    return replace(change, returns=units, return_ref=request_id)


def due_requests(state: OrderState, now: datetime) -> list[RefundRequest]:
    return [
        r
        for r in state.refund_requests
        if r.status is RefundRequestStatus.REQUESTED and r.respond_by <= now
    ]


def check_can_retry(state: OrderState, refund_id: str) -> Refund:
    for r in state.refunds:
        if r.id == refund_id:
            if r.status != RefundStatus.FAILED:
                raise invalid_transition(f"refund {refund_id} is {r.status}, not FAILED")
            return r
    raise DomainError(ErrorCode.NOT_FOUND, f"order {state.id} has no refund {refund_id}")


def retry_started(state: OrderState, refund_id: str, now: datetime, actor: Actor) -> Change:
    """An admin tries a FAILED refund again: it is PENDING (and counts) until the channel
    answers; its request is REFUNDED again unless that answer is another refusal."""
    check_can_retry(state, refund_id)
    s = copied(state)
    for r in s.refunds:
        if r.id == refund_id:
            r.status, r.failure = RefundStatus.PENDING, None
            s.refunded_cents += r.amount_cents
    for request in s.refund_requests:
        if request.refund_id == refund_id:
            request.status = RefundRequestStatus.REFUNDED
    data = {"refund_id": refund_id, "status": RefundStatus.PENDING}
    return applied(s, now, actor, EventType.REFUND_RETRIED, data)


def pending_refund(state: OrderState, refund_id: str) -> Refund:
    for r in state.refunds:
        if r.id == refund_id:
            if r.status != RefundStatus.PENDING:
                raise invalid_transition(f"refund {refund_id} is {r.status}, not PENDING")
            return r
    raise DomainError(ErrorCode.NOT_FOUND, f"order {state.id} has no refund {refund_id}")


def refund_settled(
    state: OrderState, refund_id: str, failure: str | None, now: datetime, actor: Actor
) -> Change:
    """The channel answered a PENDING refund: the money moved, or (with `failure`, the
    channel's reason) it did not, and the refund is FAILED for an admin to retry."""
    refund = pending_refund(state, refund_id)
    s = copied(state)
    r = next(r for r in s.refunds if r.id == refund_id)
    if failure is None:
        r.status = RefundStatus.SUCCEEDED
        data = {"refund_id": refund_id, "amount_cents": refund.amount_cents}
        return applied(s, now, actor, EventType.REFUND_SUCCEEDED, data)
    r.status, r.failure = RefundStatus.FAILED, failure
    s.refunded_cents -= refund.amount_cents  # counted while it was under way
    for request in s.refund_requests:
        if request.refund_id == refund_id:
            request.status = RefundRequestStatus.FAILED
    data = {"refund_id": refund_id, "amount_cents": refund.amount_cents, "failure": failure}
    return applied(s, now, actor, EventType.REFUND_FAILED, data)


def refund_withdrawn(
    state: OrderState, refund_id: str, why: str, now: datetime, actor: Actor
) -> Change:
    """A PENDING refund of a transaction that turned out to settle another order: it is not
    this order's to make, and leaves its refunds (the event log keeps it)."""
    refund = pending_refund(state, refund_id)
    s = copied(state)
    s.refunds = [r for r in s.refunds if r.id != refund_id]
    s.refunded_cents -= refund.amount_cents
    data = {"refund_id": refund_id, "txn_id": refund.txn_id, "why": why}
    return applied(s, now, actor, EventType.REFUND_WITHDRAWN, data)


def retried(state: OrderState, refund: Refund, now: datetime, actor: Actor) -> Change:
    """A FAILED refund tried again: on success it counts, and its request is REFUNDED."""
    check_can_retry(state, refund.id)
    s = copied(state)
    s.refunds = [refund if r.id == refund.id else r for r in s.refunds]
    if refund.status != RefundStatus.FAILED:
        s.refunded_cents += refund.amount_cents
        for request in s.refund_requests:
            if request.refund_id == refund.id:
                request.status = RefundRequestStatus.REFUNDED
    return applied(
        s, now, actor, EventType.REFUND_RETRIED, {"refund_id": refund.id, "status": refund.status}
    )
