"""Refunds of chosen lines as pure functions (SPEC §6.1, §6.3): what is left to refund, which
packages the units leave, the money (freight with the last line, pro-rata under SPLIT, caps),
and the before-shipment request. The sum refunded never exceeds the sum paid, whatever the
sequence (property-tested)."""

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import after_sales as cases
from domain import fulfilment, refunds
from domain import order as rules
from domain.errors import DomainError, ErrorCode
from domain.models import (
    SYSTEM,
    Allocation,
    CaseType,
    CloseReason,
    FreightPolicy,
    LineRequest,
    OrderState,
    OrderStatus,
    PackageStatus,
    RefundRequestStatus,
    SubStatus,
)
from domain.order import DeadlineKind
from tests.unit.test_domain_order import (
    BUYER,
    MERCHANT,
    T0,
    line,
    package_id,
    paid,
    pkg,
    placed,
    shipped,
)

LATER = T0 + timedelta(hours=3)


def want(*lines: tuple[str, int]) -> list[LineRequest]:
    return [LineRequest(sku=s, quantity=q) for s, q in lines]


def books_and_pens(policy: FreightPolicy = FreightPolicy.ONE_PACKAGE) -> OrderState:
    """3 books (3000 each) and 2 pens (500 each) in one package at WH-A, freight 800."""
    return paid(placed(line("BOOK-1", 3), line("PEN-1", 2), policy=policy))


def requested(state: OrderState, *lines: tuple[str, int], rid: str = "R1") -> OrderState:
    return refunds.request_refund(state, rid, want(*lines), "changed mind", LATER, BUYER).state


def agreed(state: OrderState, rid: str = "R1") -> OrderState:
    refund, money = refunds.refund_of_request(state, rid, LATER)
    return refunds.complete_request(state, rid, refund, money, LATER, MERCHANT).state


# ---- requests -----------------------------------------------------------------------------


def test_a_request_reserves_its_units_and_shows_refunding() -> None:
    s = requested(books_and_pens(), ("BOOK-1", 2))
    [r] = s.refund_requests
    assert (r.status, r.goods_cents, r.freight_cents, r.amount_cents) == (
        RefundRequestStatus.REQUESTED,
        6_000,
        0,
        6_000,
    )
    assert r.respond_by == LATER + timedelta(hours=48)
    assert s.sub_statuses == [SubStatus.REFUNDING]
    assert rules.next_deadline(s) == rules.Deadline(DeadlineKind.REFUND_RESPONSE, r.respond_by)


def test_requested_and_refunded_units_count_together_against_a_line() -> None:
    s = requested(books_and_pens(), ("BOOK-1", 2))
    with pytest.raises(DomainError, match="only 1 BOOK-1 left") as err:
        refunds.check_can_request(s, want(("BOOK-1", 2)))
    assert err.value.details == {"left": {"BOOK-1": 1}}
    s = agreed(s)
    with pytest.raises(DomainError, match="only 1 BOOK-1 left"):
        refunds.check_can_request(s, want(("BOOK-1", 2)))
    refunds.check_can_request(s, want(("BOOK-1", 1)))  # exactly what is left is fine


def test_the_same_sku_twice_in_one_request_counts_once_together() -> None:
    with pytest.raises(DomainError, match="only 3 BOOK-1 left"):
        refunds.check_can_request(books_and_pens(), want(("BOOK-1", 2), ("BOOK-1", 2)))


def test_an_unknown_sku_is_a_validation_error() -> None:
    with pytest.raises(DomainError) as err:
        refunds.check_can_request(books_and_pens(), want(("TV-1", 1)))
    assert err.value.code is ErrorCode.VALIDATION
    assert "no line TV-1" in err.value.message


def test_lines_of_a_shipped_package_are_refused_before_shipment() -> None:
    s = paid()  # phone at VENDOR-X, book at WH-A
    s = shipped(s, "PHONE-1")
    assert s.status is OrderStatus.PENDING_SHIPMENT
    with pytest.raises(DomainError, match="PHONE-1 already shipped: open an after-sales case"):
        refunds.check_can_request(s, want(("PHONE-1", 1)))
    refunds.check_can_request(s, want(("BOOK-1", 1)))


