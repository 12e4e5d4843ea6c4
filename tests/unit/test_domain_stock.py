"""Stock allocation across locations, cart merging, purchase limits and the low-stock hint."""

import pytest

from domain.errors import DomainError, ErrorCode
from domain.models import Allocation
from domain.stock import (
    InsufficientStock,
    Shortfall,
    allocate,
    check_limit,
    is_low_stock,
    quantities,
)


def test_allocation_takes_everything_from_the_fullest_location_when_it_suffices() -> None:
    available = {("BOOK-1", "WH-A"): 3, ("BOOK-1", "WH-B"): 10, ("BOOK-1", "WH-C"): 5}
    assert allocate({"BOOK-1": 4}, available) == [
        Allocation(sku="BOOK-1", location="WH-B", quantity=4)
    ]


def test_allocation_breaks_ties_between_equally_full_locations_by_name() -> None:
    available = {("BOOK-1", "WH-B"): 5, ("BOOK-1", "WH-A"): 5}
    assert allocate({"BOOK-1": 2}, available) == [
        Allocation(sku="BOOK-1", location="WH-A", quantity=2)
    ]


def test_allocation_tops_up_from_a_second_location() -> None:
    available = {("BOOK-1", "WH-A"): 3, ("BOOK-1", "WH-B"): 2}
    assert allocate({"BOOK-1": 5}, available) == [
        Allocation(sku="BOOK-1", location="WH-A", quantity=3),
        Allocation(sku="BOOK-1", location="WH-B", quantity=2),
    ]


def test_allocation_tops_up_across_three_locations_fullest_first() -> None:
    available = {("PEN-1", "WH-A"): 1, ("PEN-1", "WH-B"): 4, ("PEN-1", "WH-C"): 2}
    assert allocate({"PEN-1": 6}, available) == [
        Allocation(sku="PEN-1", location="WH-B", quantity=4),
        Allocation(sku="PEN-1", location="WH-C", quantity=2),
    ]


def test_allocation_serves_every_sku_from_its_own_rows() -> None:
    available = {("BOOK-1", "WH-A"): 5, ("PEN-1", "WH-A"): 1, ("PEN-1", "WH-B"): 1}
    result = allocate({"PEN-1": 2, "BOOK-1": 1}, available)
    assert result == [
        Allocation(sku="BOOK-1", location="WH-A", quantity=1),
        Allocation(sku="PEN-1", location="WH-A", quantity=1),
        Allocation(sku="PEN-1", location="WH-B", quantity=1),
    ]


def test_allocation_never_takes_more_than_a_location_has() -> None:
    available = {("BOOK-1", "WH-A"): 7, ("BOOK-1", "WH-B"): 6, ("BOOK-1", "WH-C"): 1}
    result = allocate({"BOOK-1": 14}, available)
    assert sum(a.quantity for a in result) == 14
    for a in result:
        assert 0 < a.quantity <= available[(a.sku, a.location)]


def test_allocation_refuses_only_when_all_locations_together_are_short() -> None:
    available = {("BOOK-1", "WH-A"): 3, ("BOOK-1", "WH-B"): 2}
    with pytest.raises(InsufficientStock, match=r"BOOK-1 \(want 6, have 5\)") as err:
        allocate({"BOOK-1": 6}, available)
    assert err.value.code is ErrorCode.OUT_OF_STOCK
    assert err.value.shortfalls == [Shortfall("BOOK-1", 6, 5)]


def test_allocation_lists_every_short_sku_at_once() -> None:
    available = {("BOOK-1", "WH-A"): 1, ("PEN-1", "WH-A"): 10, ("PHONE-1", "V-1"): 0}
    with pytest.raises(
        InsufficientStock,
        match=r"^not enough stock: BOOK-1 \(want 2, have 1\), PHONE-1 \(want 1, have 0\)$",
    ) as err:
        allocate({"PHONE-1": 1, "BOOK-1": 2, "PEN-1": 3}, available)
    assert isinstance(err.value, DomainError)
    assert err.value.code is ErrorCode.OUT_OF_STOCK
    assert err.value.shortfalls == [Shortfall("BOOK-1", 2, 1), Shortfall("PHONE-1", 1, 0)]
    assert err.value.details == {
        "shortfalls": [
            {"sku": "BOOK-1", "requested": 2, "available": 1},
            {"sku": "PHONE-1", "requested": 1, "available": 0},
        ]
    }


def test_an_unknown_sku_is_short_with_nothing_available() -> None:
    with pytest.raises(InsufficientStock, match=r"GHOST-1 \(want 1, have 0\)"):
        allocate({"GHOST-1": 1}, {("BOOK-1", "WH-A"): 5})


def test_allocation_ignores_locations_with_zero_or_negative_free_stock() -> None:
    available = {("BOOK-1", "WH-A"): 0, ("BOOK-1", "WH-B"): -4, ("BOOK-1", "WH-C"): 2}
    assert allocate({"BOOK-1": 2}, available) == [
        Allocation(sku="BOOK-1", location="WH-C", quantity=2)
    ]


def test_negative_free_stock_does_not_reduce_what_other_locations_offer() -> None:
    available = {("BOOK-1", "WH-A"): -10, ("BOOK-1", "WH-B"): 3}
    with pytest.raises(InsufficientStock, match=r"BOOK-1 \(want 4, have 3\)"):
        allocate({"BOOK-1": 4}, available)


def test_allocating_nothing_returns_nothing() -> None:
    assert allocate({}, {("BOOK-1", "WH-A"): 5}) == []


def test_quantities_merges_lines_naming_the_same_sku() -> None:
    assert quantities([("BOOK-1", 2), ("PEN-1", 1), ("BOOK-1", 3)]) == {"BOOK-1": 5, "PEN-1": 1}


def test_quantities_of_an_empty_cart_is_empty() -> None:
    assert quantities([]) == {}


def test_no_purchase_limit_lets_any_quantity_through() -> None:
    assert check_limit("BOOK-1", None, already=500, requested=999) is None


@pytest.mark.parametrize(("already", "requested"), [(0, 2), (1, 1), (2, 0)])
def test_buying_up_to_exactly_the_limit_is_allowed(already: int, requested: int) -> None:
    assert check_limit("BOOK-1", 2, already=already, requested=requested) == 2 - already - requested


@pytest.mark.parametrize(("already", "requested"), [(0, 3), (2, 1), (1, 2)])
def test_buying_beyond_the_limit_is_refused_with_details(already: int, requested: int) -> None:
    with pytest.raises(
        DomainError,
        match=rf"BOOK-1: limit is 2 per buyer in its window; your orders in it already hold"
        rf" {already}",
    ) as err:
        check_limit("BOOK-1", 2, already=already, requested=requested)
    assert err.value.code is ErrorCode.LIMIT_EXCEEDED
    assert err.value.details == {
        "sku": "BOOK-1",
        "limit": 2,
        "already": already,
        "requested": requested,
    }


@pytest.mark.parametrize(
    ("free_after", "requested", "low"),
    [
        (0, 1, True),
        (4, 1, True),  # under the floor of 5
        (5, 1, False),
        (5, 3, True),  # under twice the order
        (6, 3, False),
        (19, 10, True),
        (20, 10, False),
    ],
)
def test_stock_is_low_when_what_is_left_is_under_twice_the_order_or_five(
    free_after: int, requested: int, low: bool
) -> None:
    assert is_low_stock(free_after, requested) is low
