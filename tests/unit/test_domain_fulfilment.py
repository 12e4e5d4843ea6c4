"""Fulfilment rules as pure functions: KEPLER purchase after the cancel window, supplier news,
rejection (拒收) with the freight policy, return to stock, and the buyer's cancel after payment."""

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import fulfilment as fulfil
from domain import order as rules
from domain.errors import DomainError, ErrorCode
from domain.models import (
    SYSTEM,
    Actor,
    Allocation,
    CloseReason,
    FreightPolicy,
    OrderLine,
    OrderState,
    OrderStatus,
    OrderTimings,
    PackageStatus,
    PaymentChannel,
    ProductType,
    Refund,
    StockPolicy,
    SubStatus,
)
from domain.order import Change, Deadline, DeadlineKind
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

P = PackageStatus
PAID_AT = T0 + timedelta(minutes=5)  # when `paid()` pays
SUPPLIER = Actor(kind="supplier", id="JD-1")
LATER = T0 + timedelta(days=1)


def kepler_order(
    *skus: str,
    timings: OrderTimings | None = None,
    policy: FreightPolicy = FreightPolicy.ONE_PACKAGE,
) -> OrderState:
    """A paid order with a KEPLER TV (package at KEPLER-JD) and, by default, a SELF book."""
    lines = [line(s) for s in (skus or ("TV-1", "BOOK-1"))]
    return paid(placed(*lines, timings=timings, policy=policy))


def purchased(state: OrderState, sku: str = "TV-1", at: datetime | None = None) -> OrderState:
    pid = package_id(state, sku)
    return fulfil.mark_purchased(state, pid, f"SUP-{pid}", at or LATER, SYSTEM).state


def supplier_shipped(
    state: OrderState, sku: str = "TV-1", at: datetime | None = None
) -> OrderState:
    change = fulfil.supplier_shipped(state, package_id(state, sku), at or LATER, SUPPLIER)
    assert change is not None
    return change.state


def rejected(state: OrderState, sku: str, *, restocked: bool = False) -> OrderState:
    pid = package_id(state, sku)
    refund = fulfil.package_refund(state, pid, "REJECTED", LATER)
    return fulfil.reject(state, pid, refund, LATER, BUYER, restocked=restocked).state


def intercepted(state: OrderState, *skus: str) -> OrderState:
    ids = [package_id(state, s) for s in skus]
    refunds = [fulfil.package_refund(state, pid, "INTERCEPTED", LATER) for pid in ids]
    return fulfil.cancel_packages(state, ids, refunds, LATER, MERCHANT, "INTERCEPTED").state


def a_refund(
    amount: int, *, txn_id: str = "TXN-1", status: str = "SUCCEEDED", refund_id: str = "R-1"
) -> Refund:
    return Refund(
        id=refund_id,
        txn_id=txn_id,
        channel=PaymentChannel.ALIPAY,
        amount_cents=amount,
        goods_cents=amount,
        reason="test",
        status=status,
        created_at=LATER,
    )


def raises_invalid(match: str) -> pytest.RaisesExc[DomainError]:
    return pytest.raises(DomainError, match=match)


# ---- split_packages: KEPLER waits out the cancel window ---------------------------------


def test_kepler_packages_await_the_supplier_until_the_cancel_window_ends() -> None:
    timings = OrderTimings(supplier_cancel_window_seconds=600)
    s = paid(placed(line("TV-1"), line("BOOK-1"), line("PHONE-1"), timings=timings))
    tv = pkg(s, package_id(s, "TV-1"))
    assert (tv.product_type, tv.status) == (ProductType.KEPLER, P.AWAITING_SUPPLIER)
    assert tv.purchase_at == PAID_AT + timedelta(seconds=600)
    for sku in ("BOOK-1", "PHONE-1"):
        other = pkg(s, package_id(s, sku))
        assert (other.status, other.purchase_at) == (P.PENDING, None)
    assert (s.status, s.sub_statuses) == (OrderStatus.PENDING_SHIPMENT, [])


def test_split_packages_starts_the_window_at_the_time_it_is_given() -> None:
    s = placed(line("TV-1"), line("BOOK-1"), timings=OrderTimings(supplier_cancel_window_seconds=7))
    allocations = [
        Allocation(sku="TV-1", location="KEPLER-JD", quantity=1),
        Allocation(sku="BOOK-1", location="WH-A", quantity=1),
    ]
    now = T0 + timedelta(hours=3)
    packages = rules.split_packages(s, allocations, now)
    assert [(p.location, p.status, p.purchase_at) for p in packages] == [
        ("KEPLER-JD", P.AWAITING_SUPPLIER, now + timedelta(seconds=7)),
        ("WH-A", P.PENDING, None),
    ]


# ---- next_deadline ------------------------------------------------------------------------


