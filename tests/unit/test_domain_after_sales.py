"""The after-sales case machine as pure functions (SPEC §6.2): who may act in which status,
the deadline of each status and what it does, versions, and the order's side (claims held,
refunded or freed)."""

from datetime import datetime, timedelta
from typing import Any

import pytest

from domain import after_sales as cases
from domain import order as rules
from domain.after_sales import (
    ALLOWED,
    AfterSalesCase,
    CaseAction,
    CaseCommand,
    CaseStatus,
)
from domain.errors import DomainError, ErrorCode
from domain.models import (
    SYSTEM,
    Actor,
    Allocation,
    CaseType,
    CloseReason,
    LineRequest,
    OrderState,
    OrderTimings,
)
from tests.unit.test_domain_order import BUYER, MERCHANT, T0, line, paid, placed, shipped

OPENED = T0 + timedelta(hours=5)
ADMIN = Actor(kind="admin", id="ops-1")
WHO = {"buyer": BUYER, "merchant": MERCHANT, "admin": ADMIN}


def order(*lines: tuple[str, int]) -> OrderState:
    """A shipped order: 2 books (3000 each) and a pen (500) by default, freight 800."""
    lines = lines or (("BOOK-1", 2), ("PEN-1", 1))
    return shipped(paid(placed(*(line(s, q) for s, q in lines))))


def opened(
    state: OrderState | None = None,
    type_: CaseType = CaseType.RETURN_AND_REFUND,
    *lines: tuple[str, int],
    case_id: str = "C1",
) -> tuple[OrderState, AfterSalesCase]:
    change, case = cases.new_case(
        state or order(),
        case_id=case_id,
        type_=type_,
        reason="broken",
        description="cracked",
        lines=[LineRequest(sku=s, quantity=q) for s, q in (lines or (("BOOK-1", 1),))],
        images=["a" * 64],
        service_phone="400-1",
        now=OPENED,
        actor=BUYER,
    )
    return change.state, case


def cmd(case: AfterSalesCase, action: CaseAction, who: str | None = None, **kw: Any) -> CaseCommand:
    role = who or cases.ROLE[action]
    return CaseCommand(action=action, version=case.version, actor=WHO[role], **kw)


def do(
    case: AfterSalesCase, action: CaseAction, at: datetime | None = None, **kw: Any
) -> AfterSalesCase:
    return cases.act(case, cmd(case, action, **kw), at or OPENED + timedelta(hours=1))


# ---- opening ---------------------------------------------------------------------------------


def test_a_case_holds_its_units_on_the_order_and_starts_waiting_for_the_seller() -> None:
    s, case = opened()
    assert (case.status, case.claim_cents, case.service_phone) == (
        CaseStatus.WAIT_SELLER_AGREE,
        3_000,
        "400-1",
    )
    assert case.deadline == OPENED + timedelta(hours=48)
    assert case.deadline_action == "agreed automatically"
    assert [(e.action, e.actor) for e in case.timeline] == [("open", BUYER)]
    assert [(c.id, c.open) for c in s.cases] == [("C1", True)]
    assert "REFUNDING" in s.sub_statuses
    assert rules.held_open(s)


def test_one_open_case_per_line() -> None:
    s, _ = opened()
    with pytest.raises(DomainError, match="a case is already open on BOOK-1"):
        cases.check_can_open(s, [LineRequest(sku="BOOK-1", quantity=1)], OPENED)
    cases.check_can_open(s, [LineRequest(sku="PEN-1", quantity=1)], OPENED)


def test_more_than_is_left_on_a_line_is_refused() -> None:
    with pytest.raises(DomainError, match="only 2 BOOK-1 left"):
        cases.check_can_open(order(), [LineRequest(sku="BOOK-1", quantity=3)], OPENED)


def test_a_case_needs_a_shipped_or_completed_order_within_the_window() -> None:
    with pytest.raises(DomainError, match=r"PENDING_SHIPMENT.*ask for a refund"):
        cases.check_can_open(paid(), [LineRequest(sku="BOOK-1", quantity=1)], OPENED)
    with pytest.raises(DomainError, match="PENDING_PAYMENT"):
        cases.check_can_open(placed(), [LineRequest(sku="BOOK-1", quantity=1)], OPENED)
    s = shipped(paid(placed(line("BOOK-1"), timings=OrderTimings(after_sales_window_seconds=60))))
    s = rules.confirm_receipt(s, None, OPENED, BUYER, "buyer").state
    cases.check_can_open(s, [LineRequest(sku="BOOK-1", quantity=1)], OPENED + timedelta(seconds=59))
    with pytest.raises(DomainError, match="after-sales window ended"):
        cases.check_can_open(
            s, [LineRequest(sku="BOOK-1", quantity=1)], OPENED + timedelta(seconds=60)
        )


