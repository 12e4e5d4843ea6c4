"""The order's lifecycle as pure functions: status derivation, transitions and timers."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from domain import order as rules
from domain.errors import DomainError, ErrorCode
from domain.models import (
    SYSTEM,
    Actor,
    Address,
    Allocation,
    CloseReason,
    FreightPolicy,
    OrderLine,
    OrderState,
    OrderStatus,
    OrderTimings,
    Package,
    PackageLine,
    PackageStatus,
    Payment,
    PaymentChannel,
    ProductType,
    Refund,
    StockPolicy,
    SubStatus,
)
from domain.order import Change, Deadline, DeadlineKind

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
BUYER = Actor(kind="buyer", id="buyer-1")
MERCHANT = Actor(kind="merchant", id="shop-1")
CARRIER = Actor(kind="carrier", id="sf")
ADDRESS = Address(
    name="Li Lei", phone="+86 138 0000 0000", line1="1 Road", city="Beijing", country="CN"
)

# sku -> (product type, unit price in cents)
CATALOG = {
    "BOOK-1": (ProductType.SELF, 3_000),
    "PEN-1": (ProductType.SELF, 500),
    "PHONE-1": (ProductType.DROPSHIP, 50_000),
    "CARD-1": (ProductType.VIRTUAL, 2_000),
    "TV-1": (ProductType.KEPLER, 120_000),
}
# sku -> location its stock comes from by default
HOME = {
    "BOOK-1": "WH-A",
    "PEN-1": "WH-A",
    "PHONE-1": "VENDOR-X",
    "CARD-1": "DIGITAL",
    "TV-1": "KEPLER-JD",
}


def line(sku: str, quantity: int = 1) -> OrderLine:
    kind, price = CATALOG[sku]
    return OrderLine(
        sku=sku,
        title=f"title of {sku}",
        product_type=kind,
        stock_policy=StockPolicy.LOCK_ON_ORDER,
        quantity=quantity,
        unit_price_cents=price,
    )


def placed(
    *lines: OrderLine,
    freight: int = 800,
    policy: FreightPolicy = FreightPolicy.ONE_PACKAGE,
    timings: OrderTimings | None = None,
    order_id: str = "O-1",
) -> OrderState:
    """An unpaid order; by default one SELF book and one drop-shipped phone."""
    lines = lines or (line("BOOK-1"), line("PHONE-1"))
    return rules.new_order(
        order_id=order_id,
        buyer_id="buyer-1",
        lines=list(lines),
        address=ADDRESS,
        freight_cents=freight,
        freight_policy=policy,
        allocations=[],
        low_stock=False,
        deadline=T0 + timedelta(days=1),
        timings=timings or OrderTimings(),
        now=T0,
        actor=BUYER,
    ).state


def home_allocations(state: OrderState) -> list[Allocation]:
    return [
        Allocation(sku=ln.sku, location=HOME[ln.sku], quantity=ln.quantity) for ln in state.lines
    ]


def payment_for(state: OrderState, txn_id: str = "TXN-1", amount: int | None = None) -> Payment:
    return Payment(
        channel=PaymentChannel.ALIPAY,
        txn_id=txn_id,
        amount_cents=state.total_cents if amount is None else amount,
        paid_at=T0 + timedelta(minutes=5),
    )


def paid(
    state: OrderState | None = None, allocations: list[Allocation] | None = None
) -> OrderState:
    """A paid order: package 1 is the phone (VENDOR-X), package 2 the book (WH-A) by default."""
    state = state or placed()
    allocations = allocations if allocations is not None else home_allocations(state)
    now = T0 + timedelta(minutes=5)
    return rules.mark_paid(state, payment_for(state), allocations, now, SYSTEM).state


def package_id(state: OrderState, sku: str) -> str:
    return next(p.id for p in state.packages if any(pl.sku == sku for pl in p.lines))


def pkg(state: OrderState, pid: str) -> Package:
    return next(p for p in state.packages if p.id == pid)


def shipped(state: OrderState, *skus: str, at: datetime | None = None) -> OrderState:
    """Ship the packages holding these SKUs (all packages when none named)."""
    at = at or T0 + timedelta(hours=2)
    ids = [package_id(state, s) for s in skus] if skus else [p.id for p in state.packages]
    for pid in ids:
        virtual = pkg(state, pid).product_type is ProductType.VIRTUAL
        carrier, tracking = (None, None) if virtual else ("SF", f"SF{pid}")
        state = rules.ship(state, pid, carrier, tracking, at, MERCHANT).state
    return state


def with_packages(
    *statuses: PackageStatus,
    is_paid: bool = True,
    close_reason: CloseReason | None = None,
    refund_statuses: tuple[str, ...] = (),
) -> OrderState:
    """An order whose packages are simply in the given statuses (for derive_status)."""
    s = placed()
    if is_paid:
        s.payment = payment_for(s)
    s.packages = [
        Package(
            id=f"O-1-{n}",
            location="WH-A",
            product_type=ProductType.SELF,
            status=status,
            lines=[PackageLine(sku="BOOK-1", quantity=1)],
            goods_cents=3_000,
        )
        for n, status in enumerate(statuses, start=1)
    ]
    s.close_reason = close_reason
    s.refunds = [
        Refund(
            id=f"R-{n}",
            txn_id="TXN-1",
            channel=PaymentChannel.ALIPAY,
            amount_cents=100,
            reason="test",
            status=status,
            created_at=T0,
        )
        for n, status in enumerate(refund_statuses, start=1)
    ]
    return s


P = PackageStatus


# ---- derive_status ----------------------------------------------------------------------


def test_an_unpaid_order_is_pending_payment() -> None:
    assert rules.derive_status(with_packages(is_paid=False)) == (OrderStatus.PENDING_PAYMENT, [])


def test_a_paid_order_with_no_package_shipped_is_pending_shipment() -> None:
    assert rules.derive_status(with_packages(P.PENDING, P.PENDING)) == (
        OrderStatus.PENDING_SHIPMENT,
        [],
    )


@pytest.mark.parametrize(
    "statuses",
    [(P.PENDING, P.SHIPPED), (P.DELIVERED, P.PENDING), (P.RECEIVED, P.PENDING)],
    ids=["shipped", "delivered", "received"],
)
def test_a_paid_order_with_some_packages_shipped_is_partially_shipped(
    statuses: tuple[PackageStatus, ...],
) -> None:
    assert rules.derive_status(with_packages(*statuses)) == (
        OrderStatus.PENDING_SHIPMENT,
        [SubStatus.PARTIALLY_SHIPPED],
    )


@pytest.mark.parametrize(
    "statuses",
    [(P.SHIPPED,), (P.SHIPPED, P.DELIVERED), (P.DELIVERED, P.RECEIVED)],
    ids=["one-shipped", "shipped-and-delivered", "delivered-and-received"],
)
def test_an_order_whose_live_packages_all_left_the_warehouse_is_shipped(
    statuses: tuple[PackageStatus, ...],
) -> None:
    assert rules.derive_status(with_packages(*statuses)) == (OrderStatus.SHIPPED, [])


def test_an_order_whose_live_packages_are_all_received_is_completed_and_awaits_review() -> None:
    assert rules.derive_status(with_packages(P.RECEIVED, P.RECEIVED)) == (
        OrderStatus.COMPLETED,
        [SubStatus.AWAITING_REVIEW],
    )


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((P.RECEIVED, P.REJECTED), (OrderStatus.COMPLETED, [SubStatus.AWAITING_REVIEW])),
        ((P.CANCELLED, P.RECEIVED), (OrderStatus.COMPLETED, [SubStatus.AWAITING_REVIEW])),
        ((P.SHIPPED, P.CANCELLED), (OrderStatus.SHIPPED, [])),
        ((P.REJECTED, P.DELIVERED), (OrderStatus.SHIPPED, [])),
        ((P.PENDING, P.REJECTED), (OrderStatus.PENDING_SHIPMENT, [])),
    ],
    ids=[
        "received+rejected",
        "cancelled+received",
        "shipped+cancelled",
        "rejected+delivered",
        "pending+rejected",
    ],
)
def test_rejected_and_cancelled_packages_are_not_live_and_do_not_hold_the_order_back(
    statuses: tuple[PackageStatus, ...], expected: tuple[OrderStatus, list[SubStatus]]
) -> None:
    assert rules.derive_status(with_packages(*statuses)) == expected


def test_live_packages_excludes_rejected_and_cancelled_ones() -> None:
    s = with_packages(P.SHIPPED, P.REJECTED, P.CANCELLED, P.PENDING)
    assert [p.status for p in rules.live_packages(s)] == [P.SHIPPED, P.PENDING]


@pytest.mark.parametrize("is_paid", [False, True], ids=["unpaid", "paid"])
def test_a_close_reason_makes_the_order_closed_whatever_its_packages(is_paid: bool) -> None:
    s = with_packages(P.RECEIVED, is_paid=is_paid, close_reason=CloseReason.FULLY_REFUNDED)
    assert rules.derive_status(s) == (OrderStatus.CLOSED, [])


def test_a_pending_refund_adds_the_refunding_sub_status() -> None:
    s = with_packages(P.PENDING, refund_statuses=("PENDING",))
    assert rules.derive_status(s) == (OrderStatus.PENDING_SHIPMENT, [SubStatus.REFUNDING])


def test_refunding_sits_beside_partially_shipped_and_awaiting_review() -> None:
    partial = with_packages(P.PENDING, P.SHIPPED, refund_statuses=("PENDING",))
    done = with_packages(P.RECEIVED, refund_statuses=("PENDING",))
    assert rules.derive_status(partial) == (
        OrderStatus.PENDING_SHIPMENT,
        [SubStatus.PARTIALLY_SHIPPED, SubStatus.REFUNDING],
    )
    assert rules.derive_status(done) == (
        OrderStatus.COMPLETED,
        [SubStatus.REFUNDING, SubStatus.AWAITING_REVIEW],
    )


def test_a_closed_order_with_a_pending_refund_shows_refunding() -> None:
    s = with_packages(
        is_paid=True, close_reason=CloseReason.BUYER_CANCELLED, refund_statuses=("PENDING",)
    )
    assert rules.derive_status(s) == (OrderStatus.CLOSED, [SubStatus.REFUNDING])


def test_a_finished_refund_is_not_refunding() -> None:
    s = with_packages(P.SHIPPED, refund_statuses=("SUCCEEDED",))
    assert rules.derive_status(s) == (OrderStatus.SHIPPED, [])


# ---- placement --------------------------------------------------------------------------


def test_a_new_order_starts_at_version_one_pending_payment() -> None:
    s = placed()
    assert s.version == 1
    assert s.status is OrderStatus.PENDING_PAYMENT
    assert s.sub_statuses == []
    assert s.packages == []
    assert s.created_at == s.updated_at == T0


def test_a_new_order_totals_goods_plus_freight() -> None:
    s = placed(line("BOOK-1", 2), line("PHONE-1"), line("PEN-1", 3), freight=800)
    assert s.goods_cents == 2 * 3_000 + 50_000 + 3 * 500
    assert s.freight_cents == 800
    assert s.total_cents == s.goods_cents + 800 == 58_300


def test_placing_an_order_logs_a_placed_event_at_version_one() -> None:
    change = rules.new_order(
        order_id="O-9",
        buyer_id="buyer-1",
        lines=[line("BOOK-1")],
        address=ADDRESS,
        freight_cents=0,
        freight_policy=FreightPolicy.SPLIT,
        allocations=[Allocation(sku="BOOK-1", location="WH-A", quantity=1)],
        low_stock=True,
        deadline=T0 + timedelta(minutes=15),
        timings=OrderTimings(),
        now=T0,
        actor=BUYER,
    )
    assert change.event.type == "PLACED"
    assert (change.event.order_id, change.event.version) == ("O-9", 1)
    assert (change.event.actor, change.event.at) == (BUYER, T0)
    assert change.event.data == {"total_cents": 3_000}
    assert change.state.low_stock is True
    assert change.state.payment_deadline == T0 + timedelta(minutes=15)
    assert change.state.freight_policy is FreightPolicy.SPLIT


def test_the_payment_deadline_is_the_deployment_window_without_flash_sale_skus() -> None:
    timings = OrderTimings(payment_window_seconds=86_400)
    assert rules.payment_deadline(T0, timings, [None, None]) == T0 + timedelta(hours=24)
    assert rules.payment_deadline(T0, timings, []) == T0 + timedelta(hours=24)


def test_the_payment_deadline_takes_the_shortest_flash_sale_window() -> None:
    timings = OrderTimings(payment_window_seconds=86_400)
    assert rules.payment_deadline(T0, timings, [None, 30, 15, 60]) == T0 + timedelta(minutes=15)


def test_a_sku_window_longer_than_the_deployments_does_not_extend_the_deadline() -> None:
    timings = OrderTimings(payment_window_seconds=3_600)
    assert rules.payment_deadline(T0, timings, [24 * 60]) == T0 + timedelta(hours=1)


# ---- payment ----------------------------------------------------------------------------


def test_payment_splits_packages_one_per_location_and_product_type() -> None:
    s = placed(line("BOOK-1", 3), line("PEN-1"), line("PHONE-1"), line("CARD-1"))
    allocations = [
        Allocation(sku="BOOK-1", location="WH-A", quantity=2),
        Allocation(sku="BOOK-1", location="WH-B", quantity=1),
        Allocation(sku="PEN-1", location="WH-A", quantity=1),
        Allocation(sku="PHONE-1", location="VENDOR-X", quantity=1),
        Allocation(sku="CARD-1", location="WH-A", quantity=1),  # same place, other type
    ]
    after = paid(s, allocations)
    got = {
        (p.location, p.product_type): sorted((pl.sku, pl.quantity) for pl in p.lines)
        for p in after.packages
    }
    assert got == {
        ("WH-A", ProductType.SELF): [("BOOK-1", 2), ("PEN-1", 1)],
        ("WH-A", ProductType.VIRTUAL): [("CARD-1", 1)],
        ("WH-B", ProductType.SELF): [("BOOK-1", 1)],
        ("VENDOR-X", ProductType.DROPSHIP): [("PHONE-1", 1)],
    }
    assert len(after.packages) == 4


def test_packages_are_numbered_after_the_order_from_one() -> None:
    s = placed(line("BOOK-1"), line("PHONE-1"), line("CARD-1"), order_id="ORD-77")
    after = paid(s)
    assert [p.id for p in after.packages] == ["ORD-77-1", "ORD-77-2", "ORD-77-3"]
    assert all(p.status is P.PENDING for p in after.packages)


def test_package_goods_add_up_to_the_order_goods() -> None:
    s = placed(line("BOOK-1", 2), line("PEN-1", 4), line("PHONE-1"))
    after = paid(s)
    assert {p.location: p.goods_cents for p in after.packages} == {
        "WH-A": 2 * 3_000 + 4 * 500,
        "VENDOR-X": 50_000,
    }
    assert sum(p.goods_cents for p in after.packages) == s.goods_cents


@pytest.mark.parametrize("policy", list(FreightPolicy))
def test_package_freight_shares_sum_to_the_order_freight(policy: FreightPolicy) -> None:
    s = placed(line("BOOK-1"), line("PHONE-1"), line("CARD-1"), freight=1_001, policy=policy)
    after = paid(s)
    assert sum(p.freight_cents for p in after.packages) == 1_001


def test_one_package_freight_lands_on_the_most_valuable_package() -> None:
    after = paid(placed(line("BOOK-1"), line("PHONE-1"), freight=800))
    assert {p.location: p.freight_cents for p in after.packages} == {"VENDOR-X": 800, "WH-A": 0}


def test_paying_moves_the_order_to_pending_shipment_and_logs_a_paid_event() -> None:
    s = placed()
    payment = payment_for(s)
    now = T0 + timedelta(minutes=5)
    change = rules.mark_paid(s, payment, home_allocations(s), now, SYSTEM)
    after = change.state
    assert after.status is OrderStatus.PENDING_SHIPMENT
    assert after.payment == payment
    assert after.paid_cents == s.total_cents
    assert after.allocations == home_allocations(s)
    assert change.event.type == "PAID"
    assert change.event.version == after.version == 2
    assert change.event.data == {
        "channel": PaymentChannel.ALIPAY,
        "txn_id": "TXN-1",
        "amount_cents": s.total_cents,
        "packages": ["O-1-1", "O-1-2"],
    }


def test_a_paid_order_cannot_be_paid_again() -> None:
    s = paid()
    with pytest.raises(DomainError, match="only an unpaid order can be paid") as err:
        rules.mark_paid(s, payment_for(s, "TXN-2"), home_allocations(s), T0, SYSTEM)
    assert err.value.code is ErrorCode.INVALID_TRANSITION


def test_a_closed_order_cannot_be_paid() -> None:
    s = rules.close(placed(), CloseReason.PAYMENT_TIMEOUT, T0, SYSTEM).state
    with pytest.raises(DomainError, match="order is CLOSED, only an unpaid order"):
        rules.check_can_pay(s)


def test_a_matching_payment_for_an_unpaid_order_has_no_problem() -> None:
    s = placed()
    assert rules.payment_problem(s, payment_for(s)) is None


@pytest.mark.parametrize("delta", [-1, 1, -800])
def test_a_payment_of_the_wrong_amount_is_refused_as_wrong_amount(delta: int) -> None:
    s = placed()
    assert rules.payment_problem(s, payment_for(s, amount=s.total_cents + delta)) == "WRONG_AMOUNT"


def test_a_payment_for_a_closed_order_is_refused_as_order_closed() -> None:
    s = rules.close(placed(), CloseReason.PAYMENT_TIMEOUT, T0, SYSTEM).state
    assert rules.payment_problem(s, payment_for(s)) == "ORDER_CLOSED"


def test_a_second_payment_for_a_paid_order_is_refused_as_already_paid() -> None:
    s = paid()
    assert rules.payment_problem(s, payment_for(s, txn_id="TXN-OTHER")) == "ALREADY_PAID"


# ---- shipping ---------------------------------------------------------------------------


def test_an_unpaid_order_cannot_ship() -> None:
    s = placed()
    with pytest.raises(DomainError, match="only a paid, unshipped order ships") as err:
        rules.check_can_ship(s, "O-1-1", "SF", "SF1")
    assert err.value.code is ErrorCode.INVALID_TRANSITION


def test_a_package_cannot_ship_twice() -> None:
    s = shipped(paid(), "BOOK-1")
    book = package_id(s, "BOOK-1")
    with pytest.raises(DomainError, match=f"package {book} is SHIPPED, not PENDING"):
        rules.ship(s, book, "SF", "SF2", T0 + timedelta(hours=3), MERCHANT)


def test_a_fully_shipped_order_cannot_ship_again() -> None:
    s = shipped(paid(placed(line("BOOK-1"))))
    with pytest.raises(DomainError, match="order is SHIPPED; only a paid, unshipped order ships"):
        rules.ship(s, "O-1-1", "SF", "SF2", T0 + timedelta(hours=3), MERCHANT)


def test_shipping_an_unknown_package_is_refused() -> None:
    with pytest.raises(DomainError, match="order O-1 has no package O-1-9"):
        rules.ship(paid(), "O-1-9", "SF", "SF1", T0, MERCHANT)


@pytest.mark.parametrize(
    ("carrier", "tracking_no"),
    [(None, None), ("SF", None), (None, "SF123"), ("", ""), ("SF", "")],
)
def test_physical_goods_need_a_carrier_and_a_tracking_number(
    carrier: str | None, tracking_no: str | None
) -> None:
    s = paid()
    with pytest.raises(DomainError, match="physical goods ship with a carrier and a tracking"):
        rules.ship(s, package_id(s, "BOOK-1"), carrier, tracking_no, T0, MERCHANT)


def test_shipping_physical_goods_records_the_carrier_and_starts_auto_confirm() -> None:
    timings = OrderTimings(auto_confirm_seconds=3_600)
    s = paid(placed(timings=timings))
    book = package_id(s, "BOOK-1")
    now = T0 + timedelta(hours=2)
    change = rules.ship(s, book, "SF", "SF123", now, MERCHANT)
    p = pkg(change.state, book)
    assert p.status is P.SHIPPED
    assert (p.carrier, p.tracking_no, p.shipped_at) == ("SF", "SF123", now)
    assert p.delivered_at is None
    assert p.auto_confirm_at == now + timedelta(seconds=3_600)
    assert change.event.type == "PACKAGE_SHIPPED"
    assert change.event.data == {"package_id": book, "carrier": "SF", "tracking_no": "SF123"}


def test_virtual_goods_ship_without_logistics_and_are_delivered_at_once() -> None:
    s = paid(placed(line("CARD-1")))
    now = T0 + timedelta(hours=1)
    change = rules.ship(s, "O-1-1", None, None, now, MERCHANT)
    p = pkg(change.state, "O-1-1")
    assert p.status is P.DELIVERED
    assert p.shipped_at == p.delivered_at == now
    assert (p.carrier, p.tracking_no) == (None, None)
    assert p.auto_confirm_at == now + timedelta(seconds=OrderTimings().auto_confirm_seconds)
    assert change.state.status is OrderStatus.SHIPPED


def test_shipping_one_of_two_packages_leaves_the_order_partially_shipped() -> None:
    s = shipped(paid(), "BOOK-1")
    assert s.status is OrderStatus.PENDING_SHIPMENT
    assert s.sub_statuses == [SubStatus.PARTIALLY_SHIPPED]
    assert pkg(s, package_id(s, "PHONE-1")).status is P.PENDING


def test_shipping_every_package_makes_the_order_shipped() -> None:
    s = shipped(paid())
    assert (s.status, s.sub_statuses) == (OrderStatus.SHIPPED, [])


# ---- receipt ----------------------------------------------------------------------------


def test_confirming_receipt_without_a_choice_receives_every_package_awaiting_it() -> None:
    s = paid(placed(line("BOOK-1"), line("PHONE-1"), line("CARD-1")))
    s = shipped(s, "BOOK-1", "CARD-1")
    now = T0 + timedelta(days=1)
    change = rules.confirm_receipt(s, None, now, BUYER, how="button")
    after = change.state
    for sku in ("BOOK-1", "CARD-1"):
        p = pkg(after, package_id(after, sku))
        assert (p.status, p.received_at, p.auto_confirm_at) == (P.RECEIVED, now, None)
    assert pkg(after, package_id(after, "PHONE-1")).status is P.PENDING
    assert after.status is OrderStatus.PENDING_SHIPMENT
    assert change.event.type == "RECEIPT_CONFIRMED"
    assert change.event.data == {
        "package_ids": [package_id(s, "CARD-1"), package_id(s, "BOOK-1")],
        "how": "button",
    }


def test_confirming_receipt_of_chosen_packages_leaves_the_others_awaiting() -> None:
    s = shipped(paid())
    book, phone = package_id(s, "BOOK-1"), package_id(s, "PHONE-1")
    after = rules.confirm_receipt(s, [book], T0 + timedelta(days=1), BUYER, how="button").state
    assert pkg(after, book).status is P.RECEIVED
    assert pkg(after, phone).status is P.SHIPPED
    assert pkg(after, phone).auto_confirm_at is not None
    assert after.status is OrderStatus.SHIPPED
    assert after.completed_at is None


def test_a_package_named_twice_is_confirmed_once() -> None:
    s = shipped(paid())
    book = package_id(s, "BOOK-1")
    change = rules.confirm_receipt(s, [book, book], T0 + timedelta(days=1), BUYER, how="button")
    assert change.event.data["package_ids"] == [book]


def test_receiving_every_live_package_completes_the_order() -> None:
    s = shipped(paid())
    now = T0 + timedelta(days=2)
    after = rules.confirm_receipt(s, None, now, BUYER, how="button").state
    assert after.status is OrderStatus.COMPLETED
    assert after.sub_statuses == [SubStatus.AWAITING_REVIEW]
    assert after.completed_at == now


def test_confirming_receipt_is_refused_when_nothing_awaits_receipt() -> None:
    with pytest.raises(DomainError, match="no shipped package is awaiting receipt"):
        rules.confirm_receipt(paid(), None, T0, BUYER, how="button")


def test_confirming_receipt_of_an_unshipped_package_is_refused() -> None:
    s = shipped(paid(), "BOOK-1")
    phone = package_id(s, "PHONE-1")
    with pytest.raises(DomainError, match=f"package {phone} is not awaiting receipt"):
        rules.confirm_receipt(s, [phone], T0, BUYER, how="button")


def test_confirming_receipt_of_an_unpaid_order_is_refused() -> None:
    with pytest.raises(DomainError, match="order is PENDING_PAYMENT; nothing is awaiting receipt"):
        rules.confirm_receipt(placed(), None, T0, BUYER, how="button")


def test_confirming_receipt_of_a_completed_order_is_refused() -> None:
    s = rules.confirm_receipt(shipped(paid()), None, T0 + timedelta(days=1), BUYER, "button").state
    with pytest.raises(DomainError, match="order is COMPLETED; nothing is awaiting receipt"):
        rules.confirm_receipt(s, None, T0 + timedelta(days=2), BUYER, how="button")


# ---- carrier sign-off -------------------------------------------------------------------


def test_carrier_sign_off_is_receipt_itself_for_self_operated_goods() -> None:
    s = shipped(paid(placed(line("BOOK-1"))))
    now = T0 + timedelta(days=1)
    change = rules.carrier_delivered(s, "O-1-1", now, CARRIER)
    assert change is not None
    p = pkg(change.state, "O-1-1")
    assert (p.status, p.received_at) == (P.RECEIVED, now)
    assert change.state.status is OrderStatus.COMPLETED
    assert change.event.type == "RECEIPT_CONFIRMED"
    assert change.event.data == {"package_ids": ["O-1-1"], "how": "carrier sign-off"}


def test_carrier_sign_off_only_marks_drop_shipped_goods_delivered() -> None:
    s = shipped(paid(placed(line("PHONE-1"))))
    now = T0 + timedelta(days=1)
    change = rules.carrier_delivered(s, "O-1-1", now, CARRIER)
    assert change is not None
    p = pkg(change.state, "O-1-1")
    assert (p.status, p.delivered_at, p.received_at) == (P.DELIVERED, now, None)
    assert p.auto_confirm_at == pkg(s, "O-1-1").auto_confirm_at
    assert change.state.status is OrderStatus.SHIPPED
    assert change.event.type == "PACKAGE_DELIVERED"
    assert change.event.data == {"package_id": "O-1-1"}


@pytest.mark.parametrize("sku", ["BOOK-1", "PHONE-1"])
def test_a_repeated_carrier_sign_off_changes_nothing(sku: str) -> None:
    s = shipped(paid(placed(line(sku))))
    once = rules.carrier_delivered(s, "O-1-1", T0 + timedelta(days=1), CARRIER)
    assert once is not None
    assert rules.carrier_delivered(once.state, "O-1-1", T0 + timedelta(days=2), CARRIER) is None


def test_carrier_news_about_an_unshipped_package_changes_nothing() -> None:
    assert rules.carrier_delivered(paid(), "O-1-1", T0, CARRIER) is None


# ---- extending receipt ------------------------------------------------------------------


def test_extending_receipt_pushes_back_auto_confirm_of_awaiting_packages_only() -> None:
    timings = OrderTimings(auto_confirm_seconds=1_000, receipt_extension_seconds=500)
    s = paid(placed(line("BOOK-1"), line("PHONE-1"), line("CARD-1"), timings=timings))
    at = T0 + timedelta(hours=1)
    s = shipped(s, "BOOK-1", "PHONE-1", at=at)
    book = package_id(s, "BOOK-1")
    s = rules.confirm_receipt(s, [book], at, BUYER, how="button").state
    change = rules.extend_receipt(s, at + timedelta(seconds=10), BUYER)
    after = change.state
    assert after.receipt_extended is True
    assert pkg(after, package_id(s, "PHONE-1")).auto_confirm_at == at + timedelta(seconds=1_500)
    assert pkg(after, book).auto_confirm_at is None
    assert pkg(after, package_id(s, "CARD-1")).auto_confirm_at is None
    assert change.event.type == "RECEIPT_EXTENDED"
    assert change.event.data == {"seconds": 500}


def test_receipt_can_be_extended_only_once() -> None:
    s = rules.extend_receipt(shipped(paid()), T0 + timedelta(days=1), BUYER).state
    with pytest.raises(DomainError, match="receipt can be extended only once"):
        rules.extend_receipt(s, T0 + timedelta(days=2), BUYER)


def test_extending_receipt_is_refused_when_nothing_awaits_receipt() -> None:
    with pytest.raises(DomainError, match="no shipped package is awaiting receipt"):
        rules.extend_receipt(paid(), T0, BUYER)


# ---- closing ----------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [CloseReason.BUYER_CANCELLED, CloseReason.SELLER_CLOSED])
def test_an_unpaid_order_may_be_closed(reason: CloseReason) -> None:
    s = placed()
    rules.check_can_close(s, reason)  # the refusals are tested below; here it lets through
    now = T0 + timedelta(minutes=3)
    change = rules.close(s, reason, now, BUYER, note="changed my mind")
    assert change.state.status is OrderStatus.CLOSED
    assert (change.state.close_reason, change.state.closed_at) == (reason, now)
    assert change.event.type == "CLOSED"
    assert change.event.data == {"reason": reason, "note": "changed my mind"}


@pytest.mark.parametrize(
    ("reason", "verb"),
    [(CloseReason.BUYER_CANCELLED, "cancelled"), (CloseReason.SELLER_CLOSED, "closed")],
)
def test_a_paid_order_cannot_be_closed_and_the_refusal_suggests_a_refund(
    reason: CloseReason, verb: str
) -> None:
    with pytest.raises(DomainError, match=rf"cannot be {verb} \(ask for a refund instead\)") as e:
        rules.check_can_close(paid(), reason)
    assert e.value.code is ErrorCode.INVALID_TRANSITION
    assert str(e.value).startswith("order is PENDING_SHIPMENT")


def test_refusing_to_close_a_closed_unpaid_order_suggests_no_refund() -> None:
    s = rules.close(placed(), CloseReason.PAYMENT_TIMEOUT, T0, SYSTEM).state
    with pytest.raises(DomainError, match=r"^order is CLOSED and cannot be cancelled$"):
        rules.check_can_close(s, CloseReason.BUYER_CANCELLED)


def test_a_closed_order_cannot_be_closed_again() -> None:
    s = rules.close(placed(), CloseReason.PAYMENT_TIMEOUT, T0, SYSTEM).state
    with pytest.raises(DomainError, match="order is already closed"):
        rules.close(s, CloseReason.SELLER_CLOSED, T0, MERCHANT)


# ---- timers -----------------------------------------------------------------------------


def test_an_unpaid_orders_next_deadline_is_its_payment_deadline() -> None:
    s = placed()
    assert rules.next_deadline(s) == Deadline(DeadlineKind.PAYMENT, T0 + timedelta(days=1))


def test_the_payment_deadline_closes_an_unpaid_order_as_payment_timeout() -> None:
    s = placed()
    deadline = rules.next_deadline(s)
    assert deadline is not None
    change = rules.on_deadline(s, deadline, deadline.at)
    assert change is not None
    assert change.state.status is OrderStatus.CLOSED
    assert change.state.close_reason is CloseReason.PAYMENT_TIMEOUT
    assert change.state.closed_at == deadline.at
    assert change.event.actor == SYSTEM


def test_a_payment_deadline_firing_after_payment_does_nothing() -> None:
    deadline = Deadline(DeadlineKind.PAYMENT, T0 + timedelta(days=1))
    assert rules.on_deadline(paid(), deadline, deadline.at) is None


def test_a_paid_order_with_nothing_shipped_has_no_deadline() -> None:
    assert rules.next_deadline(paid()) is None


def test_the_next_auto_confirm_deadline_is_the_earliest_shipped_package() -> None:
    timings = OrderTimings(auto_confirm_seconds=10_000)
    s = paid(placed(timings=timings))
    first, second = T0 + timedelta(hours=1), T0 + timedelta(hours=5)
    s = shipped(shipped(s, "PHONE-1", at=second), "BOOK-1", at=first)
    assert rules.next_deadline(s) == Deadline(
        DeadlineKind.AUTO_CONFIRM, first + timedelta(seconds=10_000)
    )


def test_auto_confirm_receives_only_packages_whose_time_has_come() -> None:
    timings = OrderTimings(auto_confirm_seconds=10_000)
    s = paid(placed(timings=timings))
    first, second = T0 + timedelta(hours=1), T0 + timedelta(hours=5)
    s = shipped(shipped(s, "BOOK-1", at=first), "PHONE-1", at=second)
    deadline = rules.next_deadline(s)
    assert deadline is not None
    change = rules.on_deadline(s, deadline, deadline.at)
    assert change is not None
    book, phone = package_id(s, "BOOK-1"), package_id(s, "PHONE-1")
    assert pkg(change.state, book).status is P.RECEIVED
    assert pkg(change.state, phone).status is P.SHIPPED
    assert change.state.status is OrderStatus.SHIPPED
    assert change.event.data == {"package_ids": [book], "how": "automatic"}
    assert change.event.actor == SYSTEM
    assert rules.next_deadline(change.state) == Deadline(
        DeadlineKind.AUTO_CONFIRM, second + timedelta(seconds=10_000)
    )


def test_an_auto_confirm_deadline_firing_early_does_nothing() -> None:
    s = shipped(paid())
    deadline = rules.next_deadline(s)
    assert deadline is not None
    assert rules.on_deadline(s, deadline, deadline.at - timedelta(seconds=1)) is None


def test_a_completed_order_finishes_after_the_after_sales_window() -> None:
    timings = OrderTimings(after_sales_window_seconds=7_200)
    done_at = T0 + timedelta(days=3)
    s = rules.confirm_receipt(
        shipped(paid(placed(timings=timings))), None, done_at, BUYER, "b"
    ).state
    finish = done_at + timedelta(seconds=7_200)
    assert rules.next_deadline(s) == Deadline(DeadlineKind.FINISH, finish)
    assert rules.on_deadline(s, Deadline(DeadlineKind.FINISH, finish), finish) is None
    assert rules.is_finished(s, finish - timedelta(seconds=1)) is False
    assert rules.is_finished(s, finish) is True
    assert rules.is_finished(s, finish + timedelta(days=1)) is True


def test_a_closed_order_is_finished_at_once() -> None:
    s = rules.close(placed(), CloseReason.BUYER_CANCELLED, T0, BUYER).state
    assert rules.is_finished(s, T0) is True


@pytest.mark.parametrize(
    "build",
    [placed, paid, lambda: shipped(paid())],
    ids=["unpaid", "paid", "shipped"],
)
def test_an_open_order_is_not_finished(build: Callable[[], OrderState]) -> None:
    assert rules.is_finished(build(), T0 + timedelta(days=365)) is False


def test_deadlines_describe_themselves() -> None:
    assert Deadline(DeadlineKind.PAYMENT, T0).describe() == "close if unpaid"
    assert Deadline(DeadlineKind.AUTO_CONFIRM, T0).describe() == "confirm receipt automatically"
    assert Deadline(DeadlineKind.FINISH, T0).describe() == "end of the after-sales window"


# ---- every transition copies and bumps the version by one -------------------------------

LATER = T0 + timedelta(days=30)


def _refund() -> Refund:
    return Refund(
        id="R-1",
        txn_id="TXN-1",
        channel=PaymentChannel.ALIPAY,
        amount_cents=3_000,
        goods_cents=3_000,
        reason="broken",
        status="PENDING",
        created_at=LATER,
    )


TRANSITIONS: dict[str, tuple[Callable[[], OrderState], Callable[[OrderState], Change | None]]] = {
    "mark_paid": (
        placed,
        lambda s: rules.mark_paid(s, payment_for(s), home_allocations(s), LATER, SYSTEM),
    ),
    "ship": (paid, lambda s: rules.ship(s, "O-1-1", "SF", "SF1", LATER, MERCHANT)),
    "confirm_receipt": (
        lambda: shipped(paid()),
        lambda s: rules.confirm_receipt(s, None, LATER, BUYER, how="button"),
    ),
    "carrier_delivered_self": (
        lambda: shipped(paid()),
        lambda s: rules.carrier_delivered(s, package_id(s, "BOOK-1"), LATER, CARRIER),
    ),
    "carrier_delivered_dropship": (
        lambda: shipped(paid()),
        lambda s: rules.carrier_delivered(s, package_id(s, "PHONE-1"), LATER, CARRIER),
    ),
    "extend_receipt": (lambda: shipped(paid()), lambda s: rules.extend_receipt(s, LATER, BUYER)),
    "close": (placed, lambda s: rules.close(s, CloseReason.SELLER_CLOSED, LATER, MERCHANT)),
    "payment_timeout": (
        placed,
        lambda s: rules.on_deadline(s, Deadline(DeadlineKind.PAYMENT, LATER), LATER),
    ),
    "auto_confirm": (
        lambda: shipped(paid()),
        lambda s: rules.on_deadline(s, Deadline(DeadlineKind.AUTO_CONFIRM, LATER), LATER),
    ),
    "add_refund": (paid, lambda s: rules.add_refund(s, _refund(), LATER, BUYER)),
}


@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_a_transition_copies_its_input_and_bumps_the_version_by_exactly_one(name: str) -> None:
    build, transition = TRANSITIONS[name]
    before = build()
    snapshot = before.model_dump()
    change = transition(before)
    assert change is not None
    assert before.model_dump() == snapshot
    assert change.state is not before
    assert change.state.version == before.version + 1
    assert change.event.version == change.state.version
    assert change.event.order_id == before.id
    assert change.event.at == change.state.updated_at == LATER


def test_a_pending_refund_shows_refunding_and_counts_refunded_money() -> None:
    change = rules.add_refund(paid(), _refund(), LATER, BUYER)
    assert change.state.refunded_cents == 3_000
    assert change.state.sub_statuses == [SubStatus.REFUNDING]
    assert change.event.type == "REFUNDED"
    assert change.event.data["id"] == "R-1"


# ---- a passed FINISH deadline finishes the order, under the old rule and the new ----------
# (orders started before `finish-waits-while-held-open` replay under the old rule: a FINISH
# deadline that passed without finishing them would spin their workflow forever)


def _completed(timings: OrderTimings) -> OrderState:
    s = shipped(paid(placed(timings=timings)))
    return rules.confirm_receipt(s, None, T0 + timedelta(days=3), BUYER, "b").state


def _with_refund(state: OrderState, status: str) -> OrderState:
    refund = Refund(
        id=f"R-{status}",
        txn_id="TXN-1",
        channel=PaymentChannel.ALIPAY,
        amount_cents=100,
        reason="AFTER_SALES",
        status=status,
        failure="refused" if status == "FAILED" else None,
        created_at=T0 + timedelta(days=3),
    )
    return rules.add_refund(state, refund, T0 + timedelta(days=3), SYSTEM).state


FINISH_CASES: dict[str, Callable[[OrderState], OrderState]] = {
    "completed": lambda s: s,
    "completed with a FAILED refund": lambda s: _with_refund(s, "FAILED"),
    "completed with a PENDING refund": lambda s: _with_refund(s, "PENDING"),
    "completed with a SUCCEEDED refund": lambda s: _with_refund(s, "SUCCEEDED"),
}


@pytest.mark.parametrize("hold", [True, False], ids=["new rule", "old rule"])
@pytest.mark.parametrize("case", FINISH_CASES, ids=list(FINISH_CASES))
@pytest.mark.parametrize("after", [0, 1, 86_400 * 400])
def test_a_passed_finish_deadline_finishes_the_order_under_its_own_rule(
    hold: bool, case: str, after: int
) -> None:
    s = FINISH_CASES[case](_completed(OrderTimings(after_sales_window_seconds=7_200)))
    deadline = rules.next_deadline(s, hold_finish=hold)
    if deadline is None:  # held open (new rule): nothing is timed, nothing can spin
        assert hold and rules.held_open(s)
        assert rules.is_finished(s, LATER + timedelta(days=400), hold=hold) is False
        return
    assert deadline.kind is DeadlineKind.FINISH
    now = deadline.at + timedelta(seconds=after)
    assert rules.on_deadline(s, deadline, now) is None  # the timer itself changes nothing...
    assert rules.is_finished(s, now, hold=hold) is True  # ...so the order must be finished


def test_the_old_rule_finishes_a_completed_order_holding_a_failed_refund() -> None:
    """The livelock found by reading: under the old rule this order never finished."""
    s = _with_refund(_completed(OrderTimings(after_sales_window_seconds=60)), "FAILED")
    finish = T0 + timedelta(days=3, seconds=60)
    assert rules.is_finished(s, finish, hold=False) is True
    assert rules.is_finished(s, finish, hold=True) is False
    assert rules.next_deadline(s, hold_finish=True) is None