def test_a_paid_kepler_order_is_next_due_for_the_supplier_purchase() -> None:
    s = kepler_order(timings=OrderTimings(supplier_cancel_window_seconds=900))
    assert rules.next_deadline(s) == Deadline(
        DeadlineKind.SUPPLIER_PURCHASE, PAID_AT + timedelta(seconds=900)
    )
    assert Deadline(DeadlineKind.SUPPLIER_PURCHASE, T0).describe() == (
        "buy from the supplier (cancel window over)"
    )


@pytest.mark.parametrize(
    ("window", "auto_confirm", "expected"),
    [
        (10_000, 100, DeadlineKind.AUTO_CONFIRM),
        (100, 10_000, DeadlineKind.SUPPLIER_PURCHASE),
    ],
    ids=["auto-confirm-first", "purchase-first"],
)
def test_the_next_deadline_is_the_earliest_of_purchase_and_auto_confirm(
    window: int, auto_confirm: int, expected: DeadlineKind
) -> None:
    timings = OrderTimings(supplier_cancel_window_seconds=window, auto_confirm_seconds=auto_confirm)
    s = kepler_order(timings=timings)
    shipped_at = PAID_AT + timedelta(seconds=1)
    s = shipped(s, "BOOK-1", at=shipped_at)
    at = {
        DeadlineKind.SUPPLIER_PURCHASE: PAID_AT + timedelta(seconds=window),
        DeadlineKind.AUTO_CONFIRM: shipped_at + timedelta(seconds=auto_confirm),
    }[expected]
    assert rules.next_deadline(s) == Deadline(expected, at)


def test_a_purchased_package_is_no_longer_due_for_purchase() -> None:
    s = purchased(kepler_order())
    assert rules.next_deadline(s) is None


def test_a_closed_order_has_no_deadline_even_with_packages_that_had_one() -> None:
    s = shipped(kepler_order(), "BOOK-1")
    s.close_reason = CloseReason.SELLER_CLOSED  # a purchase and an auto-confirm were due
    assert rules.next_deadline(s) is None


# ---- due_purchases ------------------------------------------------------------------------


def test_due_purchases_are_kepler_packages_whose_window_has_ended() -> None:
    s = kepler_order(timings=OrderTimings(supplier_cancel_window_seconds=60))
    tv = package_id(s, "TV-1")
    end = PAID_AT + timedelta(seconds=60)
    assert rules.due_purchases(s, end - timedelta(seconds=1)) == []
    assert [p.id for p in rules.due_purchases(s, end)] == [tv]
    assert [p.id for p in rules.due_purchases(s, end + timedelta(days=1))] == [tv]
    assert rules.due_purchases(purchased(s, at=end), end + timedelta(days=1)) == []


def test_a_cancelled_kepler_package_is_never_due() -> None:
    s = intercepted(kepler_order(), "TV-1")
    assert rules.due_purchases(s, T0 + timedelta(days=30)) == []


# ---- mark_purchased -----------------------------------------------------------------------


def test_marking_a_package_purchased_records_the_supplier_order() -> None:
    s = kepler_order()
    tv = package_id(s, "TV-1")
    change = fulfil.mark_purchased(s, tv, "SUP-9", LATER, SYSTEM)
    p = pkg(change.state, tv)
    assert (p.status, p.supplier_order_id, p.purchase_at) == (P.PURCHASED, "SUP-9", None)
    assert pkg(change.state, package_id(s, "BOOK-1")).status is P.PENDING
    assert change.state.status is OrderStatus.PENDING_SHIPMENT
    assert change.event.type == "SUPPLIER_PURCHASED"
    assert change.event.data == {"package_id": tv, "supplier_order_id": "SUP-9"}


@pytest.mark.parametrize(
    "build",
    [
        lambda: (kepler_order(), "BOOK-1"),
        lambda: (purchased(kepler_order()), "TV-1"),
        lambda: (supplier_shipped(purchased(kepler_order())), "TV-1"),
        lambda: (intercepted(kepler_order(), "TV-1"), "TV-1"),
    ],
    ids=["own-pending", "purchased", "shipped", "cancelled"],
)
def test_only_a_package_awaiting_the_supplier_can_be_purchased(
    build: Callable[[], tuple[OrderState, str]],
) -> None:
    s, sku = build()
    pid = package_id(s, sku)
    with raises_invalid(f"package {pid} is not awaiting the supplier") as err:
        fulfil.mark_purchased(s, pid, "SUP-2", LATER, SYSTEM)
    assert err.value.code is ErrorCode.INVALID_TRANSITION


# ---- supplier_shipped ---------------------------------------------------------------------


