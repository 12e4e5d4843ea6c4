"""After-sales cases (售后, SPEC §6.2): statuses, who may do what in each, the deadline of each
status and what happens when it passes, and the timeline entry of every action.

A case is its own state machine with its own version. The order only holds the case's claim
(the shipped units it covers); it moves the money and stock when the case settles.
Every transition is `f(case, action, now) -> case` (version + 1, one timeline entry); guards
raise DomainError, and the workflow's validator calls the same guard, so a refused action
writes nothing.
"""

from dataclasses import replace
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.errors import DomainError, ErrorCode, invalid_transition
from domain.models import (
    DEFAULT_SHOP,
    MAX_AMOUNT_CENTS,
    SYSTEM,
    Actor,
    Allocation,
    CaseClaim,
    CaseType,
    EventType,
    LineRequest,
    OrderState,
    OrderStatus,
    OrderTimings,
    Package,
    PackageLine,
    PackageStatus,
    ProductType,
    Refund,
    Take,
)
from domain.order import SHIPPED_STATES, Change, applied, copied, live_packages
from domain.refunds import (
    Money,
    book,
    line_refund,
    merged,
    money_for,
    plan_takes,
    returned_units,
    take_out,
)

MAX_IMAGES = 9
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_CASES_PER_ORDER = 50


class CaseStatus(StrEnum):
    WAIT_SELLER_AGREE = "WAIT_SELLER_AGREE"  # merchant: agree, reject or propose an amount
    WAIT_BUYER_CONFIRM = "WAIT_BUYER_CONFIRM"  # buyer: accept or decline the proposal
    WAIT_BUYER_RETURN = "WAIT_BUYER_RETURN"  # buyer: ship the goods back (carrier + tracking)
    WAIT_SELLER_RECEIVE = "WAIT_SELLER_RECEIVE"  # merchant: confirm the return arrived
    SELLER_REJECTED = "SELLER_REJECTED"  # buyer: escalate to the platform, or withdraw
    PLATFORM_REVIEW = "PLATFORM_REVIEW"  # 客服介入: an admin rules
    WAIT_SELLER_RESHIP = "WAIT_SELLER_RESHIP"  # an exchange: merchant ships the replacement
    WAIT_BUYER_RECEIVE = "WAIT_BUYER_RECEIVE"  # an exchange: buyer confirms it arrived
    EXCHANGED = "EXCHANGED"  # final: the buyer has the replacement; no money moved
    REFUNDED = "REFUNDED"  # final: the money went back
    CLOSED = "CLOSED"  # final: no refund (seller's ruling, or a deadline the buyer missed)
    CANCELLED = "CANCELLED"  # final: the buyer withdrew


FINAL = frozenset(
    {CaseStatus.REFUNDED, CaseStatus.CLOSED, CaseStatus.CANCELLED, CaseStatus.EXCHANGED}
)
# a case that ended so keeps its evidence images only for a while: nobody can act on it any
# more, and no money moved that the images could be needed to explain
ENDED_WITHOUT_REFUND = frozenset({CaseStatus.CLOSED, CaseStatus.CANCELLED})


class CaseAction(StrEnum):
    AGREE = "agree"
    REJECT = "reject"
    PROPOSE = "propose"
    CONFIRM_RETURN = "confirm-return"
    RETURN_SHIPMENT = "return-shipment"
    ACCEPT_PROPOSAL = "accept-proposal"
    DECLINE_PROPOSAL = "decline-proposal"
    ESCALATE = "escalate"
    WITHDRAW = "withdraw"
    RULE = "rule"
    RESHIP = "reship"
    CONVERT_TO_REFUND = "convert-to-refund"
    CONFIRM_RECEIPT = "confirm-receipt"


