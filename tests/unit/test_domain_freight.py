"""Freight: the fee from the rule, and its split across packages."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.freight import allocate_freight, freight_for
from domain.models import FreightPolicy, FreightRule

ONE = FreightPolicy.ONE_PACKAGE
SPLIT = FreightPolicy.SPLIT


def test_freight_is_the_flat_fee_without_a_threshold() -> None:
    rule = FreightRule(flat_cents=800, free_above_cents=None)
    assert freight_for(0, rule) == 800
    assert freight_for(10_000_000, rule) == 800


@pytest.mark.parametrize(("goods", "fee"), [(0, 800), (9_999, 800), (10_000, 0), (10_001, 0)])
def test_freight_is_free_at_or_above_the_threshold(goods: int, fee: int) -> None:
    assert freight_for(goods, FreightRule(flat_cents=800, free_above_cents=10_000)) == fee


def test_a_zero_threshold_makes_freight_always_free() -> None:
    assert freight_for(0, FreightRule(flat_cents=800, free_above_cents=0)) == 0


@pytest.mark.parametrize("policy", list(FreightPolicy))
def test_no_packages_get_no_shares(policy: FreightPolicy) -> None:
    assert allocate_freight(800, [], policy) == []


def test_one_package_puts_all_freight_on_the_most_valuable_package() -> None:
    assert allocate_freight(800, [3_000, 50_000, 2_000], ONE) == [0, 800, 0]


def test_one_package_picks_the_first_of_equally_valuable_packages() -> None:
    assert allocate_freight(800, [1_000, 5_000, 5_000], ONE) == [0, 800, 0]
    assert allocate_freight(800, [0, 0, 0], ONE) == [800, 0, 0]


def test_split_shares_freight_pro_rata_to_goods_value() -> None:
    assert allocate_freight(1_000, [1_000, 3_000], SPLIT) == [250, 750]


def test_split_gives_leftover_cents_to_the_largest_remainders() -> None:
    # exact shares 333.3, 333.3, 333.3 -> the first gets the spare cent
    assert allocate_freight(1_000, [1, 1, 1], SPLIT) == [334, 333, 333]
    # exact shares 1.5, 8.5 -> ties broken by position
    assert allocate_freight(10, [15, 85], SPLIT) == [2, 8]
    # exact shares 6.6, 3.3, 0.1 -> remainders .6 and .3 win, .1 does not
    assert allocate_freight(10, [66, 33, 1], SPLIT) == [7, 3, 0]


def test_split_shares_equally_when_every_package_is_worth_nothing() -> None:
    assert allocate_freight(10, [0, 0, 0], SPLIT) == [4, 3, 3]


def test_split_gives_a_worthless_package_nothing_beside_valuable_ones() -> None:
    assert allocate_freight(999, [0, 500], SPLIT) == [0, 999]


FREIGHT = st.integers(min_value=0, max_value=10**7)
VALUES = st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(freight=FREIGHT, goods=VALUES)
def test_split_shares_are_whole_non_negative_cents_summing_to_the_freight(
    freight: int, goods: list[int]
) -> None:
    shares = allocate_freight(freight, goods, SPLIT)
    assert len(shares) == len(goods)
    assert all(isinstance(s, int) and s >= 0 for s in shares)
    assert sum(shares) == freight


@settings(max_examples=200, deadline=None)
@given(freight=FREIGHT, goods=VALUES)
def test_each_split_share_is_within_a_cent_of_its_exact_pro_rata_value(
    freight: int, goods: list[int]
) -> None:
    shares = allocate_freight(freight, goods, SPLIT)
    total = sum(goods)
    weights = goods if total > 0 else [1] * len(goods)
    for share, weight in zip(shares, weights, strict=True):
        exact = Fraction(freight * weight, sum(weights))
        assert abs(share - exact) < 1


@settings(max_examples=200, deadline=None)
@given(freight=FREIGHT, goods=VALUES)
def test_one_package_puts_the_whole_freight_on_exactly_one_package(
    freight: int, goods: list[int]
) -> None:
    shares = allocate_freight(freight, goods, ONE)
    assert len(shares) == len(goods)
    assert sum(shares) == freight
    if freight == 0:
        assert shares == [0] * len(goods)
    else:
        bearers = [i for i, s in enumerate(shares) if s != 0]
        assert len(bearers) == 1
        assert shares[bearers[0]] == freight
        assert goods[bearers[0]] == max(goods)
        assert bearers[0] == goods.index(max(goods))