# ---- who may do what, when -----------------------------------------------------------------


def in_status(status: CaseStatus) -> AfterSalesCase:
    _, case = opened()
    return case.model_copy(update={"status": status, "proposed_cents": 100})


@pytest.mark.parametrize("action", list(CaseAction))
@pytest.mark.parametrize("status", [s for s in CaseStatus])
def test_each_action_is_allowed_only_in_its_statuses(
    action: CaseAction, status: CaseStatus
) -> None:
    case = in_status(status)
    needs: dict[CaseAction, dict[str, Any]] = {
        CaseAction.REJECT: {"reason": "no"},
        CaseAction.PROPOSE: {"amount_cents": 1_000},
        CaseAction.RETURN_SHIPMENT: {"carrier": "SF", "tracking_no": "R1"},
        CaseAction.RESHIP: {"carrier": "SF", "tracking_no": "R2"},
        CaseAction.RULE: {"decision": "BUYER"},
    }
    kw = needs.get(action, {})
    if status in ALLOWED[action]:
        cases.check_command(case, cmd(case, action, **kw))
    else:
        with pytest.raises(DomainError, match="not possible now") as err:
            cases.check_command(case, cmd(case, action, **kw))
        assert err.value.code is ErrorCode.INVALID_TRANSITION


def test_roles_another_buyer_and_stale_versions_are_refused() -> None:
    _, case = opened()
    other = Actor(kind="buyer", id="someone-else")
    with pytest.raises(DomainError) as err:
        cases.check_command(case, CaseCommand(action=CaseAction.WITHDRAW, version=1, actor=other))
    assert err.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(DomainError) as err:
        cases.check_command(case, cmd(case, CaseAction.AGREE, "buyer"))
    assert err.value.code is ErrorCode.FORBIDDEN
    with pytest.raises(DomainError) as err:
        cases.check_command(case, cmd(case, CaseAction.RULE, "merchant", decision="BUYER"))
    assert err.value.code is ErrorCode.FORBIDDEN
    cases.check_command(case, cmd(case, CaseAction.AGREE, "admin"))  # an admin may act for a shop
    stale = CaseCommand(action=CaseAction.AGREE, version=case.version + 1, actor=MERCHANT)
    with pytest.raises(DomainError) as err:
        cases.check_command(case, stale)
    assert (err.value.code, err.value.details) == (ErrorCode.VERSION_CONFLICT, {"version": 1})


def test_what_an_action_must_carry() -> None:
    _, case = opened()
    checks: list[tuple[CaseAction, dict[str, Any], str]] = [
        (CaseAction.REJECT, {}, "needs a reason"),
        (CaseAction.PROPOSE, {"amount_cents": 3_000}, "from 1 to 2999"),
        (CaseAction.PROPOSE, {}, "from 1 to 2999"),
    ]
    for action, kw, message in checks:
        with pytest.raises(DomainError, match=message) as err:
            cases.check_command(case, cmd(case, action, **kw))
        assert err.value.code is ErrorCode.VALIDATION
    back = do(case, CaseAction.AGREE)
    with pytest.raises(DomainError, match="carrier and a tracking number"):
        cases.check_command(back, cmd(back, CaseAction.RETURN_SHIPMENT, carrier="SF"))


# ---- the flows -------------------------------------------------------------------------------


def test_return_and_refund_walks_agree_ship_back_confirm_settle() -> None:
    _, case = opened()
    case = do(case, CaseAction.AGREE)
    assert (case.status, case.agreed_cents, case.settlement) == (
        CaseStatus.WAIT_BUYER_RETURN,
        3_000,
        None,
    )
    assert case.deadline_action == "closed: nothing was sent back"
    case = do(case, CaseAction.RETURN_SHIPMENT, carrier="SF", tracking_no="R1")
    assert (case.status, case.return_tracking_no) == (CaseStatus.WAIT_SELLER_RECEIVE, "R1")
    case = do(case, CaseAction.CONFIRM_RETURN)
    assert case.settlement == cases.Settlement(refund=True, amount_cents=3_000, restock=True)
    assert case.deadline is None
    with pytest.raises(DomainError, match="being settled"):
        cases.check_command(case, cmd(case, CaseAction.WITHDRAW))
    assert not cases.is_final(case)
    assert case.version == 4 and len(case.timeline) == 4


