"""Money back: a refund is decided under the lock and recorded PENDING; the channel is
called with the lock free, and its answer lands under the lock."""

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import order as rules
    from domain import refunds
    from domain.errors import ErrorCode
    from domain.messages import (
        RefundPaymentInput,
    )
    from domain.models import (
        SYSTEM,
        Payment,
        Refund,
        RefundStatus,
    )
    from workflows import calls, compat, ids
    from workflows.errors import ACTIVITY_FAILURES, unwrap
from workflows.order.run import OrderRun


class NotOurs(Exception):
    """A refund of a transaction that settled another order: never made, never recorded as
    this order's money (the channel's word is `failure`)."""

    def __init__(self, failure: str) -> None:
        super().__init__(failure)
        self.failure = failure


PENDING = RefundStatus.PENDING
REFUND_ANSWER_WAIT = timedelta(seconds=3)  # an update waits this long for its refunds' answer


class Refunding(OrderRun):
    """Refunds through the paying channel, outside the lock."""

    async def _pay_back(
        self, refund: Refund, payment: Payment, *, not_ours_fails: bool = True
    ) -> Refund:
        """The refund as the order records it now: PENDING, its money moved by the channel
        after the lock is released (`_start_refunds`). Orders started before that moved it
        here, under the lock."""
        if refund.amount_cents <= 0:
            return refund  # a free package: nothing to move, nothing to ledger
        if workflow.patched(compat.REFUNDS_OUTSIDE_LOCK):
            return refund.model_copy(update={"status": PENDING})
        try:  # (orders started before the patch: under the lock)
            return await self._move_money(refund, payment)
        except NotOurs as not_ours:
            if not not_ours_fails:
                raise
            return refund.model_copy(
                update={"status": RefundStatus.FAILED, "failure": not_ours.failure}
            )

    async def _move_money(self, refund: Refund, payment: Payment) -> Refund:
        """Move the money through the paying channel; a refund that cannot be made comes back
        FAILED with the channel's reason (visible to operators), never dropped. NotOurs when
        the transaction turns out to have settled another order."""
        try:
            done: Refund = await calls.partner(
                ids.REFUND_PAYMENT,
                RefundPaymentInput(order_id=self.inp.order_id, refund=refund, payment=payment),
                f"refund {refund.amount_cents} cents: {refund.reason}",
                calls.REFUND,
                Refund,
            )
            return done
        except ACTIVITY_FAILURES as err:
            error = unwrap(err)
            if error.type == ErrorCode.TXN_REUSED.value:
                workflow.logger.error("refund %s not made: %s", refund.id, err)
                raise NotOurs(error.message) from None
            workflow.logger.error("refund %s failed for good: %s", refund.id, err)
            failure = error.message or "the channel did not answer in time"
            return refund.model_copy(update={"status": RefundStatus.FAILED, "failure": failure})

    def _after_commit(self) -> None:
        self._start_refunds()

    def _start_refunds(self) -> None:
        """Move the money of every PENDING refund not already under way, each outside the
        lock; its outcome is applied under the lock when the channel answers."""
        state = self.state
        if state is None:
            return
        for refund in state.refunds:
            if refund.status == PENDING and refund.id not in self.refunding:
                self.refunding[refund.id] = asyncio.create_task(self._finish_refund(refund))

    async def _finish_refund(self, refund: Refund) -> None:
        try:
            done: Refund | NotOurs = await self._move_money(
                refund, refunds.paid_by(self._placed(), refund)
            )
        except NotOurs as not_ours:
            done = not_ours
        async with self.lock:
            state, now = self._placed(), workflow.now()
            if isinstance(done, NotOurs):
                change = refunds.refund_withdrawn(state, refund.id, done.failure, now, SYSTEM)
            else:
                change = refunds.refund_settled(state, refund.id, done.failure, now, SYSTEM)
            try:
                await self._commit(change)
            except ApplicationError:  # recorded: the refund stays PENDING until a retry
                return
        del self.refunding[refund.id]

    async def _refunds_answered(self) -> None:
        """An update that made refunds answers with the channel's word when it comes within
        REFUND_ANSWER_WAIT (the lock is free meanwhile); past that, they are PENDING and
        land when the channel answers."""
        if not self.refunding:
            return
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: not self.refunding,
                timeout=REFUND_ANSWER_WAIT,
                timeout_summary="the refunds' answer, or answer PENDING",
            )

    async def _refund_outcome(self, refund_id: str) -> Refund | None:
        """Wait (without the lock) until the channel has answered this refund."""
        await workflow.wait_condition(lambda: refund_id not in self.refunding)
        return next((r for r in self._placed().refunds if r.id == refund_id), None)

    async def _refund(self, payment: Payment, reason: str) -> None:
        """Give back a whole payment the order cannot keep, and record it on the order."""
        refund = Refund(
            id=f"{payment.txn_id}-R",
            txn_id=payment.txn_id,
            channel=payment.channel,
            amount_cents=payment.amount_cents,
            reason=reason,
            created_at=workflow.now(),
        )
        if self.state is None:  # no order to record it on: move it now, without the lock
            async with self._unlocked():
                with contextlib.suppress(NotOurs):
                    await self._move_money(refund, payment)
            return
        try:
            refund = await self._pay_back(refund, payment, not_ours_fails=False)
        except NotOurs:  # another order's money: not this order's to record
            return
        await self._commit(rules.add_refund(self.state, refund, workflow.now(), SYSTEM))
