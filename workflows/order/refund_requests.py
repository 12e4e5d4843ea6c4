"""Refund requests before shipment (退款): agreed by the merchant, or by the clock when
the merchant does not answer."""

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import refunds
    from domain.errors import ErrorCode
    from domain.models import (
        SYSTEM,
        Actor,
    )
    from workflows.errors import is_refusal, rule
from workflows.order.closing import Closing


class RefundRequests(Closing):
    """Refund requests before shipment."""

    async def _agree_refund(self, request_id: str, actor: Actor) -> None:
        """Bought supplier packages are cancelled at the supplier first (a refusal is a 409
        and the request stays open); then the money goes back and the units leave."""
        for package in refunds.supplier_packages_to_cancel(self._placed(), request_id):
            answer = await self._ask_supplier_to_cancel(package, f"refund {request_id}")
            if not answer.cancelled:
                raise ApplicationError(
                    f"the supplier refused to cancel package {package.id}: {answer.reason}",
                    {"package_id": package.id},
                    type=ErrorCode.SUPPLIER_REFUSED_CANCEL.value,
                    non_retryable=True,
                )
        state = self._placed()  # as it is now: the lock was let go while suppliers answered
        assert state.payment is not None
        now = workflow.now()
        refund, money = rule(refunds.refund_of_request, state, request_id, now)
        refund = await self._pay_back(refund, state.payment)
        await self._commit(refunds.complete_request(state, request_id, refund, money, now, actor))

    async def _refunds_due(self) -> None:
        """The merchant did not answer in time: each due request is agreed (a supplier that
        will not cancel its purchase refuses it instead)."""
        if self.cancelling:  # a merchant's agree is asking the supplier: its answer first
            return
        for request in refunds.due_requests(self._placed(), workflow.now()):
            try:
                await self._agree_refund(request.id, SYSTEM)
            except ApplicationError as err:
                if not is_refusal(err):
                    raise
                if refunds.request_of(self._placed(), request.id).status.value != "REQUESTED":
                    continue  # decided while the supplier answered
                change = refunds.refuse_request(
                    self._placed(), request.id, err.message, workflow.now(), SYSTEM
                )
                await self._commit(change)