def test_the_supplier_shipping_a_purchased_package_starts_auto_confirm() -> None:
    s = purchased(kepler_order(timings=OrderTimings(auto_confirm_seconds=3_600)))
    tv = package_id(s, "TV-1")
    change = fulfil.supplier_shipped(s, tv, LATER, SUPPLIER)
    assert change is not None
    p = pkg(change.state, tv)
    assert (p.status, p.shipped_at, p.carrier) == (P.SHIPPED, LATER, "supplier")
    assert p.auto_confirm_at == LATER + timedelta(seconds=3_600)
    assert (change.state.status, change.state.sub_statuses) == (
        OrderStatus.PENDING_SHIPMENT,
        [SubStatus.PARTIALLY_SHIPPED],
    )
    assert change.event.type == "PACKAGE_SHIPPED"
    assert change.event.data == {"package_id": tv, "by": "supplier"}
    assert rules.next_deadline(change.state) == Deadline(
        DeadlineKind.AUTO_CONFIRM, LATER + timedelta(seconds=3_600)
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: supplier_shipped(purchased(kepler_order())),
        kepler_order,
        lambda: (
            rules.confirm_receipt(
                supplier_shipped(purchased(kepler_order())), None, LATER, BUYER, "b"
            ).state
        ),
    ],
    ids=["repeated", "not-yet-purchased", "received"],
)
def test_supplier_shipping_news_about_a_package_not_purchased_is_none(
    build: Callable[[], OrderState],
) -> None:
    s = build()
    assert fulfil.supplier_shipped(s, package_id(s, "TV-1"), LATER, SUPPLIER) is None


# ---- paid_and_kept, package_refund, whole_refund ----------------------------------------


def test_an_unpaid_order_keeps_nothing() -> None:
    assert fulfil.paid_and_kept(placed()) == 0


def test_paid_and_kept_counts_only_live_refunds_of_the_orders_own_payment() -> None:
    s = paid()
    assert fulfil.paid_and_kept(s) == s.total_cents == 53_800
    s.refunds = [
        a_refund(53_800, txn_id="LATE-TXN", refund_id="R-late"),  # a second payment's refund
        a_refund(1_000, status="FAILED", refund_id="R-failed"),
        a_refund(3_000, refund_id="R-ok"),
        a_refund(500, status="PENDING", refund_id="R-pending"),
    ]
    assert fulfil.paid_and_kept(s) == 53_800 - 3_000 - 500


def test_one_package_the_freight_bearer_refunds_all_freight_borne_by_the_platform() -> None:
    s = paid()  # phone 50_000 bears all 800 freight; book 3_000 bears none
    phone = package_id(s, "PHONE-1")
    refund = fulfil.package_refund(s, phone, "REJECTED", LATER)
    assert refund == Refund(
        id=f"{phone}-rejected",
        txn_id="TXN-1",
        channel=PaymentChannel.ALIPAY,
        amount_cents=50_800,
        goods_cents=50_000,
        freight_cents=800,
        borne_by="merchant",
        freight_borne_by="platform",
        package_id=phone,
        reason="REJECTED",
        created_at=LATER,
    )


def test_one_package_a_package_without_freight_refunds_its_goods_only() -> None:
    s = paid()
    refund = fulfil.package_refund(s, package_id(s, "BOOK-1"), "REJECTED", LATER)
    assert (refund.amount_cents, refund.goods_cents, refund.freight_cents) == (3_000, 3_000, 0)
    assert (refund.borne_by, refund.freight_borne_by) == ("merchant", "merchant")
    assert refund.package_id == package_id(s, "BOOK-1")


def test_split_freight_is_refunded_per_package_and_borne_by_the_merchant() -> None:
    s = paid(placed(freight=1_000, policy=FreightPolicy.SPLIT))
    got = {}
    for sku in ("BOOK-1", "PHONE-1"):
        r = fulfil.package_refund(s, package_id(s, sku), "REJECTED", LATER)
        got[sku] = (r.amount_cents, r.goods_cents, r.freight_cents, r.freight_borne_by)
    assert got == {
        "BOOK-1": (3_057, 3_000, 57, "merchant"),
        "PHONE-1": (50_943, 50_000, 943, "merchant"),
    }


def test_nothing_paid_means_no_refund() -> None:
    with raises_invalid("nothing was paid"):
        fulfil.package_refund(placed(), "O-1-1", "REJECTED", LATER)
    with raises_invalid("nothing was paid"):
        fulfil.whole_refund(placed(), "BUYER_CANCELLED", LATER)


def test_a_whole_refund_returns_the_payment_split_into_freight_and_goods() -> None:
    s = paid()
    assert fulfil.whole_refund(s, "BUYER_CANCELLED", LATER) == Refund(
        id="O-1-buyer_cancelled",
        txn_id="TXN-1",
        channel=PaymentChannel.ALIPAY,
        amount_cents=53_800,
        goods_cents=53_000,
        freight_cents=800,
        reason="BUYER_CANCELLED",
        created_at=LATER,
    )


def test_a_whole_refund_returns_only_what_the_payment_still_holds() -> None:
    s = paid()
    s.refunds = [
        a_refund(53_800, txn_id="LATE-TXN", refund_id="R-late"),
        a_refund(9_999, status="FAILED", refund_id="R-failed"),
        a_refund(53_300, refund_id="R-ok"),
    ]
    r = fulfil.whole_refund(s, "BUYER_CANCELLED", LATER)
    assert (r.amount_cents, r.freight_cents, r.goods_cents) == (500, 500, 0)