def test_refund_only_agreed_on_a_proposal_settles_at_the_proposed_amount() -> None:
    _, case = opened(None, CaseType.REFUND_ONLY)
    case = do(case, CaseAction.PROPOSE, amount_cents=1_200)
    assert (case.status, case.proposed_cents) == (CaseStatus.WAIT_BUYER_CONFIRM, 1_200)
    declined = do(case, CaseAction.DECLINE_PROPOSAL)
    assert (declined.status, declined.proposed_cents) == (CaseStatus.WAIT_SELLER_AGREE, None)
    accepted = do(case, CaseAction.ACCEPT_PROPOSAL)
    assert accepted.settlement == cases.Settlement(refund=True, amount_cents=1_200)


def test_a_rejection_is_escalated_and_ruled() -> None:
    _, case = opened(None, CaseType.REFUND_ONLY)
    case = do(case, CaseAction.REJECT, reason="no damage")
    assert case.status is CaseStatus.SELLER_REJECTED and case.deadline is not None
    case = do(case, CaseAction.ESCALATE)
    assert (case.status, case.deadline) == (CaseStatus.PLATFORM_REVIEW, None)
    buyer_wins = do(case, CaseAction.RULE, decision="BUYER", reason="photos")
    assert buyer_wins.settlement == cases.Settlement(refund=True, amount_cents=3_000)
    seller_wins = do(case, CaseAction.RULE, decision="SELLER")
    assert (seller_wins.status, seller_wins.settlement) == (
        CaseStatus.CLOSED,
        cases.Settlement(refund=False),
    )


def test_withdrawing_frees_the_units_and_ends_cancelled() -> None:
    s, case = opened()
    case = do(case, CaseAction.WITHDRAW)
    assert (case.status, case.settlement) == (CaseStatus.CANCELLED, cases.Settlement(refund=False))
    s = cases.settle_claim(s, "C1", None, None, OPENED, SYSTEM).state
    assert not rules.has_open_refunds(s)
    cases.check_can_open(s, [LineRequest(sku="BOOK-1", quantity=2)], OPENED)  # free again
    done = cases.settled(case, None, OPENED)
    assert cases.is_final(done) and done.closed_at == OPENED


# ---- deadlines (the table of §6.2) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "wait", "status", "settlement"),
    [
        (
            [],
            timedelta(hours=48),
            CaseStatus.WAIT_SELLER_AGREE,
            cases.Settlement(refund=True, amount_cents=3_000),
        ),
        ([CaseAction.PROPOSE], timedelta(hours=48), CaseStatus.WAIT_SELLER_AGREE, None),
        ([CaseAction.AGREE], timedelta(days=7), CaseStatus.CLOSED, cases.Settlement(refund=False)),
        (
            [CaseAction.AGREE, CaseAction.RETURN_SHIPMENT],
            timedelta(days=10),
            CaseStatus.WAIT_SELLER_RECEIVE,
            cases.Settlement(refund=True, amount_cents=3_000),
        ),
        ([CaseAction.REJECT], timedelta(days=7), CaseStatus.CLOSED, cases.Settlement(refund=False)),
    ],
)
def test_each_deadline_does_what_the_table_says(
    steps: list[CaseAction],
    wait: timedelta,
    status: CaseStatus,
    settlement: cases.Settlement | None,
) -> None:
    _, case = opened(
        None, CaseType.RETURN_AND_REFUND if CaseAction.AGREE in steps else CaseType.REFUND_ONLY
    )
    kw: dict[CaseAction, dict[str, Any]] = {
        CaseAction.PROPOSE: {"amount_cents": 100},
        CaseAction.REJECT: {"reason": "no"},
        CaseAction.RETURN_SHIPMENT: {"carrier": "SF", "tracking_no": "R"},
    }
    at = OPENED
    for step in steps:
        case = cases.act(case, cmd(case, step, **kw.get(step, {})), at)
    assert case.deadline == at + wait
    assert cases.on_deadline(case, at + wait - timedelta(seconds=1)) is None
    after = cases.on_deadline(case, at + wait)
    assert after is not None
    assert (after.status, after.settlement) == (status, settlement)
    assert after.timeline[-1].actor == SYSTEM and after.timeline[-1].action.startswith("deadline")