# who may take each action, and in which statuses
ROLE = {
    CaseAction.AGREE: "merchant",
    CaseAction.REJECT: "merchant",
    CaseAction.PROPOSE: "merchant",
    CaseAction.CONFIRM_RETURN: "merchant",
    CaseAction.RETURN_SHIPMENT: "buyer",
    CaseAction.ACCEPT_PROPOSAL: "buyer",
    CaseAction.DECLINE_PROPOSAL: "buyer",
    CaseAction.ESCALATE: "buyer",
    CaseAction.WITHDRAW: "buyer",
    CaseAction.RULE: "admin",
    CaseAction.RESHIP: "merchant",
    CaseAction.CONVERT_TO_REFUND: "merchant",
    CaseAction.CONFIRM_RECEIPT: "buyer",
}
ALLOWED = {
    CaseAction.AGREE: {CaseStatus.WAIT_SELLER_AGREE},
    CaseAction.REJECT: {CaseStatus.WAIT_SELLER_AGREE},
    CaseAction.PROPOSE: {CaseStatus.WAIT_SELLER_AGREE},
    CaseAction.CONFIRM_RETURN: {CaseStatus.WAIT_SELLER_RECEIVE},
    CaseAction.RETURN_SHIPMENT: {CaseStatus.WAIT_BUYER_RETURN},
    CaseAction.ACCEPT_PROPOSAL: {CaseStatus.WAIT_BUYER_CONFIRM},
    CaseAction.DECLINE_PROPOSAL: {CaseStatus.WAIT_BUYER_CONFIRM},
    CaseAction.ESCALATE: {CaseStatus.SELLER_REJECTED},
    CaseAction.WITHDRAW: {
        CaseStatus.WAIT_SELLER_AGREE,
        CaseStatus.WAIT_BUYER_CONFIRM,
        CaseStatus.WAIT_BUYER_RETURN,
        CaseStatus.SELLER_REJECTED,
        CaseStatus.PLATFORM_REVIEW,
    },
    CaseAction.RULE: {CaseStatus.PLATFORM_REVIEW},
    CaseAction.RESHIP: {CaseStatus.WAIT_SELLER_RESHIP},
    CaseAction.CONVERT_TO_REFUND: {CaseStatus.WAIT_SELLER_RESHIP},
    CaseAction.CONFIRM_RECEIPT: {CaseStatus.WAIT_BUYER_RECEIVE},
}


_ORDER = OrderTimings()  # the defaults, as an order's own


class CaseTimings(BaseModel):
    respond_seconds: int = _ORDER.refund_response_seconds  # merchant's answer; buyer's answer
    return_ship_seconds: int = _ORDER.return_ship_seconds
    return_receive_seconds: int = _ORDER.return_receive_seconds
    escalate_seconds: int = _ORDER.escalate_seconds
    reship_seconds: int = _ORDER.reship_seconds  # an exchange's replacement ships within this
    receive_seconds: int = _ORDER.auto_confirm_seconds  # ... and is received within this

    @classmethod
    def of(cls, t: OrderTimings) -> "CaseTimings":
        return cls(
            respond_seconds=t.refund_response_seconds,
            return_ship_seconds=t.return_ship_seconds,
            return_receive_seconds=t.return_receive_seconds,
            escalate_seconds=t.escalate_seconds,
            reship_seconds=t.reship_seconds,
            receive_seconds=t.auto_confirm_seconds,
        )


class TimelineEntry(BaseModel):
    at: datetime
    actor: Actor
    action: str
    status: CaseStatus
    note: str = ""


class Settlement(BaseModel):
    """What the order must do to end the case: refund (and maybe restock), or just release."""

    refund: bool
    amount_cents: int = 0
    restock: bool = False
    keep_open: bool = False  # an exchange's return received: restock only, the case goes on


class AfterSalesCase(BaseModel):
    id: str
    order_id: str
    buyer_id: str
    shop_id: str = DEFAULT_SHOP  # the order's
    type: CaseType
    status: CaseStatus = CaseStatus.WAIT_SELLER_AGREE
    reason: str
    description: str = ""
    lines: list[LineRequest]
    takes: list[Take]
    images: list[str] = []  # sha256 of each evidence image (the bytes live in the blob store)
    claim_cents: int  # the most this case can refund: the lines' goods (+ freight if the last)
    proposed_cents: int | None = None
    agreed_cents: int | None = None
    return_carrier: str | None = None
    return_tracking_no: str | None = None
    replacements: list[str] = []  # an exchange: the order's replacement package ids
    deadline: datetime | None = None
    deadline_action: str = ""
    service_phone: str = ""
    settlement: Settlement | None = None  # decided, waiting for the order to move the money
    refund_id: str | None = None
    refund_status: str | None = None
    timeline: list[TimelineEntry] = []
    timings: CaseTimings = CaseTimings()
    version: int = 1
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None


