"""What the console offers: exactly the actions their own rules would take now."""

from datetime import timedelta

from domain.actions import case_actions, order_actions
from domain.after_sales import CaseAction, CaseStatus, Settlement
from domain.models import LineRequest, Refund
from domain.refunds import request_refund
from tests.unit.test_domain_after_sales import opened
from tests.unit.test_domain_order import BUYER, T0, line, package_id, paid, placed, shipped


def test_an_unpaid_order_may_only_be_closed() -> None:
    actions = order_actions(placed(line("BOOK-1")), "merchant")
    assert (actions.close, actions.ship, actions.decide, actions.any) == (True, [], [], True)


def test_a_paid_order_ships_each_pending_package_and_no_longer_closes() -> None:
    state = paid()
    actions = order_actions(state, "merchant")
    assert actions.close is False
    assert sorted(actions.ship) == sorted(p.id for p in state.packages)
    book = package_id(state, "BOOK-1")
    assert order_actions(shipped(state, "BOOK-1"), "merchant").ship == [
        p.id for p in state.packages if p.id != book
    ]


def test_a_refund_request_holds_its_package_and_waits_for_an_answer() -> None:
    state = paid(placed(line("BOOK-1", 2)))
    asked = request_refund(
        state, "RR1", [LineRequest(sku="BOOK-1", quantity=1)], "", T0 + timedelta(hours=1), BUYER
    ).state
    actions = order_actions(asked, "merchant")
    assert (actions.decide, actions.ship) == (["RR1"], [])  # no shipping before the answer


def test_only_an_admin_is_offered_a_failed_refund_to_retry() -> None:
    state = paid(placed(line("BOOK-1")))
    failed = Refund(
        id="RF1",
        txn_id="TXN-1",
        channel=state.payment.channel if state.payment else "balance",
        amount_cents=100,
        reason="x",
        status="FAILED",
        created_at=T0,
    )
    state = state.model_copy(update={"refunds": [failed]})
    assert order_actions(state, "admin").retry_refund == ["RF1"]
    assert order_actions(state, "merchant").retry_refund == []


def test_a_buyer_is_offered_nothing_in_the_console() -> None:
    assert order_actions(placed(line("BOOK-1")), "buyer").any is False
    _, case = opened()
    assert case_actions(case, "buyer") == []


def test_case_actions_follow_the_case_machine_by_role() -> None:
    _, case = opened()
    merchant = [CaseAction.AGREE, CaseAction.REJECT, CaseAction.PROPOSE]
    assert case_actions(case, "merchant") == merchant
    assert case_actions(case, "admin") == merchant  # an admin may take the merchant's part
    review = case.model_copy(update={"status": CaseStatus.PLATFORM_REVIEW})
    assert case_actions(review, "merchant") == []
    assert case_actions(review, "admin") == [CaseAction.RULE]
    settling = case.model_copy(update={"settlement": Settlement(refund=True, amount_cents=1)})
    assert case_actions(settling, "admin") == []  # the order is moving the money