@pytest.mark.parametrize("when", ["unpaid", "shipped", "closed"])
def test_a_request_needs_a_paid_order_with_something_unshipped(when: str) -> None:
    s = {"unpaid": placed(), "shipped": shipped(paid())}.get(when)
    if s is None:
        s = rules.close(placed(), CloseReason.BUYER_CANCELLED, LATER, BUYER).state
    with pytest.raises(DomainError, match="refund before shipment needs a paid order"):
        refunds.check_can_request(s, want(("BOOK-1", 1)))


def test_a_package_with_an_open_request_does_not_ship() -> None:
    s = requested(books_and_pens(), ("PEN-1", 1))
    pid = s.packages[0].id
    with pytest.raises(DomainError, match="refund request is open on package"):
        rules.check_can_ship(s, pid, "SF", "SF1")
    s = refunds.refuse_request(s, "R1", "packed already", LATER, MERCHANT).state
    rules.check_can_ship(s, pid, "SF", "SF1")
    assert s.refund_requests[0].refuse_reason == "packed already"
    assert s.sub_statuses == []


def test_a_decided_request_cannot_be_decided_again() -> None:
    s = agreed(requested(books_and_pens(), ("PEN-1", 1)))
    with pytest.raises(DomainError, match="is REFUNDED, not REQUESTED"):
        refunds.check_can_decide(s, "R1")
    with pytest.raises(DomainError) as err:
        refunds.check_can_decide(s, "R-unknown")
    assert err.value.code is ErrorCode.NOT_FOUND


# ---- agreement: units leave, money and freight ----------------------------------------------


def test_agreed_units_leave_their_package_and_count_as_refunded() -> None:
    s = agreed(requested(books_and_pens(), ("BOOK-1", 2)))
    [p] = s.packages
    assert [(pl.sku, pl.quantity) for pl in p.lines] == [("BOOK-1", 1), ("PEN-1", 2)]
    assert p.goods_cents == 3_000 + 1_000
    assert {ln.sku: ln.refunded_quantity for ln in s.lines} == {"BOOK-1": 2, "PEN-1": 0}
    assert (s.refunded_cents, s.refunds[-1].amount_cents) == (6_000, 6_000)
    assert s.refund_requests[0].status is RefundRequestStatus.REFUNDED
    assert s.status is OrderStatus.PENDING_SHIPMENT and s.sub_statuses == []


def test_the_last_line_takes_the_freight_and_closes_the_order() -> None:
    s = agreed(requested(books_and_pens(), ("BOOK-1", 3)))
    assert s.refunds[-1].freight_cents == 0  # pens are left
    s = agreed(requested(s, ("PEN-1", 2), rid="R2"), "R2")
    last = s.refunds[-1]
    assert (last.goods_cents, last.freight_cents) == (1_000, 800)
    assert s.refunded_cents == s.paid_cents == 10_800
    assert (s.status, s.close_reason) == (OrderStatus.CLOSED, CloseReason.FULLY_REFUNDED)
    assert [p.status for p in s.packages] == [PackageStatus.CANCELLED]


def test_split_freight_goes_back_pro_rata_summing_to_the_package_share() -> None:
    s = paid(placed(line("BOOK-1", 3), line("PHONE-1"), policy=FreightPolicy.SPLIT, freight=1_000))
    book = pkg(s, package_id(s, "BOOK-1"))
    share = book.freight_cents  # 9000 of 59000 goods: about 15% of 1000
    assert 150 <= share <= 155
    s = agreed(requested(s, ("BOOK-1", 1)))
    first = s.refunds[-1].freight_cents
    assert first == share * 3_000 // 9_000
    s = agreed(requested(s, ("BOOK-1", 2), rid="R2"), "R2")
    assert first + s.refunds[-1].freight_cents == share  # the last unit takes the remainder
    assert pkg(s, book.id).status is PackageStatus.CANCELLED


def test_one_package_freight_moves_off_an_emptied_package() -> None:
    s = paid(placed(line("BOOK-1"), line("PHONE-1")))  # the phone bears all 800
    phone = package_id(s, "PHONE-1")
    assert pkg(s, phone).freight_cents == 800
    s = agreed(requested(s, ("PHONE-1", 1)))
    assert s.refunds[-1].freight_cents == 0  # the book is still live
    assert pkg(s, phone).freight_cents == 0
    assert pkg(s, package_id(s, "BOOK-1")).freight_cents == 800  # carried on