def test_a_whole_refund_after_the_freight_was_refunded_carries_no_freight() -> None:
    s = intercepted(paid(), "PHONE-1")  # the bearer: 50_000 + all 800 freight back
    r = fulfil.whole_refund(s, "BUYER_CANCELLED", LATER)
    assert r.amount_cents == 3_000
    assert (r.goods_cents, r.freight_cents) == (3_000, 0)


# ---- reject (拒收) ------------------------------------------------------------------------


def test_rejecting_a_package_refunds_it_and_leaves_the_rest_open() -> None:
    s = shipped(paid())
    phone, book = package_id(s, "PHONE-1"), package_id(s, "BOOK-1")
    refund = fulfil.package_refund(s, phone, "REJECTED", LATER)
    change = fulfil.reject(s, phone, refund, LATER, BUYER, restocked=False)
    after = change.state
    p = pkg(after, phone)
    assert (p.status, p.rejected_at, p.auto_confirm_at, p.restocked) == (
        P.REJECTED,
        LATER,
        None,
        False,
    )
    assert pkg(after, book) == pkg(s, book)
    assert after.refunds == [refund]
    assert after.refunded_cents == 50_800
    assert (after.status, after.close_reason) == (OrderStatus.SHIPPED, None)
    assert change.event.type == "PACKAGE_REJECTED"
    assert change.event.data == {
        "package_id": phone,
        "refund_id": refund.id,
        "amount_cents": 50_800,
        "freight_cents": 800,
        "freight_borne_by": "platform",
    }


def test_the_order_completes_with_the_rest_when_the_others_were_received() -> None:
    s = shipped(paid())
    s = rules.confirm_receipt(s, [package_id(s, "BOOK-1")], LATER, BUYER, "b").state
    assert s.completed_at is None
    after = rejected(s, "PHONE-1")
    assert (after.status, after.close_reason, after.completed_at) == (
        OrderStatus.COMPLETED,
        None,
        LATER,
    )


def test_rejecting_the_last_live_package_closes_the_order_fully_refunded() -> None:
    s = shipped(paid())
    s = rejected(s, "BOOK-1")
    assert s.close_reason is None
    s = rejected(s, "PHONE-1")
    assert (s.status, s.close_reason, s.closed_at) == (
        OrderStatus.CLOSED,
        CloseReason.FULLY_REFUNDED,
        LATER,
    )
    assert s.refunded_cents == s.total_cents


def test_rejecting_the_last_live_package_beside_a_cancelled_one_closes_fully_refunded() -> None:
    s = intercepted(shipped(paid(), "PHONE-1"), "BOOK-1")
    assert s.close_reason is None
    s = rejected(s, "PHONE-1")
    assert s.close_reason is CloseReason.FULLY_REFUNDED
    assert s.refunded_cents == s.total_cents


def test_a_delivered_drop_shipped_package_can_still_be_rejected() -> None:
    s = shipped(paid(placed(line("PHONE-1"))))
    change = rules.carrier_delivered(s, "O-1-1", LATER, MERCHANT)
    assert change is not None
    after = rejected(change.state, "PHONE-1")
    assert pkg(after, "O-1-1").status is P.REJECTED


def test_a_failed_refund_is_recorded_but_not_counted_as_refunded() -> None:
    s = shipped(paid())
    phone = package_id(s, "PHONE-1")
    refund = fulfil.package_refund(s, phone, "REJECTED", LATER).model_copy(
        update={"status": "FAILED"}
    )
    after = fulfil.reject(s, phone, refund, LATER, BUYER, restocked=False).state
    assert after.refunds == [refund]
    assert after.refunded_cents == 0


def test_rejecting_never_mutates_its_input() -> None:
    s = shipped(paid())
    snapshot = s.model_dump()
    for sku in ("BOOK-1", "PHONE-1"):
        pid = package_id(s, sku)
        fulfil.reject(
            s, pid, fulfil.package_refund(s, pid, "REJECTED", LATER), LATER, BUYER, restocked=True
        )
    assert s.model_dump() == snapshot


@pytest.mark.parametrize(
    ("build", "sku"),
    [
        (paid, "BOOK-1"),
        (lambda: rules.confirm_receipt(shipped(paid()), None, LATER, BUYER, "b").state, "BOOK-1"),
        (lambda: rejected(shipped(paid()), "BOOK-1"), "BOOK-1"),
        (kepler_order, "TV-1"),
        (lambda: purchased(kepler_order()), "TV-1"),
        (lambda: intercepted(paid(), "BOOK-1"), "BOOK-1"),
    ],
    ids=["pending", "received", "rejected", "awaiting-supplier", "purchased", "cancelled"],
)
def test_only_a_package_on_its_way_can_be_rejected(
    build: Callable[[], OrderState], sku: str
) -> None:
    s = build()
    pid = package_id(s, sku)
    refund = a_refund(1)
    with raises_invalid(f"package {pid} is not on its way to the buyer") as err:
        fulfil.check_can_reject(s, pid)
    assert err.value.code is ErrorCode.INVALID_TRANSITION
    with raises_invalid("is not on its way to the buyer"):
        fulfil.reject(s, pid, refund, LATER, BUYER, restocked=False)