class CaseCommand(BaseModel):
    """One action on a case, made against the version the actor saw."""

    action: CaseAction
    version: int = Field(ge=1)
    actor: Actor
    reason: str = Field("", max_length=500)
    amount_cents: int | None = Field(None, ge=1, le=MAX_AMOUNT_CENTS)
    carrier: str | None = Field(None, max_length=32)
    tracking_no: str | None = Field(None, max_length=64)
    decision: str | None = None  # RULE: BUYER | SELLER


# ---- opening (the order's side) -------------------------------------------------------------


def check_can_open(
    state: OrderState, lines: list[LineRequest], now: datetime, type_: CaseType | None = None
) -> list[Take]:
    """A case covers units of shipped packages of a paid order, within the after-sales window,
    on lines no other open case covers; an exchange, units shipped from the shop's own stock
    (a replacement is taken from it)."""
    if state.payment is None or state.status not in (OrderStatus.SHIPPED, OrderStatus.COMPLETED):
        raise invalid_transition(
            f"order is {state.status}; after-sales cases are for shipped or completed orders"
            + (
                " (before shipment, ask for a refund)"
                if state.status is OrderStatus.PENDING_SHIPMENT
                else ""
            )
        )
    if state.status is OrderStatus.COMPLETED and state.completed_at is not None:
        ends = state.completed_at + timedelta(seconds=state.timings.after_sales_window_seconds)
        if now >= ends:
            raise invalid_transition(f"the after-sales window ended at {ends.isoformat()}")
    if len(state.cases) >= MAX_CASES_PER_ORDER:
        raise invalid_transition(f"an order takes at most {MAX_CASES_PER_ORDER} cases")
    busy = sorted({t.sku for c in state.cases if c.open for t in c.takes} & set(merged(lines)))
    if busy:
        raise invalid_transition(f"a case is already open on {', '.join(busy)}")
    shipped = [p for p in live_packages(state) if p.status in SHIPPED_STATES]
    takes = plan_takes(state, lines, shipped)
    if type_ is CaseType.EXCHANGE:
        kinds = {p.id: p.product_type for p in shipped}
        others = sorted({t.sku for t in takes if kinds[t.package_id] is not ProductType.SELF})
        if others:
            raise DomainError(
                ErrorCode.VALIDATION,
                "an exchange is for goods shipped from the shop's own stock, not "
                f"{', '.join(others)} (ask for a return and refund)",
            )
    return takes


def new_case(
    state: OrderState,
    *,
    case_id: str,
    type_: CaseType,
    reason: str,
    description: str,
    lines: list[LineRequest],
    images: list[str],
    service_phone: str,
    now: datetime,
    actor: Actor,
) -> tuple[Change, AfterSalesCase]:
    """The order takes the claim (its units are held) and the case starts WAIT_SELLER_AGREE."""
    takes = check_can_open(state, lines, now, type_)
    claim_cents = money_for(state, takes).amount_cents
    timings = CaseTimings.of(state.timings)
    case = AfterSalesCase(
        id=case_id,
        order_id=state.id,
        buyer_id=state.buyer_id,
        shop_id=state.shop_id,
        type=type_,
        reason=reason,
        description=description,
        lines=[LineRequest(sku=k, quantity=v) for k, v in merged(lines).items()],
        takes=takes,
        images=images,
        claim_cents=claim_cents,
        service_phone=service_phone,
        timings=timings,
        created_at=now,
        updated_at=now,
        timeline=[
            TimelineEntry(
                at=now, actor=actor, action="open", status=CaseStatus.WAIT_SELLER_AGREE, note=reason
            )
        ],
    )
    _set_deadline(case, now)
    s = copied(state)
    s.cases.append(CaseClaim(id=case_id, type=type_.value, takes=takes))
    change = applied(
        s,
        now,
        actor,
        EventType.CASE_OPENED,
        {"case_id": case_id, "type": type_.value, "claim_cents": case.claim_cents},
    )
    return change, case


# ---- settling (the order's side) ------------------------------------------------------------


def claim_of(state: OrderState, case_id: str) -> CaseClaim:
    for c in state.cases:
        if c.id == case_id:
            return c
    raise DomainError(ErrorCode.NOT_FOUND, f"order {state.id} has no case {case_id}")