def test_a_failed_refund_still_takes_the_units_and_counts_once_retried() -> None:
    s = requested(books_and_pens(), ("PEN-1", 1))
    refund, money = refunds.refund_of_request(s, "R1", LATER)
    change = refunds.complete_request(
        s, "R1", refund.model_copy(update={"status": "FAILED"}), money, LATER, SYSTEM
    )
    units = refunds.returned_units(s, refunds.request_of(s, "R1").takes)
    assert (change.returns, change.return_ref) == (units, "R1") and units  # back on hand
    s = change.state
    assert s.refund_requests[0].status is RefundRequestStatus.FAILED
    assert s.refunded_cents == 0
    failed = refunds.check_can_retry(s, "R1")
    s = refunds.retried(s, failed.model_copy(update={"status": "SUCCEEDED"}), LATER, SYSTEM).state
    assert (s.refunded_cents, s.refund_requests[0].status) == (500, RefundRequestStatus.REFUNDED)
    with pytest.raises(DomainError, match="not FAILED"):
        refunds.check_can_retry(s, "R1")


def test_a_failed_refund_holds_a_closed_order_open_until_it_is_retried() -> None:
    s = requested(books_and_pens(), ("BOOK-1", 3), ("PEN-1", 2))
    refund, money = refunds.refund_of_request(s, "R1", LATER)
    failed = refund.model_copy(update={"status": "FAILED"})
    s = refunds.complete_request(s, "R1", failed, money, LATER, SYSTEM).state
    assert s.close_reason is CloseReason.FULLY_REFUNDED
    assert rules.held_open(s) and not rules.is_finished(s, LATER + timedelta(days=400))
    assert rules.next_deadline(s) is None  # nothing to time: it waits for an admin
    done = refund.model_copy(update={"status": "SUCCEEDED"})
    s = refunds.retried(s, done, LATER, SYSTEM).state
    assert rules.is_finished(s, LATER) and s.refunded_cents == s.paid_cents


def test_a_kepler_package_is_held_while_a_request_covers_it() -> None:
    s = paid(placed(line("TV-1"), line("BOOK-1")))
    tv = package_id(s, "TV-1")
    due_at = pkg(s, tv).purchase_at
    assert due_at is not None
    s = requested(s, ("TV-1", 1))
    assert rules.due_purchases(s, due_at + timedelta(hours=1)) == []
    assert all(d.kind is not DeadlineKind.SUPPLIER_PURCHASE for d in [rules.next_deadline(s)] if d)
    s = agreed(s)
    assert pkg(s, tv).status is PackageStatus.CANCELLED  # never bought


def test_a_bought_supplier_package_is_refunded_whole_or_not_at_all() -> None:
    s = paid(placed(line("TV-1", 2), line("BOOK-1")))
    tv = package_id(s, "TV-1")
    s = fulfilment.mark_purchased(s, tv, "JD-9", LATER, SYSTEM).state
    with pytest.raises(DomainError, match="only all of it can be refunded"):
        refunds.check_can_request(s, want(("TV-1", 1)))
    s = requested(s, ("TV-1", 2))
    assert [p.id for p in refunds.supplier_packages_to_cancel(s, "R1")] == [tv]


def test_cancelling_the_order_ends_its_open_requests() -> None:
    s = requested(books_and_pens(), ("PEN-1", 1))
    refund = fulfilment.whole_refund(s, "BUYER_CANCELLED", LATER)
    s = fulfilment.cancel_paid(s, refund, LATER, BUYER, "bye").state
    assert s.refund_requests[0].status is RefundRequestStatus.REFUSED
    assert s.refunded_cents == s.paid_cents
    assert not rules.has_open_refunds(s)


# ---- the sum refunded never exceeds the sum paid -----------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("request"), st.sampled_from(["BOOK-1", "PEN-1", "PHONE-1"]), st.integers(1, 4)
        ),
        st.tuples(st.just("agree"), st.integers(0, 5), st.just(0)),
        st.tuples(st.just("refuse"), st.integers(0, 5), st.just(0)),
        st.tuples(st.just("ship"), st.integers(0, 2), st.just(0)),
        st.tuples(
            st.just("case"), st.sampled_from(["BOOK-1", "PEN-1", "PHONE-1"]), st.integers(1, 4)
        ),
        st.tuples(st.just("settle"), st.integers(0, 5), st.integers(-1, 30_000)),
        st.tuples(st.just("fail"), st.integers(0, 5), st.just(0)),
    ),
    max_size=14,
)


