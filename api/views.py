"""What a user is shown of stored records: a buyer sees members of staff by their role
("merchant", "platform"), never by their id."""

from api.auth import Role, User
from domain.after_sales import AfterSalesCase
from domain.models import OrderEvent, as_seen_by_buyers


def events_for(user: User, events: list[OrderEvent]) -> list[OrderEvent]:
    if user.role is not Role.BUYER:
        return events
    return [e.model_copy(update={"actor": as_seen_by_buyers(e.actor)}) for e in events]


def case_for(user: User, case: AfterSalesCase) -> AfterSalesCase:
    if user.role is not Role.BUYER:
        return case
    timeline = [t.model_copy(update={"actor": as_seen_by_buyers(t.actor)}) for t in case.timeline]
    return case.model_copy(update={"timeline": timeline})