# ---- the order's side of settling ------------------------------------------------------------


def test_a_settled_refund_counts_its_units_and_caps_at_the_agreed_amount() -> None:
    s, _ = opened(None, CaseType.REFUND_ONLY, ("BOOK-1", 2))
    refund, money = cases.claim_refund(s, "C1", 2_500, OPENED)
    assert (refund.amount_cents, refund.goods_cents, refund.freight_cents) == (2_500, 2_500, 0)
    s = cases.settle_claim(s, "C1", refund, money, OPENED, SYSTEM).state
    assert s.refunded_cents == 2_500
    assert {ln.sku: ln.refunded_quantity for ln in s.lines} == {"BOOK-1": 2, "PEN-1": 0}
    assert not rules.held_open(s)
    with pytest.raises(DomainError, match="already settled"):
        cases.settle_claim(s, "C1", refund, money, OPENED, SYSTEM)


def test_refunding_every_line_after_shipment_closes_the_order_fully_refunded() -> None:
    s, _ = opened(order(("BOOK-1", 1)), CaseType.RETURN_AND_REFUND, ("BOOK-1", 1))
    refund, money = cases.claim_refund(s, "C1", 10**9, OPENED)
    assert (refund.goods_cents, refund.freight_cents) == (3_000, 800)  # the last line: freight
    kept = cases.settle_claim(s, "C1", refund, money, OPENED, SYSTEM)
    assert kept.returns == []  # nothing came back: nothing goes on hand
    settled = cases.settle_claim(s, "C1", refund, money, OPENED, SYSTEM, restock=True)
    [where] = [p.location for p in s.packages]  # one package
    assert (settled.returns, settled.return_ref) == (
        [Allocation(sku="BOOK-1", location=where, quantity=1)],
        "C1",
    )  # the return arrived: back on hand, once for this case
    s = settled.state
    assert (s.close_reason, s.refunded_cents) == (CloseReason.FULLY_REFUNDED, s.paid_cents)


# ---- exchange (换货, §6.4) --------------------------------------------------------------------


def _returned_exchange() -> tuple[OrderState, AfterSalesCase]:
    s, case = opened(None, CaseType.EXCHANGE, ("BOOK-1", 2))
    case = do(case, CaseAction.AGREE)
    case = do(case, CaseAction.RETURN_SHIPMENT, carrier="SF", tracking_no="R1")
    return s, do(case, CaseAction.CONFIRM_RETURN)


def test_an_exchange_goes_back_on_hand_then_waits_for_the_replacement() -> None:
    s, case = _returned_exchange()
    assert case.status is CaseStatus.WAIT_SELLER_RESHIP
    assert case.settlement == cases.Settlement(refund=False, restock=True, keep_open=True)
    assert not cases.is_final(case) and case.deadline is None  # the order restocks first
    back = cases.restock_claim(s, "C1", OPENED, SYSTEM)
    assert back is not None
    [where] = {p.location for p in s.packages if p.lines[0].sku == "BOOK-1"}
    assert (back.returns, back.return_ref) == (
        [Allocation(sku="BOOK-1", location=where, quantity=2)],
        "C1",
    )
    s = back.state
    assert cases.claim_of(s, "C1").open and cases.restock_claim(s, "C1", OPENED, SYSTEM) is None
    assert (s.refunded_cents, s.status) == (0, back.state.status)  # no money moved
    case = cases.settled(case, None, OPENED + timedelta(hours=2))
    assert (case.status, case.settlement, case.closed_at) == (
        CaseStatus.WAIT_SELLER_RESHIP,
        None,
        None,
    )
    assert case.deadline == OPENED + timedelta(hours=50)  # 48 h to reship
    assert case.deadline_action == "converted to a refund"