def test_a_supplier_package_on_its_way_can_be_rejected_and_is_restocked_at_once() -> None:
    s = supplier_shipped(purchased(kepler_order()))
    fulfil.check_can_reject(s, package_id(s, "TV-1"))
    after = rejected(s, "TV-1", restocked=True)
    assert pkg(after, package_id(s, "TV-1")).restocked is True
    assert rules.awaiting_return(after) == []


# ---- awaiting_return, is_finished, confirm_return ---------------------------------------


def test_a_closed_order_is_not_finished_while_a_rejected_package_is_on_its_way_back() -> None:
    s = rejected(shipped(paid(placed(line("BOOK-1")))), "BOOK-1")
    assert (s.status, s.close_reason) == (OrderStatus.CLOSED, CloseReason.FULLY_REFUNDED)
    assert [p.id for p in rules.awaiting_return(s)] == ["O-1-1"]
    assert rules.next_deadline(s) is None
    assert rules.is_finished(s, T0 + timedelta(days=365)) is False

    back = fulfil.confirm_return(s, "O-1-1", LATER, MERCHANT).state
    assert rules.awaiting_return(back) == []
    assert rules.is_finished(back, LATER) is True


def test_a_completed_order_is_not_finished_while_a_rejected_package_is_on_its_way_back() -> None:
    timings = OrderTimings(after_sales_window_seconds=60)
    s = shipped(paid(placed(timings=timings)))
    s = rules.confirm_receipt(s, [package_id(s, "BOOK-1")], LATER, BUYER, "b").state
    s = rejected(s, "PHONE-1")
    assert s.status is OrderStatus.COMPLETED
    # no end-of-window timer while the goods are on their way back: it would fire at once,
    # forever; orders from before this rule kept timing it (their replay asks for that)
    assert rules.next_deadline(s) is None
    old = Deadline(DeadlineKind.FINISH, LATER + timedelta(seconds=60))
    assert rules.next_deadline(s, hold_finish=False) == old
    assert rules.is_finished(s, LATER + timedelta(days=30)) is False
    back = fulfil.confirm_return(s, package_id(s, "PHONE-1"), LATER, MERCHANT).state
    assert rules.is_finished(back, LATER + timedelta(days=30)) is True


def test_confirming_a_return_puts_the_package_back_in_stock() -> None:
    s = rejected(shipped(paid()), "BOOK-1")
    book = package_id(s, "BOOK-1")
    fulfil.check_can_confirm_return(s, book)
    change = fulfil.confirm_return(s, book, LATER, MERCHANT)
    assert pkg(change.state, book).restocked is True
    assert pkg(change.state, book).status is P.REJECTED
    assert change.event.type == "RETURN_RECEIVED"
    assert change.event.data == {"package_id": book}


@pytest.mark.parametrize(
    "build",
    [
        lambda: (
            fulfil.confirm_return(
                rejected(shipped(paid()), "BOOK-1"), "O-1-2", LATER, MERCHANT
            ).state
        ),
        lambda: rejected(shipped(paid()), "BOOK-1", restocked=True),
        lambda: shipped(paid()),
        paid,
        lambda: intercepted(paid(), "BOOK-1"),
    ],
    ids=["twice", "restocked-by-the-supplier", "shipped", "pending", "cancelled"],
)
def test_a_return_is_confirmed_once_and_only_for_a_rejected_package(
    build: Callable[[], OrderState],
) -> None:
    s = build()
    book = package_id(s, "BOOK-1")
    assert book == "O-1-2"
    with raises_invalid(f"package {book} is not a rejected package on its way back") as err:
        fulfil.check_can_confirm_return(s, book)
    assert err.value.code is ErrorCode.INVALID_TRANSITION
    with raises_invalid("not a rejected package on its way back"):
        fulfil.confirm_return(s, book, LATER, MERCHANT)


# ---- cancel_packages, package_allocations -----------------------------------------------