def claim_refund(
    state: OrderState, case_id: str, amount_cents: int, now: datetime
) -> tuple[Refund, Money]:
    """The case's refund: its units at most the agreed amount (units rejected at the door
    since were refunded then, and are not refunded twice)."""
    claim = claim_of(state, case_id)
    live = {p.id for p in live_packages(state)}
    takes = [t for t in claim.takes if t.package_id in live]
    return line_refund(state, f"{case_id}-refund", takes, "AFTER_SALES", now, amount_cents)


def settle_claim(
    state: OrderState,
    case_id: str,
    refund: Refund | None,
    money: Money | None,
    now: datetime,
    actor: Actor,
    *,
    restock: bool = False,
) -> Change:
    """The case ended: refunded units count as refunded (closing the order FULLY_REFUNDED when
    nothing is left), or, with no refund, the units are free again. `restock`: the refunded
    units came back (a return received) and go back on hand, once per case."""
    claim = claim_of(state, case_id)
    if not claim.open:
        raise invalid_transition(f"case {case_id} is already settled")
    s = copied(state)
    c = claim_of(s, case_id)
    c.open = False
    if refund is not None and money is not None:
        live = {p.id for p in live_packages(s)}
        take_out(s, [t for t in claim.takes if t.package_id in live], money, now)
        c.refund_id = refund.id
        book(s, refund, now)
        data = {"case_id": case_id, "refund_id": refund.id, "amount_cents": refund.amount_cents}
        change = applied(s, now, actor, EventType.CASE_REFUNDED, data | {"status": refund.status})
        units = returned_units(state, claim.takes) if restock else []
        return replace(change, returns=units, return_ref=case_id)
    replaced = [p for p in s.packages if p.replacement_for == case_id]
    if replaced:  # an exchange the buyer received: so are its packages
        for p in replaced:
            if p.status in (PackageStatus.SHIPPED, PackageStatus.DELIVERED):
                p.status, p.received_at = PackageStatus.RECEIVED, now
        data = {"case_id": case_id, "package_ids": [p.id for p in replaced]}
        return applied(s, now, actor, EventType.CASE_EXCHANGED, data)
    return applied(s, now, actor, EventType.CASE_CLOSED, {"case_id": case_id})


def replacements_of(state: OrderState, case_id: str) -> list[Package]:
    return [p for p in state.packages if p.replacement_for == case_id]


def _exchange_claim(state: OrderState, case_id: str) -> CaseClaim:
    claim = claim_of(state, case_id)
    if claim.type is not CaseType.EXCHANGE:
        raise invalid_transition(f"case {case_id} is not an exchange")
    if not claim.open:
        raise invalid_transition(f"case {case_id} is already settled")
    return claim


def restock_claim(state: OrderState, case_id: str, now: datetime, actor: Actor) -> Change | None:
    """An exchange's goods came back: its units go back on hand (once), the claim stays open
    for the replacement. None: they already are."""
    claim = _exchange_claim(state, case_id)
    if claim.restocked:
        return None
    s = copied(state)
    claim_of(s, case_id).restocked = True
    units = returned_units(state, claim.takes)
    change = applied(s, now, actor, EventType.CASE_GOODS_RETURNED, {"case_id": case_id})
    return replace(change, returns=units, return_ref=case_id)


