"""After-sales cases (售后): each is its own workflow; the order settles a case's claim
(money back, units back on hand) when the case ends."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain import after_sales
    from domain.messages import (
        CaseSettlement,
        ReshipCaseRequest,
        ReshipOutcome,
        SettleCaseRequest,
    )
    from workflows import ids
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
        if req.keep_open:  # an exchange's goods are back: on hand, the claim stays
            back = after_sales.restock_claim(state, req.case_id, now, req.actor)
            if back is not None:
                await self._commit(back)
            return CaseSettlement()
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

    async def _reship_case(self, req: ReshipCaseRequest) -> ReshipOutcome:
        """An exchange's replacement: shipped once (asked again, the same packages), its units
        taken off hand in the same transaction; OUT_OF_STOCK takes and ships nothing."""
        state = self._placed()
        done = after_sales.replacements_of(state, req.case_id)
        if not done:
            change = after_sales.reship(
                state, req.case_id, req.carrier, req.tracking_no, workflow.now(), req.actor
            )
            await self._commit(change)
            done = after_sales.replacements_of(change.state, req.case_id)
        return ReshipOutcome(package_ids=[p.id for p in done])

    async def _replacement_delivered(self, package_id: str) -> None:
        state = self._placed()
        case_id = next((p.replacement_for for p in state.packages if p.id == package_id), None)
        if case_id is not None:
            case = workflow.get_external_workflow_handle(ids.case_workflow_id(case_id))
            await case.signal(ids.REPLACEMENT_DELIVERED_SIGNAL, package_id)
