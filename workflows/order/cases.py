"""After-sales cases (售后): each is its own workflow; the order settles a case's claim
(money back, units back on hand) when the case ends."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain import after_sales
    from domain.messages import (
        CaseSettlement,
        SettleCaseRequest,
    )
from workflows.order.refund_requests import RefundRequests


class Cases(RefundRequests):
    """Settling an after-sales case's claim."""

    async def _settle_case(self, req: SettleCaseRequest) -> CaseSettlement:
        state = self._placed()
        claim = after_sales.claim_of(state, req.case_id)
        if not claim.open:
            return CaseSettlement(
                refund=next((r for r in state.refunds if r.id == claim.refund_id), None)
            )
        now = workflow.now()
        if not req.refund:
            change = after_sales.settle_claim(state, req.case_id, None, None, now, req.actor)
            await self._commit(change)
            return CaseSettlement()
        assert state.payment is not None
        refund, money = after_sales.claim_refund(state, req.case_id, req.amount_cents, now)
        refund = await self._pay_back(refund, state.payment)
        change = after_sales.settle_claim(
            state, req.case_id, refund, money, now, req.actor, restock=req.restock
        )
        await self._commit(change)
        return CaseSettlement(refund=refund)
