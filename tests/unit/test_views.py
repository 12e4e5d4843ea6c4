"""A buyer is shown members of staff by their role, never by their id; staff see all."""

from datetime import UTC, datetime

from api.auth import Role, User
from api.views import case_for, events_for
from domain.after_sales import CaseAction
from domain.models import Actor, CaseType, OrderEvent
from tests.unit.test_domain_after_sales import do, opened

BUYER = User(id="buyer-1", role=Role.BUYER)
MERCHANT = User(id="merchant-7", role=Role.MERCHANT)


def test_a_buyer_sees_staff_by_role_in_events() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    events = [
        OrderEvent(order_id="o", version=v, type="PAID", actor=actor, at=at, data={})
        for v, actor in enumerate(
            [
                Actor(kind="buyer", id="buyer-1"),
                Actor(kind="merchant", id="merchant-7"),
                Actor(kind="admin", id="admin-1"),
                Actor(kind="operator", id="ops"),
                Actor(kind="carrier", id="SF"),
            ]
        )
    ]
    assert [e.actor for e in events_for(BUYER, events)] == [
        Actor(kind="buyer", id="buyer-1"),
        Actor(kind="merchant", id="merchant"),
        Actor(kind="platform", id="platform"),
        Actor(kind="platform", id="platform"),
        Actor(kind="carrier", id="SF"),
    ]
    assert events_for(MERCHANT, events) == events


def test_a_buyer_sees_staff_by_role_in_a_case_timeline() -> None:
    _, case = opened(None, CaseType.REFUND_ONLY)
    case = do(case, CaseAction.REJECT, reason="no damage")
    case = do(case, CaseAction.ESCALATE)
    case = do(case, CaseAction.RULE, decision="BUYER", reason="photos")
    seen = [t.actor.id for t in case_for(BUYER, case).timeline]
    assert "merchant" in seen and "platform" in seen
    assert not {"ops-1", "shop-1"} & set(seen)  # the staff ids of the domain tests
    assert [t.actor.id for t in case_for(MERCHANT, case).timeline] == [
        t.actor.id for t in case.timeline
    ]