def reship(
    state: OrderState,
    case_id: str,
    carrier: str,
    tracking_no: str,
    now: datetime,
    actor: Actor,
) -> Change:
    """An exchange's replacement: the claim's units again, taken off hand at the locations
    they first shipped from, one package per location, shipped now (`replacement_for`). It
    carries no money; the buyer's receipt ends the case, not the order's timer."""
    claim = _exchange_claim(state, case_id)
    if replacements_of(state, case_id):
        raise invalid_transition(f"case {case_id}'s replacement has shipped")
    s = copied(state)
    by_location: dict[str, dict[str, int]] = {}
    for unit in returned_units(state, claim.takes):
        skus = by_location.setdefault(unit.location, {})
        skus[unit.sku] = skus.get(unit.sku, 0) + unit.quantity
    made: list[str] = []
    for n, (location, skus) in enumerate(sorted(by_location.items()), start=1):
        package_id = f"{case_id}-R{n}"
        s.packages.append(
            Package(
                id=package_id,
                location=location,
                product_type=ProductType.SELF,
                status=PackageStatus.SHIPPED,
                lines=[PackageLine(sku=k, quantity=q) for k, q in sorted(skus.items())],
                goods_cents=0,
                carrier=carrier,
                tracking_no=tracking_no if n == 1 else f"{tracking_no}-{n}",
                shipped_at=now,
                replacement_for=case_id,
            )
        )
        made.append(package_id)
    takes = [
        Allocation(sku=sku, location=location, quantity=q)
        for location, skus in sorted(by_location.items())
        for sku, q in sorted(skus.items())
    ]
    data = {"case_id": case_id, "package_ids": made, "carrier": carrier, "tracking_no": tracking_no}
    change = applied(s, now, actor, EventType.REPLACEMENT_SHIPPED, data)
    return replace(change, takes=takes, take_ref=f"{case_id}-reship")


# ---- the case's own machine -----------------------------------------------------------------


def _set_deadline(case: AfterSalesCase, now: datetime) -> None:
    t = case.timings
    seconds, what = {
        CaseStatus.WAIT_SELLER_AGREE: (t.respond_seconds, "agreed automatically"),
        CaseStatus.WAIT_BUYER_CONFIRM: (t.respond_seconds, "proposal declined automatically"),
        CaseStatus.WAIT_BUYER_RETURN: (t.return_ship_seconds, "closed: nothing was sent back"),
        CaseStatus.WAIT_SELLER_RECEIVE: (t.return_receive_seconds, "refunded automatically"),
        CaseStatus.SELLER_REJECTED: (t.escalate_seconds, "closed: not escalated"),
        CaseStatus.WAIT_SELLER_RESHIP: (t.reship_seconds, "converted to a refund"),
        CaseStatus.WAIT_BUYER_RECEIVE: (t.receive_seconds, "received automatically"),
    }.get(case.status, (None, ""))
    if seconds is None or case.settlement is not None:
        case.deadline, case.deadline_action = None, ""
    else:
        case.deadline, case.deadline_action = now + timedelta(seconds=seconds), what


def _step(
    case: AfterSalesCase,
    status: CaseStatus,
    now: datetime,
    actor: Actor,
    action: str,
    note: str = "",
    settlement: Settlement | None = None,
) -> AfterSalesCase:
    c = case.model_copy(deep=True)
    c.status, c.settlement = status, settlement
    c.version += 1
    c.updated_at = now
    c.timeline.append(TimelineEntry(at=now, actor=actor, action=action, status=status, note=note))
    _set_deadline(c, now)
    return c


def _agreed(
    case: AfterSalesCase, amount: int, now: datetime, actor: Actor, action: str, note: str = ""
) -> AfterSalesCase:
    """Agreed for `amount`: a refund-only case is paid now; a return waits for the goods."""
    if case.type is CaseType.REFUND_ONLY:
        c = _step(
            case,
            case.status,
            now,
            actor,
            action,
            note,
            Settlement(refund=True, amount_cents=amount),
        )
    else:
        c = _step(case, CaseStatus.WAIT_BUYER_RETURN, now, actor, action, note)
    c.agreed_cents = amount
    return c


def _ended(
    case: AfterSalesCase, status: CaseStatus, now: datetime, actor: Actor, action: str, note: str
) -> AfterSalesCase:
    """Closed or withdrawn: the order frees the units; nothing is paid."""
    return _step(case, status, now, actor, action, note, Settlement(refund=False))


def fits_type(case: AfterSalesCase, action: CaseAction) -> bool:
    """An exchange takes no proposal of an amount (no money moves in it)."""
    return not (action is CaseAction.PROPOSE and case.type is CaseType.EXCHANGE)


