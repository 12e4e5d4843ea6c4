"""What of a cart can be bought now, line by line (SPEC §7): the one assessment behind both a
whole-cart placement (refused as it always was) and a reorder (the rest reported)."""

import pytest

from domain import order as rules
from domain.availability import SkuFacts, assess, nothing_available
from domain.errors import DomainError, ErrorCode
from domain.models import OrderState, Reason, SubStatus, Unavailable
from domain.stock import InsufficientStock
from tests.unit.test_domain_order import BUYER, T0, paid, placed, shipped

LISTED = SkuFacts(listed=True)
FREE = {("A", "WH-1"): 5, ("A", "WH-2"): 1, ("B", "WH-1"): 2, ("C", "WH-1"): 9}


def test_a_cart_that_can_be_bought_whole_is_taken_whole() -> None:
    verdict = assess({"A": 6, "B": 2}, {"A": LISTED, "B": LISTED}, FREE)
    assert (verdict.take, verdict.unavailable, verdict.refusal()) == ({"A": 6, "B": 2}, [], None)


def test_each_line_gets_its_own_reason_and_short_lines_take_what_is_left() -> None:
    facts = {
        "A": LISTED,
        "B": SkuFacts(listed=False),
        "C": SkuFacts(listed=True, limit=5, already=3),
        "D": LISTED,
    }
    verdict = assess({"A": 8, "B": 1, "C": 4, "D": 1, "X": 2}, facts, FREE)
    assert verdict.take == {"A": 6, "C": 2}
    assert verdict.unavailable == [
        Unavailable(sku="A", reason=Reason.OUT_OF_STOCK, requested=8, placed=6),
        Unavailable(sku="B", reason=Reason.DELISTED, requested=1),
        Unavailable(sku="C", reason=Reason.LIMIT_EXCEEDED, requested=4, placed=2),
        Unavailable(sku="D", reason=Reason.OUT_OF_STOCK, requested=1),
        Unavailable(sku="X", reason=Reason.UNKNOWN_SKU, requested=2),
    ]


def test_the_limit_is_named_before_stock_when_both_hold_a_line_back() -> None:
    facts = {"B": SkuFacts(listed=True, limit=1, already=0)}
    [u] = assess({"B": 3}, facts, FREE).unavailable
    assert (u.reason, u.placed) == (Reason.LIMIT_EXCEEDED, 1)


@pytest.mark.parametrize(
    ("wanted", "facts", "code"),
    [
        ({"A": 1, "X": 1, "B": 1}, {"A": LISTED, "B": SkuFacts(listed=False)}, "UNKNOWN_SKU"),
        ({"A": 1, "B": 1}, {"A": LISTED, "B": SkuFacts(listed=False)}, "SKU_DELISTED"),
        ({"A": 9, "C": 3}, {"A": LISTED, "C": SkuFacts(True, limit=2)}, "LIMIT_EXCEEDED"),
        ({"A": 9, "C": 3}, {"A": LISTED, "C": LISTED}, "OUT_OF_STOCK"),
    ],
)
def test_a_whole_cart_is_refused_by_its_first_kind_of_problem(
    wanted: dict[str, int], facts: dict[str, SkuFacts], code: str
) -> None:
    refusal = assess(wanted, facts, FREE).refusal()
    assert refusal is not None and refusal.code == code


def test_the_refusals_say_what_placement_always_said() -> None:
    limit = assess({"C": 3}, {"C": SkuFacts(True, limit=4, already=2)}, FREE).refusal()
    assert limit is not None and limit.details == {
        "sku": "C",
        "limit": 4,
        "already": 2,
        "requested": 3,
    }
    stock = assess({"A": 9, "B": 3}, {"A": LISTED, "B": LISTED}, FREE).refusal()
    assert isinstance(stock, InsufficientStock)
    assert stock.details == {
        "shortfalls": [
            {"sku": "A", "requested": 9, "available": 6},
            {"sku": "B", "requested": 3, "available": 2},
        ]
    }
    unknown = assess({"X": 1, "Y": 1}, {}, FREE).refusal()
    assert unknown is not None and unknown.details == {"skus": ["X", "Y"]}


def test_nothing_available_names_every_line() -> None:
    verdict = assess({"B": 1, "X": 1}, {"B": SkuFacts(listed=False)}, FREE)
    assert verdict.take == {}
    err = nothing_available(verdict.unavailable)
    assert err.code is ErrorCode.NOTHING_AVAILABLE
    assert [u["reason"] for u in err.details["unavailable"]] == ["DELISTED", "UNKNOWN_SKU"]


# ---- reviews --------------------------------------------------------------------------------


def completed() -> OrderState:
    s = shipped(paid(placed()))
    return rules.confirm_receipt(s, None, T0, BUYER, "buyer").state


def test_a_completed_order_is_reviewed_once_and_awaiting_review_clears() -> None:
    s = completed()
    assert s.sub_statuses == [SubStatus.AWAITING_REVIEW]
    change = rules.review(s, 5, "lovely", T0, BUYER)
    assert change.state.sub_statuses == []
    assert (change.event.type, change.event.data["rating"]) == ("REVIEWED", 5)
    assert change.event.data["skus"] == ["BOOK-1", "PHONE-1"]
    with pytest.raises(DomainError, match="reviewed already"):
        rules.check_can_review(change.state)


@pytest.mark.parametrize("build", [placed, lambda: paid(placed()), lambda: shipped(paid(placed()))])
def test_an_order_that_is_not_completed_is_not_reviewed(build: object) -> None:
    assert callable(build)
    with pytest.raises(DomainError, match="only a completed order is reviewed"):
        rules.check_can_review(build())