def test_intercepting_packages_cancels_and_refunds_them_only() -> None:
    s = kepler_order("TV-1", "BOOK-1", "PHONE-1")
    tv, book, phone = (package_id(s, k) for k in ("TV-1", "BOOK-1", "PHONE-1"))
    refunds = [fulfil.package_refund(s, pid, "SUPPLIER_REFUSED", LATER) for pid in (tv, book)]
    change = fulfil.cancel_packages(s, [tv, book], refunds, LATER, SYSTEM, "SUPPLIER_REFUSED")
    after = change.state
    for pid in (tv, book):
        p = pkg(after, pid)
        assert (p.status, p.cancelled_at, p.purchase_at, p.rejected_at) == (
            P.CANCELLED,
            LATER,
            None,
            None,
        )
    assert pkg(after, phone) == pkg(s, phone)
    assert after.refunds == refunds
    assert after.refunded_cents == 120_000 + 800 + 3_000
    assert (after.status, after.close_reason) == (OrderStatus.PENDING_SHIPMENT, None)
    assert rules.due_purchases(after, T0 + timedelta(days=30)) == []
    assert change.event.type == "PACKAGES_CANCELLED"
    assert change.event.data == {
        "package_ids": [tv, book],
        "reason": "SUPPLIER_REFUSED",
        "refunds": [r.id for r in refunds],
    }


def test_intercepting_every_package_closes_the_order_fully_refunded() -> None:
    s = intercepted(paid(), "BOOK-1", "PHONE-1")
    assert (s.status, s.close_reason, s.closed_at) == (
        OrderStatus.CLOSED,
        CloseReason.FULLY_REFUNDED,
        LATER,
    )
    assert s.refunded_cents == s.total_cents


def test_package_allocations_are_the_stock_of_the_chosen_packages_only() -> None:
    s = placed(line("BOOK-1", 3), line("PEN-1", 2), line("PHONE-1"))
    s = paid(
        s,
        [
            Allocation(sku="BOOK-1", location="WH-A", quantity=2),
            Allocation(sku="BOOK-1", location="WH-B", quantity=1),
            Allocation(sku="PEN-1", location="WH-A", quantity=2),
            Allocation(sku="PHONE-1", location="VENDOR-X", quantity=1),
        ],
    )
    by_location = {p.location: p.id for p in s.packages}
    got = fulfil.package_allocations(s, [by_location["WH-A"]])
    assert sorted((a.sku, a.location, a.quantity) for a in got) == [
        ("BOOK-1", "WH-A", 2),
        ("PEN-1", "WH-A", 2),
    ]
    got = fulfil.package_allocations(s, [by_location["VENDOR-X"], by_location["WH-B"]])
    assert sorted((a.sku, a.location, a.quantity) for a in got) == [
        ("BOOK-1", "WH-B", 1),
        ("PHONE-1", "VENDOR-X", 1),
    ]
    assert fulfil.package_allocations(s, []) == []


# ---- the buyer's cancel after payment ---------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        placed,
        paid,
        kepler_order,
        lambda: purchased(kepler_order()),
        lambda: intercepted(paid(), "BOOK-1"),
    ],
    ids=["unpaid", "paid", "awaiting-supplier", "purchased", "one-intercepted"],
)
def test_the_buyer_may_cancel_while_nothing_has_shipped(build: Callable[[], OrderState]) -> None:
    fulfil.check_can_cancel(build())


@pytest.mark.parametrize(
    "build",
    [
        lambda: shipped(paid(), "BOOK-1"),
        lambda: shipped(paid()),
        lambda: supplier_shipped(purchased(kepler_order())),
        lambda: rules.confirm_receipt(shipped(paid()), None, LATER, BUYER, "b").state,
        lambda: rejected(shipped(paid(), "BOOK-1"), "BOOK-1"),  # shipped, then refused
    ],
    ids=["partially-shipped", "shipped", "supplier-shipped", "completed", "shipped-then-rejected"],
)
def test_the_buyer_may_not_cancel_once_a_package_shipped_and_is_told_to_ask_for_a_refund(
    build: Callable[[], OrderState],
) -> None:
    s = build()
    with raises_invalid(r"cannot be cancelled \(.*ask for a refund") as err:
        fulfil.check_can_cancel(s)
    assert err.value.code is ErrorCode.INVALID_TRANSITION
    with raises_invalid("refund"):
        fulfil.cancel_paid(s, a_refund(1), LATER, BUYER, "too late")


def test_a_cancelled_paid_order_cannot_be_cancelled_again_and_no_refund_is_suggested() -> None:
    s = fulfil.cancel_paid(paid(), a_refund(1), LATER, BUYER, "bye").state
    with raises_invalid(r"^order is CLOSED and cannot be cancelled$"):
        fulfil.check_can_cancel(s)


def test_a_failed_refund_is_listed_but_not_counted_as_refunded() -> None:
    s = rules.add_refund(paid(), a_refund(700, status="FAILED"), LATER, SYSTEM).state
    assert [r.status for r in s.refunds] == ["FAILED"]
    assert s.refunded_cents == 0


def test_a_closed_unpaid_order_cannot_be_cancelled_and_no_refund_is_suggested() -> None:
    s = rules.close(placed(), CloseReason.PAYMENT_TIMEOUT, T0, SYSTEM).state
    with raises_invalid(r"^order is CLOSED and cannot be cancelled$"):
        fulfil.check_can_cancel(s)