def test_a_replacement_ships_from_stock_as_a_package_of_its_own() -> None:
    s, _ = _returned_exchange()
    s = cases.restock_claim(s, "C1", OPENED, SYSTEM).state  # type: ignore[union-attr]
    before = (s.status, s.sub_statuses, s.paid_cents, [p.id for p in rules.live_packages(s)])
    change = cases.reship(s, "C1", "ZTO", "ZT9", OPENED, MERCHANT)
    [package] = cases.replacements_of(change.state, "C1")
    assert (package.id, package.replacement_for, package.status.value) == ("C1-R1", "C1", "SHIPPED")
    assert (package.carrier, package.tracking_no, package.goods_cents) == ("ZTO", "ZT9", 0)
    assert [(x.sku, x.quantity) for x in package.lines] == [("BOOK-1", 2)]
    assert (change.takes, change.take_ref) == (
        [Allocation(sku="BOOK-1", location=package.location, quantity=2)],
        "C1-reship",
    )
    after = change.state
    # the order's own packages, money and status are as they were
    assert (after.status, after.sub_statuses, after.paid_cents) == before[:3]
    assert [p.id for p in rules.live_packages(after)] == before[3]
    assert rules.next_deadline(after) == rules.next_deadline(s)  # no timer of its own
    with pytest.raises(DomainError, match="replacement has shipped"):
        cases.reship(after, "C1", "ZTO", "ZT9", OPENED, MERCHANT)
    with pytest.raises(DomainError, match="confirm it there"):
        rules.confirm_receipt(after, [package.id], OPENED, BUYER, "buyer")
    # its receipt ends the exchange: the claim is closed, the package received
    delivered = rules.carrier_delivered(after, package.id, OPENED, Actor(kind="carrier"))
    assert delivered is not None
    assert cases.replacements_of(delivered.state, "C1")[0].status.value == "DELIVERED"
    done = cases.settle_claim(delivered.state, "C1", None, None, OPENED, SYSTEM)
    assert done.event.type.value == "CASE_EXCHANGED"
    assert cases.replacements_of(done.state, "C1")[0].status.value == "RECEIVED"
    assert not rules.held_open(done.state) and done.state.refunded_cents == 0


def test_the_exchange_ends_exchanged_by_the_buyer_the_carrier_or_the_clock() -> None:
    _, case = _returned_exchange()
    case = cases.settled(case, None, OPENED)
    shipped_at = OPENED + timedelta(hours=3)
    reship = cmd(case, CaseAction.RESHIP, carrier="SF", tracking_no="S1")
    case = cases.reshipped(case, reship, ["C1-R1"], shipped_at)
    assert (case.status, case.replacements) == (CaseStatus.WAIT_BUYER_RECEIVE, ["C1-R1"])
    assert case.deadline == shipped_at + timedelta(days=10)  # the order's auto-confirm period
    for ended in (
        do(case, CaseAction.CONFIRM_RECEIPT),
        cases.replacement_delivered(case, shipped_at, Actor(kind="carrier")),
        cases.on_deadline(case, shipped_at + timedelta(days=10)),
    ):
        assert ended is not None
        assert (ended.status, ended.settlement) == (
            CaseStatus.EXCHANGED,
            cases.Settlement(refund=False),
        )
        assert cases.is_final(cases.settled(ended, None, shipped_at))
    assert cases.on_deadline(case, shipped_at + timedelta(days=10, seconds=-1)) is None
    assert cases.replacement_delivered(do(case, CaseAction.CONFIRM_RECEIPT), OPENED, SYSTEM) is None


def test_an_exchange_not_reshipped_is_refunded_by_the_merchant_or_the_clock() -> None:
    _, case = _returned_exchange()
    case = cases.settled(case, None, OPENED)
    refund = cases.Settlement(refund=True, amount_cents=6_000)
    assert do(case, CaseAction.CONVERT_TO_REFUND).settlement == refund
    late = cases.on_deadline(case, OPENED + timedelta(hours=48))
    assert late is not None and late.settlement == refund
    assert late.timeline[-1].note == "no replacement was shipped"


def test_an_exchange_moves_no_money_and_is_for_own_stock_only() -> None:
    _, case = opened(None, CaseType.EXCHANGE)
    with pytest.raises(DomainError, match="moves no money"):
        cases.check_command(case, cmd(case, CaseAction.PROPOSE, amount_cents=100))
    waiting = cases.settled(_returned_exchange()[1], None, OPENED)
    with pytest.raises(DomainError, match="carrier and a tracking number"):
        cases.check_command(waiting, cmd(waiting, CaseAction.RESHIP))
    phone = order(("PHONE-1", 1))  # drop-shipped: no stock of the shop's to replace it from
    with pytest.raises(DomainError, match="not PHONE-1"):
        cases.check_can_open(
            phone, [LineRequest(sku="PHONE-1", quantity=1)], OPENED, CaseType.EXCHANGE
        )
    cases.check_can_open(phone, [LineRequest(sku="PHONE-1", quantity=1)], OPENED)  # a refund
    with pytest.raises(DomainError, match="not an exchange"):
        cases.reship(opened()[0], "C1", "SF", "S1", OPENED, MERCHANT)