def _invariants(s: OrderState) -> None:
    assert s.payment is not None
    good = [r for r in s.refunds if r.status != "FAILED"]
    assert sum(r.amount_cents for r in s.refunds) <= s.payment.amount_cents
    assert s.refunded_cents == sum(r.amount_cents for r in good)
    assert sum(r.freight_cents for r in s.refunds) <= s.freight_cents
    for order_line in s.lines:
        assert 0 <= order_line.refunded_quantity <= order_line.quantity
    reserved: dict[str, int] = {}
    for t in refunds.reserved_takes(s):
        reserved[t.sku] = reserved.get(t.sku, 0) + t.quantity
    for order_line in s.lines:
        assert order_line.refunded_quantity + reserved.get(order_line.sku, 0) <= order_line.quantity
    for p in s.packages:
        assert p.goods_cents >= 0 and p.freight_cents >= 0
        for pl in p.lines:
            assert 0 <= pl.refunded_quantity <= pl.quantity
    if s.close_reason is CloseReason.FULLY_REFUNDED:
        assert refunds.live_units(s) == 0


@settings(max_examples=300, deadline=None)
@given(
    books=st.integers(1, 4),
    pens=st.integers(0, 3),
    phones=st.integers(0, 2),
    split_books=st.booleans(),
    policy=st.sampled_from(list(FreightPolicy)),
    freight=st.integers(0, 2_000),
    ops=OPS,
)
def test_no_sequence_refunds_more_than_was_paid(
    books: int,
    pens: int,
    phones: int,
    split_books: bool,
    policy: FreightPolicy,
    freight: int,
    ops: list[tuple[str, object, int]],
) -> None:
    lines = [line("BOOK-1", books)] + ([line("PEN-1", pens)] if pens else [])
    lines += [line("PHONE-1", phones)] if phones else []
    s = placed(*lines, policy=policy, freight=freight)
    allocations = [
        Allocation(
            sku=ln.sku, location={"PHONE-1": "VENDOR-X"}.get(ln.sku, "WH-A"), quantity=ln.quantity
        )
        for ln in s.lines
    ]
    if split_books and books > 1:
        allocations[0] = Allocation(sku="BOOK-1", location="WH-A", quantity=1)
        allocations.append(Allocation(sku="BOOK-1", location="WH-B", quantity=books - 1))
    s = paid(s, allocations)
    open_cases: list[str] = []
    n = 0
    for op, a, b in ops:
        n += 1
        now = LATER + timedelta(minutes=n)
        try:
            if op == "request":
                s = refunds.request_refund(s, f"R{n}", want((str(a), b)), "", now, BUYER).state
            elif op in ("agree", "fail", "refuse"):
                pending = [r.id for r in s.refund_requests if r.status == "REQUESTED"]
                if not pending:
                    continue
                rid = pending[int(str(a)) % len(pending)]
                if op == "refuse":
                    s = refunds.refuse_request(s, rid, "no", now, MERCHANT).state
                else:
                    refund, money = refunds.refund_of_request(s, rid, now)
                    if op == "fail":
                        refund = refund.model_copy(update={"status": "FAILED"})
                    s = refunds.complete_request(s, rid, refund, money, now, MERCHANT).state
            elif op == "ship":
                pendings = [p for p in s.packages if p.status is PackageStatus.PENDING]
                if not pendings:
                    continue
                p = pendings[int(str(a)) % len(pendings)]
                s = rules.ship(s, p.id, "SF", f"T{n}", now, MERCHANT).state
            elif op == "case":
                change, case = cases.new_case(
                    s,
                    case_id=f"C{n}",
                    type_=CaseType.REFUND_ONLY,
                    reason="broken",
                    description="",
                    lines=want((str(a), b)),
                    images=[],
                    service_phone="",
                    now=now,
                    actor=BUYER,
                )
                assert case.claim_cents >= 0
                s = change.state
                open_cases.append(case.id)
            elif op == "settle":
                if not open_cases:
                    continue
                cid = open_cases.pop(int(str(a)) % len(open_cases))
                if b < 0:
                    s = cases.settle_claim(s, cid, None, None, now, SYSTEM).state
                else:
                    refund, money = cases.claim_refund(s, cid, b, now)
                    s = cases.settle_claim(s, cid, refund, money, now, SYSTEM).state
        except DomainError:
            pass  # a refusal changes nothing
        _invariants(s)
