"""What a merchant or an admin may do to an order or a case right now: the console offers
these as forms. Each is asked of the rule that guards the action itself, so a form is shown
exactly when the action would be taken (the action still checks again when it is sent)."""

from collections.abc import Callable
from dataclasses import dataclass, field

from domain.after_sales import ALLOWED, ROLE, AfterSalesCase, CaseAction, fits_type
from domain.errors import DomainError
from domain.fulfilment import check_can_confirm_return
from domain.models import CloseReason, OrderState, PackageStatus, RefundRequestStatus
from domain.order import check_can_close, check_package_ships, failed_refunds, package_of


@dataclass(frozen=True)
class OrderActions:
    ship: list[str]  # package ids that may ship now
    decide: list[str]  # refund request ids waiting for the merchant's answer
    close: bool  # unpaid: the merchant may close it
    confirm_return: list[str]  # rejected packages whose goods are on their way back
    retry_refund: list[str]  # refunds the channel refused for good (an admin retries)
    held: dict[str, str] = field(default_factory=dict)  # unshipped package -> the refund
    # request holding it: why it offers no ship form until that request is answered

    @property
    def any(self) -> bool:
        return bool(
            self.ship or self.decide or self.close or self.confirm_return or self.retry_refund
        )


def _allows(check: Callable[..., object], *args: object) -> bool:
    try:
        check(*args)
    except DomainError:
        return False
    return True


def order_actions(state: OrderState, role: str) -> OrderActions:
    """`role` is merchant or admin; a buyer acts through the buyer's API, not the console."""
    if role not in ("merchant", "admin"):
        return OrderActions([], [], False, [], [])
    return OrderActions(
        ship=[p.id for p in state.packages if _allows(check_package_ships, state, p.id)],
        decide=[r.id for r in state.refund_requests if r.status is RefundRequestStatus.REQUESTED],
        close=_allows(check_can_close, state, CloseReason.SELLER_CLOSED),
        confirm_return=[
            p.id for p in state.packages if _allows(check_can_confirm_return, state, p.id)
        ],
        retry_refund=[r.id for r in failed_refunds(state)] if role == "admin" else [],
        held={
            t.package_id: r.id
            for r in state.refund_requests
            if r.status is RefundRequestStatus.REQUESTED
            for t in r.takes
            if package_of(state, t.package_id).status is PackageStatus.PENDING
        },
    )


def case_actions(case: AfterSalesCase, role: str) -> list[CaseAction]:
    """The case actions `role` may take in the case's status (an admin may also take the
    merchant's); none while the order settles a decided case."""
    if case.settlement is not None:
        return []
    mine = {"merchant": {"merchant"}, "admin": {"merchant", "admin"}}.get(role, set())
    return [
        a
        for a in CaseAction
        if ROLE[a] in mine and case.status in ALLOWED[a] and fits_type(case, a)
    ]