def test_cancelling_after_payment_intercepts_every_live_package_and_refunds_the_rest() -> None:
    s = intercepted(kepler_order("TV-1", "BOOK-1", "PHONE-1"), "BOOK-1")
    book, tv, phone = (package_id(s, k) for k in ("BOOK-1", "TV-1", "PHONE-1"))
    s.refunds.append(a_refund(s.total_cents, txn_id="LATE-TXN", refund_id="R-late"))
    s.refunds.append(a_refund(999, status="FAILED", refund_id="R-failed"))
    kept = fulfil.paid_and_kept(s)
    assert kept == s.total_cents - 3_000
    refund = fulfil.whole_refund(s, "BUYER_CANCELLED", LATER)
    assert refund.amount_cents == kept
    before_refunded = s.refunded_cents

    change = fulfil.cancel_paid(s, refund, LATER + timedelta(minutes=1), BUYER, "changed my mind")
    after = change.state
    now = LATER + timedelta(minutes=1)
    for pid in (tv, phone):
        p = pkg(after, pid)
        assert (p.status, p.cancelled_at, p.purchase_at) == (P.CANCELLED, now, None)
    assert pkg(after, book) == pkg(s, book)  # cancelled before: left as it was
    assert (after.status, after.close_reason, after.closed_at) == (
        OrderStatus.CLOSED,
        CloseReason.BUYER_CANCELLED,
        now,
    )
    assert after.refunds == [*s.refunds, refund]
    assert after.refunded_cents == before_refunded + kept
    assert fulfil.paid_and_kept(after) == 0
    assert rules.next_deadline(after) is None
    # R-failed is still owed: the workflow waits for an admin's retry (orders from before
    # that rule ended here)
    assert rules.is_finished(after, now) is False
    assert rules.is_finished(after, now, hold=False) is True
    assert change.event.type == "CLOSED"
    assert change.event.data == {
        "reason": CloseReason.BUYER_CANCELLED,
        "note": "changed my mind",
        "package_ids": [tv, phone],
        "refund_id": refund.id,
    }


def test_cancelling_a_paid_order_refunds_the_whole_payment() -> None:
    s = paid()
    change = fulfil.cancel_paid(
        s, fulfil.whole_refund(s, "BUYER_CANCELLED", LATER), LATER, BUYER, ""
    )
    assert change.state.refunded_cents == 53_800
    assert [p.status for p in change.state.packages] == [P.CANCELLED, P.CANCELLED]
    assert change.state.close_reason is CloseReason.BUYER_CANCELLED


# ---- every new transition copies and bumps the version by one ---------------------------

TRANSITIONS: dict[str, tuple[Callable[[], OrderState], Callable[[OrderState], Change | None]]] = {
    "mark_purchased": (
        kepler_order,
        lambda s: fulfil.mark_purchased(s, package_id(s, "TV-1"), "SUP-1", LATER, SYSTEM),
    ),
    "supplier_shipped": (
        lambda: purchased(kepler_order()),
        lambda s: fulfil.supplier_shipped(s, package_id(s, "TV-1"), LATER, SUPPLIER),
    ),
    "reject": (
        lambda: shipped(paid()),
        lambda s: fulfil.reject(s, "O-1-1", a_refund(1), LATER, BUYER, restocked=False),
    ),
    "confirm_return": (
        lambda: rejected(shipped(paid()), "BOOK-1"),
        lambda s: fulfil.confirm_return(s, package_id(s, "BOOK-1"), LATER, MERCHANT),
    ),
    "cancel_packages": (
        paid,
        lambda s: fulfil.cancel_packages(s, ["O-1-1"], [a_refund(1)], LATER, SYSTEM, "X"),
    ),
    "cancel_paid": (kepler_order, lambda s: fulfil.cancel_paid(s, a_refund(1), LATER, BUYER, "")),
}


@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_a_fulfilment_transition_copies_its_input_and_bumps_the_version(name: str) -> None:
    build, transition = TRANSITIONS[name]
    before = build()
    snapshot = before.model_dump()
    change = transition(before)
    assert change is not None
    assert before.model_dump() == snapshot
    assert change.state is not before
    assert change.state.version == change.event.version == before.version + 1
    assert change.event.at == change.state.updated_at == LATER


# ---- property: rejecting every package refunds exactly what was paid --------------------


def order_of(values: list[int], freight: int, policy: FreightPolicy) -> OrderState:
    """A paid order with one SELF package per value, each at its own location."""
    lines = [
        OrderLine(
            sku=f"SKU-{n}",
            title=f"item {n}",
            product_type=ProductType.SELF,
            stock_policy=StockPolicy.LOCK_ON_ORDER,
            quantity=1,
            unit_price_cents=value,
        )
        for n, value in enumerate(values)
    ]
    s = placed(*lines, freight=freight, policy=policy)
    allocations = [Allocation(sku=ln.sku, location=f"LOC-{ln.sku}", quantity=1) for ln in lines]
    return paid(s, allocations)