def check_command(case: AfterSalesCase, cmd: CaseCommand) -> None:
    """Who, when, against which version, with what: refuses before anything is written."""
    role, needed = cmd.actor.kind, ROLE[cmd.action]
    if not cmd.actor.may_see(case.buyer_id, case.shop_id):
        raise DomainError(ErrorCode.NOT_FOUND, f"no case {case.id}")
    if needed == "merchant" and role not in ("merchant", "admin"):
        raise DomainError(ErrorCode.FORBIDDEN, f"{cmd.action} is the merchant's")
    if needed != "merchant" and role != needed:
        raise DomainError(ErrorCode.FORBIDDEN, f"{cmd.action} is the {needed}'s")
    if cmd.version != case.version:
        raise DomainError(
            ErrorCode.VERSION_CONFLICT,
            f"case {case.id} is at version {case.version}, not {cmd.version}: reload it",
            {"version": case.version},
        )
    if case.settlement is not None:
        raise invalid_transition(f"case {case.id} is being settled")
    if case.status not in ALLOWED[cmd.action]:
        raise invalid_transition(f"case is {case.status}; {cmd.action} is not possible now")
    if not fits_type(case, cmd.action):
        raise invalid_transition("an exchange moves no money: agree or reject it")
    if cmd.action is CaseAction.PROPOSE and (
        cmd.amount_cents is None or cmd.amount_cents >= case.claim_cents
    ):
        raise DomainError(
            ErrorCode.VALIDATION,
            f"a proposal is an amount_cents from 1 to {case.claim_cents - 1}",
        )
    if cmd.action is CaseAction.REJECT and not cmd.reason.strip():
        raise DomainError(ErrorCode.VALIDATION, "a rejection needs a reason")
    if cmd.action is CaseAction.RETURN_SHIPMENT and not (cmd.carrier and cmd.tracking_no):
        raise DomainError(ErrorCode.VALIDATION, "a return needs a carrier and a tracking number")
    if cmd.action is CaseAction.RESHIP and not (cmd.carrier and cmd.tracking_no):
        raise DomainError(
            ErrorCode.VALIDATION, "a replacement ships with a carrier and a tracking number"
        )
    if cmd.action is CaseAction.RULE and cmd.decision not in ("BUYER", "SELLER"):
        raise DomainError(ErrorCode.VALIDATION, "decision is BUYER or SELLER")


def act(case: AfterSalesCase, cmd: CaseCommand, now: datetime) -> AfterSalesCase:
    check_command(case, cmd)
    a, who, note = cmd.action, cmd.actor, cmd.reason
    S = CaseStatus
    if a is CaseAction.AGREE:
        return _agreed(case, case.claim_cents, now, who, a.value, note)
    if a is CaseAction.REJECT:
        return _step(case, S.SELLER_REJECTED, now, who, a.value, note)
    if a is CaseAction.PROPOSE:
        c = _step(
            case, S.WAIT_BUYER_CONFIRM, now, who, a.value, note or f"{cmd.amount_cents} cents"
        )
        c.proposed_cents = cmd.amount_cents
        return c
    if a is CaseAction.ACCEPT_PROPOSAL:
        assert case.proposed_cents is not None
        return _agreed(case, case.proposed_cents, now, who, a.value, note)
    if a is CaseAction.DECLINE_PROPOSAL:
        c = _step(case, S.WAIT_SELLER_AGREE, now, who, a.value, note)
        c.proposed_cents = None
        return c
    if a is CaseAction.RETURN_SHIPMENT:
        c = _step(
            case, S.WAIT_SELLER_RECEIVE, now, who, a.value, f"{cmd.carrier} {cmd.tracking_no}"
        )
        c.return_carrier, c.return_tracking_no = cmd.carrier, cmd.tracking_no
        return c
    if a is CaseAction.CONFIRM_RETURN and case.type is CaseType.EXCHANGE:
        back = Settlement(refund=False, restock=True, keep_open=True)  # the units on hand
        return _step(case, S.WAIT_SELLER_RESHIP, now, who, a.value, note, back)
    if a is CaseAction.CONFIRM_RETURN:
        settlement = Settlement(refund=True, amount_cents=_amount(case), restock=True)
        return _step(case, case.status, now, who, a.value, note, settlement)
    if a is CaseAction.CONVERT_TO_REFUND:
        settlement = Settlement(refund=True, amount_cents=_amount(case))
        return _step(case, case.status, now, who, a.value, note or "out of stock", settlement)
    if a is CaseAction.CONFIRM_RECEIPT:
        return _step(case, S.EXCHANGED, now, who, a.value, note, Settlement(refund=False))
    if a is CaseAction.RESHIP:
        raise invalid_transition("a replacement ships through its order (reshipped)")
    if a is CaseAction.ESCALATE:
        return _step(case, S.PLATFORM_REVIEW, now, who, a.value, note)
    if a is CaseAction.WITHDRAW:
        return _ended(case, S.CANCELLED, now, who, a.value, note)
    # RULE
    if cmd.decision == "BUYER":
        return _agreed(case, case.claim_cents, now, who, "rule: buyer", note)
    return _ended(case, S.CLOSED, now, who, "rule: seller", note)


