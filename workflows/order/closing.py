"""Closing: the buyer's cancel (intercepting a paid order), an operator's stop, and
closing an unpaid order (its intents closed at the gateway first)."""

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import fulfilment as fulfil
    from domain import order as rules
    from domain.errors import ErrorCode
    from domain.messages import (
        CloseRequest,
        Stop,
    )
    from domain.models import (
        CloseReason,
        OrderState,
        OrderStatus,
    )
    from workflows import compat
    from workflows.errors import rule
from workflows.order.fulfilment import Fulfilment


class Closing(Fulfilment):
    """Cancel and close."""

    async def _cancel(self, req: CloseRequest, reason: CloseReason) -> OrderState:
        """Close an unpaid order; or intercept every package of a paid one, refund what its
        payment holds and close (under the lock, the state allowing a cancel)."""
        if self._placed().payment is None:
            return await self._close_unpaid(reason, req)
        await self._cancel_at_suppliers(req, reason)
        state = self._placed()  # the lock was let go while suppliers answered: as it is now
        assert state.payment is not None
        now = workflow.now()
        refund = await self._pay_back(fulfil.whole_refund(state, reason.value, now), state.payment)
        change = fulfil.cancel_paid(state, refund, now, req.actor, req.reason, reason)
        await self._commit(change)
        return change.state

    async def _stop(self, stop: Stop) -> None:
        """An operator's cancellation: the order is cancelled as a buyer's would be, or, past
        that (a package has shipped), the refusal is written down and the order goes on."""
        async with self.lock:
            state = self._placed()
            if state.status is OrderStatus.CLOSED:
                return
            req = CloseRequest(reason=stop.note, actor=stop.actor)
            try:
                rule(fulfil.check_can_cancel, state)
                await self._cancel(req, stop.reason)
            except ApplicationError as err:
                workflow.logger.warning("%s refused: %s", stop.reason, err.message)
                change = rules.cancel_refused(
                    self._placed(), stop.reason, err.message, workflow.now(), stop.actor
                )
                await self._commit(change)

    def _refuse_while_busy(self) -> None:
        """A cancel or an agreed refund waits for no supplier call: 409, try again."""
        for busy, what in ((self.purchasing, "purchase"), (self.cancelling, "cancel")):
            if busy:
                raise ApplicationError(
                    f"the supplier {what} is in progress; try again in a moment",
                    {"package_ids": sorted(busy)},
                    type=ErrorCode.INVALID_TRANSITION.value,
                    non_retryable=True,
                )

    async def _close_unpaid(self, reason: CloseReason, req: CloseRequest) -> OrderState:
        """Called with the lock held. Orders started since first close their intents at the
        gateway (the lock let go meanwhile): a payment found there is taken, and the order,
        paid after all, is no longer closed this way (409)."""
        if workflow.patched(compat.INTENTS_CLOSED_FIRST):
            async with self._unlocked():
                captured = await self._settle_intents()
            for notice in captured:
                await self._take(notice)
            rule(rules.check_can_close, self._placed(), reason)
        change = rules.close(self._placed(), reason, workflow.now(), req.actor, note=req.reason)
        await self._commit(change)
        return change.state