@settings(max_examples=150, deadline=None, database=None)
@given(
    values=st.lists(st.integers(0, 2_000_000), min_size=1, max_size=6),
    freight=st.integers(0, 100_000),
    policy=st.sampled_from(list(FreightPolicy)),
    data=st.data(),
)
def test_rejecting_every_package_refunds_exactly_goods_and_freight(
    values: list[int], freight: int, policy: FreightPolicy, data: st.DataObject
) -> None:
    s = shipped(order_of(values, freight, policy))
    assert len(s.packages) == len(values)
    order = data.draw(st.permutations([p.id for p in s.packages]), label="rejection order")
    for n, pid in enumerate(order, start=1):
        assert s.close_reason is None
        refund = fulfil.package_refund(s, pid, "REJECTED", LATER)
        s = fulfil.reject(s, pid, refund, LATER, BUYER, restocked=False).state
        assert len(s.refunds) == n
    assert sum(r.amount_cents for r in s.refunds) == s.goods_cents + s.freight_cents
    assert sum(r.freight_cents for r in s.refunds) == s.freight_cents == freight
    assert s.goods_cents == sum(values)
    assert s.refunded_cents == s.total_cents
    assert fulfil.paid_and_kept(s) == 0
    assert (s.status, s.close_reason) == (OrderStatus.CLOSED, CloseReason.FULLY_REFUNDED)
    platform = {r.package_id for r in s.refunds if r.freight_borne_by == "platform"}
    if policy is FreightPolicy.ONE_PACKAGE and freight > 0:
        assert len(platform) == 1
    else:
        assert platform == set()


def test_the_supplier_speaks_only_of_its_own_orders_of_kepler_packages() -> None:
    s = purchased(kepler_order())
    pid = package_id(s, "TV-1")
    fulfil.check_supplier_notice(s, pid, f"SUP-{pid}")  # its own: accepted (refusals below)
    with raises_invalid("is not supplier order"):
        fulfil.check_supplier_notice(s, pid, "SUP-someone-else")
    with raises_invalid("not bought from a supplier"):
        fulfil.check_supplier_notice(s, package_id(s, "BOOK-1"), f"SUP-{pid}")
    with raises_invalid("not bought from a supplier"):
        fulfil.check_supplier_notice(kepler_order(), pid, f"SUP-{pid}")  # not purchased yet


def test_the_webhook_may_let_news_of_an_unrecorded_purchase_through_but_never_for_own_goods() -> (
    None
):
    s = kepler_order()
    fulfil.check_supplier_notice(s, package_id(s, "TV-1"), "SUP-any", unrecorded_ok=True)
    with raises_invalid("not bought from a supplier"):
        fulfil.check_supplier_notice(s, package_id(s, "BOOK-1"), "SUP-any", unrecorded_ok=True)
    bought = purchased(s)
    with raises_invalid("is not supplier order"):
        fulfil.check_supplier_notice(bought, package_id(s, "TV-1"), "SUP-x", unrecorded_ok=True)


# ---- each change carries what it does to stock (the store applies exactly that) --------


def test_each_change_says_what_it_does_to_stock() -> None:
    state = kepler_order("BOOK-1", "PHONE-1")
    book, phone = package_id(state, "BOOK-1"), package_id(state, "PHONE-1")
    taken = {p.id: fulfil.package_allocations(state, [p.id]) for p in state.packages}
    assert len(taken) == 2 and all(taken.values())  # each package took its own stock

    unpaid = placed(line("BOOK-1"))
    closing = rules.close(unpaid, CloseReason.SELLER_CLOSED, LATER, MERCHANT)
    assert (closing.release_stock, closing.restore, closing.returns) == (True, [], [])

    refund = fulfil.package_refund(state, book, "INTERCEPTED", LATER)
    cancel = fulfil.cancel_packages(state, [book], [refund], LATER, MERCHANT, "INTERCEPTED")
    assert (cancel.release_stock, cancel.restore) == (False, taken[book])

    sent = shipped(state, "PHONE-1")
    refund = fulfil.package_refund(sent, phone, "REJECTED", LATER)
    on_its_way = fulfil.reject(sent, phone, refund, LATER, BUYER, restocked=False)
    assert on_its_way.restore == []  # the goods are not back yet
    assert fulfil.reject(sent, phone, refund, LATER, BUYER, restocked=True).restore == taken[phone]
    back = fulfil.confirm_return(on_its_way.state, phone, LATER, MERCHANT)
    assert back.restore == taken[phone]

    whole = fulfil.whole_refund(state, "BUYER_CANCELLED", LATER)
    cancelled = fulfil.cancel_paid(state, whole, LATER, BUYER, "changed my mind")
    assert sorted(cancelled.restore, key=str) == sorted(taken[book] + taken[phone], key=str)