def _amount(case: AfterSalesCase) -> int:
    """What a return (or an exchange turned refund) pays back: the agreed amount, else all."""
    return case.agreed_cents if case.agreed_cents is not None else case.claim_cents


def reshipped(
    case: AfterSalesCase, cmd: CaseCommand, package_ids: list[str], now: datetime
) -> AfterSalesCase:
    """The order shipped the replacement: the buyer has until the deadline to confirm it."""
    check_command(case, cmd)
    if cmd.action is not CaseAction.RESHIP:
        raise invalid_transition(f"{cmd.action} is not a reship")
    c = _step(
        case,
        CaseStatus.WAIT_BUYER_RECEIVE,
        now,
        cmd.actor,
        cmd.action.value,
        f"{cmd.carrier} {cmd.tracking_no}",
    )
    c.replacements = package_ids
    return c


def replacement_delivered(
    case: AfterSalesCase, now: datetime, actor: Actor
) -> AfterSalesCase | None:
    """The carrier delivered the replacement: received, as if the buyer had said so."""
    if case.status is not CaseStatus.WAIT_BUYER_RECEIVE or case.settlement is not None:
        return None
    return _step(case, CaseStatus.EXCHANGED, now, actor, "delivered", "", Settlement(refund=False))


def on_deadline(case: AfterSalesCase, now: datetime) -> AfterSalesCase | None:
    """What the case's clock does when its deadline passes (SPEC §6.2's table)."""
    if case.deadline is None or now < case.deadline or case.settlement is not None:
        return None
    S = CaseStatus
    if case.status is S.WAIT_SELLER_AGREE:
        return _agreed(case, case.claim_cents, now, SYSTEM, "deadline: agreed")
    if case.status is S.WAIT_BUYER_CONFIRM:
        c = _step(case, S.WAIT_SELLER_AGREE, now, SYSTEM, "deadline: proposal declined")
        c.proposed_cents = None
        return c
    if case.status is S.WAIT_BUYER_RETURN:
        return _ended(case, S.CLOSED, now, SYSTEM, "deadline: closed", "nothing was sent back")
    if case.status is S.WAIT_SELLER_RECEIVE:
        settlement = Settlement(refund=True, amount_cents=_amount(case))
        return _step(case, case.status, now, SYSTEM, "deadline: refunded", "", settlement)
    if case.status is S.WAIT_SELLER_RESHIP:
        settlement = Settlement(refund=True, amount_cents=_amount(case))
        note = "no replacement was shipped"
        return _step(case, case.status, now, SYSTEM, "deadline: refunded", note, settlement)
    if case.status is S.WAIT_BUYER_RECEIVE:
        received = Settlement(refund=False)
        return _step(case, S.EXCHANGED, now, SYSTEM, "deadline: received", "", received)
    if case.status is S.SELLER_REJECTED:
        return _ended(case, S.CLOSED, now, SYSTEM, "deadline: closed", "not escalated")
    return None


def settled(case: AfterSalesCase, refund: Refund | None, now: datetime) -> AfterSalesCase:
    """The order moved the money (or freed the units): the case reaches its final status."""
    assert case.settlement is not None
    if case.settlement.keep_open:  # an exchange's goods are back on hand: on to the reship
        return _step(case, case.status, now, SYSTEM, "goods back on hand")
    if case.settlement.refund:
        status = CaseStatus.REFUNDED
        note = f"{refund.amount_cents} cents, {refund.status}" if refund else "nothing to refund"
    else:
        status = case.status
        note = ""
    c = _step(case, status, now, SYSTEM, "settled", note)
    c.closed_at = now
    if refund is not None:
        c.refund_id, c.refund_status = refund.id, refund.status
    return c


def is_final(case: AfterSalesCase) -> bool:
    return case.status in FINAL and case.settlement is None
