"""An order's run: what every step shares. The state and the lock, the step that saves a
change (snapshot, event, stock effects: one transaction) and adopts it, what a step that
fails for good records, and the lock let go while a partner answers."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import order as rules
    from domain.after_sales import AfterSalesCase
    from domain.errors import ErrorCode
    from domain.messages import (
        OrderErrorInput,
        OrderWorkflowInput,
        ReviewRequest,
        SaveOrderInput,
        SettleCaseRequest,
        Stop,
    )
    from domain.models import (
        Actor,
        OrderState,
    )
    from domain.order import PaymentAccepted, Placement
    from workflows import calls, details, ids
    from workflows.errors import ACTIVITY_FAILURES, is_refusal, unwrap


class OrderRun:
    """What every step of an order shares (the state, the lock, saving a change)."""

    def __init__(self, inp: OrderWorkflowInput) -> None:
        self.inp = inp
        # placed by the API before the workflow started: the order it saved, built again
        self.state = None if inp.placement is None else self._built(inp.placement)
        self.rejection: ApplicationError | None = None
        self.lock = asyncio.Lock()
        self.seen_txns: set[str] = set()
        self.purchasing: set[str] = set()  # KEPLER packages whose purchase is in flight
        self.cancelling: set[str] = set()  # packages the supplier is being asked to cancel
        self.refunding: dict[str, asyncio.Task[None]] = {}  # PENDING refunds under way
        self.stop: Stop | None = None  # an operator's (or reconciliation's) close, pending
        self.stuck = False  # a timer's step failed for good: waiting for an operator's retry
        self.unsettled: dict[str, SettleCaseRequest] = {}  # cases whose settlement failed so
        self.tasks: list[asyncio.Task[None]] = []  # settlements tried again

    @asynccontextmanager
    async def _unlocked(self) -> AsyncIterator[None]:
        """Inside `async with self.lock`: let other messages in while a partner answers; the
        caller looks at the state afresh afterwards."""
        self.lock.release()
        try:
            yield
        finally:
            await self.lock.acquire()

    def _built(self, placement: Placement) -> OrderState:
        """The order as the store built and saved it from this placement."""
        inp = self.inp
        return rules.placed(
            placement,
            order_id=inp.order_id,
            buyer_id=inp.buyer_id,
            address=inp.address,
            timings=inp.timings,
            reorder_of=inp.reorder_of,
        ).state

    def _placed(self) -> OrderState:
        if self.state is None:
            raise ApplicationError("order is not placed", type=ErrorCode.NOT_FOUND.value)
        return self.state

    @staticmethod
    def _require_party(state: OrderState, actor: Actor) -> None:
        """Another buyer's order, or another shop's to a merchant, is not found."""
        if not actor.may_see(state.buyer_id, state.shop_id):
            raise ApplicationError("not your order", type=ErrorCode.NOT_FOUND.value)

    async def _commit(
        self,
        change: rules.Change,
        *,
        case: AfterSalesCase | None = None,
        review: ReviewRequest | None = None,
        unless_intents: bool = False,
    ) -> bool:
        """Save the snapshot, its event and the stock effects the change carries in one
        transaction, then adopt and publish. A save that fails for good is recorded
        (ORDER_ERROR) and raised: the change is not adopted. `unless_intents` (an unpaid
        order's close): not saved, and False, when payment intents were opened for it."""
        try:
            saved: bool | None = await calls.db(
                ids.CLOSE_UNLESS_INTENTS if unless_intents else ids.SAVE_ORDER,
                SaveOrderInput(
                    state=change.state,
                    event=change.event,
                    release_stock=change.release_stock,
                    restore=change.restore,
                    returns=change.returns,
                    return_ref=change.return_ref,
                    takes=change.takes,
                    take_ref=change.take_ref,
                    case=case,
                    review=review,
                    write_seq=_write_seq(),
                ),
                change.event.type,
                bool if unless_intents else None,
            )
        except ACTIVITY_FAILURES as err:
            raise await self._store_failed(change.event.type, unwrap(err)) from None
        if saved is False:
            return False
        self.state = change.state
        details.publish(self.state)
        self._after_commit()
        return True

    def _after_commit(self) -> None:
        """What follows an adopted change (Refunding starts the refunds it recorded)."""

    async def _store_failed(self, step: str, error: ApplicationError) -> ApplicationError:
        """What a failed store step raises: a business refusal as it is; anything else is
        recorded first and becomes ORDER_ERROR."""
        if is_refusal(error):
            return error
        await self._record_error(step, error)
        return ApplicationError(
            f"the order could not record {step}: {error.message}",
            type=ErrorCode.ORDER_ERROR.value,
            non_retryable=True,
        )

    async def _failed(self, step: str, err: ApplicationError) -> None:
        """A message that could not be handled: never fatal to the order. A refusal is
        logged; anything else is recorded for operators (ORDER_ERROR already was)."""
        if is_refusal(err):
            workflow.logger.warning("%s refused: %s", step, err.message)
        elif err.type != ErrorCode.ORDER_ERROR.value:
            await self._record_error(step, err)

    async def _record_error(self, step: str, err: ApplicationError) -> None:
        """ORDER_ERROR: in the event log and flagged (the API's `order_error` filter, the
        Web UI's OrderError), best effort; the order goes on or waits for an operator."""
        reason = f"{err.type}: {err.message}"[:2000]
        workflow.logger.error("order %s: %s failed: %s", self.inp.order_id, step, reason)
        workflow.upsert_search_attributes([ids.ORDER_ERROR.value_set(True)])
        note = OrderErrorInput(
            order_id=self.inp.order_id,
            step=step,
            reason=reason,
            at=workflow.now(),
            write_seq=_write_seq(),
        )
        try:
            await calls.db(ids.NOTE_ORDER_ERROR, note, f"ORDER_ERROR: {step}")
        except ACTIVITY_FAILURES as failure:  # the store is down too: the Web UI shows it
            workflow.logger.error("ORDER_ERROR not stored: %s", failure)


# what the placement and payment steps answer: a receipt; a whole order in histories
# recorded before receipts (each decodes as what it is: a receipt refuses unknown fields)
PLACED: Any = OrderState | Placement
PAID: Any = OrderState | PaymentAccepted


def _write_seq() -> int:
    """When the workflow writes: its run's start (ms), then its history length, as one number
    that only grows (a later workflow task, or a later run, writes with a larger one)."""
    info = workflow.info()
    start_ms = int(info.workflow_start_time.timestamp() * 1000)
    return start_ms << 20 | info.get_current_history_length()
