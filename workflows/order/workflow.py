"""The order saga: one workflow per order, id `order-<order id>`, and the messages it accepts.

All state is one `OrderState`; every change is decided by `domain/`, saved (snapshot, event
row and stock effects, one transaction) by a local activity, then adopted and published.
Requests that the state does not allow are refused by update validators, so they write no
history. The steps live in this package's other modules, one per concern.
"""

import asyncio
from collections.abc import Callable

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import after_sales, refunds
    from domain import fulfilment as fulfil
    from domain import order as rules
    from domain.after_sales import AfterSalesCase
    from domain.errors import DomainError, ErrorCode
    from domain.messages import (
        CarrierNotice,
        CaseSettlement,
        CloseRequest,
        ConfirmRequest,
        DecideRefundRequest,
        ExtendRequest,
        OpenCaseRequest,
        OrderReceipt,
        OrderWorkflowInput,
        PackageRequest,
        PaymentNotice,
        PayRequest,
        PlaceOrderInput,
        RefundLinesRequest,
        ReshipCaseRequest,
        ReshipOutcome,
        RetryRefundRequest,
        ReviewRequest,
        SettleCaseRequest,
        ShipRequest,
        Stop,
        SupplierNotice,
        receipt,
    )
    from domain.models import (
        OPERATOR_UI,
        RECONCILER,
        WALLET_CHANNELS,
        CloseReason,
        EventType,
        OrderState,
        Payment,
        Refund,
        RefundRequest,
    )
    from domain.order import Placement
    from workflows import calls, compat, details, ids
    from workflows.errors import ACTIVITY_FAILURES, rule, unwrap
from workflows.order.cases import Cases
from workflows.order.refunding import PENDING
from workflows.order.run import PLACED, _write_seq


@workflow.defn(name="OrderWorkflow")
class OrderWorkflow(Cases):
    """The messages an order accepts: each validated by the same guard as its step, then
    handled under the order's lock by one step of its concern's module."""

    @workflow.init
    def __init__(self, inp: OrderWorkflowInput) -> None:
        super().__init__(inp)

    # ---- main line --------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: OrderWorkflowInput) -> OrderState | None:
        saga = asyncio.create_task(self._saga(inp))
        while True:
            try:  # a cancellation request reaches the saga at its next turn, never mid-step
                return await asyncio.shield(saga)
            except asyncio.CancelledError:
                if saga.done():
                    raise
                # the Web UI's "Request Cancellation": an operator's close (release, refund)
                self.stop = self.stop or Stop(
                    reason=CloseReason.OPERATOR_CANCELLED,
                    note="cancellation requested in the Temporal Web UI",
                    actor=OPERATOR_UI,
                )

    async def _saga(self, inp: OrderWorkflowInput) -> OrderState | None:
        if inp.resume:  # started again by reconciliation: from the stored snapshot
            self.state = await calls.db(
                ids.LOAD_ORDER, inp.order_id, "load the stored order", OrderState
            )
            self.stop = Stop(
                reason=CloseReason.WORKFLOW_LOST,
                note="its workflow was terminated or lost; found by reconciliation",
                actor=RECONCILER,
            )
            self._start_refunds()
        elif self.state is not None:  # adopted: the API started it with its attributes
            details.publish(self.state, always_upsert=False)
            placed = workflow.metric_meter().create_counter(*ids.EVENTS_METRIC)
            placed.add(1, {"type": EventType.PLACED.value})
        await workflow.wait_condition(lambda: self.state is not None or self.rejection is not None)
        while self.state is not None and not self._finished(self.state):
            version = self.state.version
            try:
                await self._turn(self.state)
            except ApplicationError as err:  # recorded where operators look: wait for them
                await self._wait_for_operator(version, err)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state

    async def _wait_for_operator(self, version: int, err: ApplicationError) -> None:
        """A timer's step failed for good (recorded): wait for news or an operator's retry."""
        workflow.logger.warning("waiting for an operator's retry: %s", err.message)
        self.stuck = True
        moved_on = self._moved_on(version)
        await workflow.wait_condition(lambda: not self.stuck or moved_on())
        self.stuck = False

    async def _turn(self, state: OrderState) -> None:
        """One turn of the order's clock: an operator's stop, or wait for the next deadline
        (or news) and do what is due."""
        if self.stop is not None:
            stop, self.stop = self.stop, None
            await self._stop(stop)
            return
        deadline = self._next_deadline(state)
        version = state.version
        if deadline is None:
            await workflow.wait_condition(self._moved_on(version))
            return
        left = (deadline.at - workflow.now()).total_seconds()
        if left > 0:
            try:
                await workflow.wait_condition(
                    self._moved_on(version),
                    timeout=left,
                    timeout_summary=f"{deadline.kind}: {deadline.describe()}",
                )
                return
            except TimeoutError:
                pass
        if deadline.kind is rules.DeadlineKind.PAYMENT and workflow.patched(
            compat.INTENTS_CLOSED_FIRST
        ):
            if workflow.patched(compat.CLOSE_UNLESS_INTENTS):  # no intents: closed at once
                async with self.lock:
                    if self._placed().version != version or await self._close_unless_intents(
                        deadline
                    ):
                        return
            for notice in await self._settle_intents():  # paid after all: taken, not closed
                async with self.lock:
                    await self._take(notice)
            if self._placed().version != version:
                return
        if deadline.kind is rules.DeadlineKind.SUPPLIER_PURCHASE:
            await self._purchase_due()  # locks only to commit: a slow supplier blocks no one
        elif deadline.kind is rules.DeadlineKind.REFUND_RESPONSE:
            async with self.lock:
                await self._refunds_due()
        else:
            async with self.lock:
                if self._placed().version == version:  # else something moved it first
                    await self._on_deadline(deadline)
        state = self._placed()
        if state.version == version and self.stop is None and not self._finished(state):
            # the deadline changed nothing and did not finish the order (an old rule's FINISH
            # while held open): wait for news instead of spinning
            await workflow.wait_condition(self._moved_on(version))

    @workflow.signal(name=ids.RETRY_SIGNAL)
    def retry(self) -> None:
        """An operator's word after an ORDER_ERROR: try the failed step again (the Web UI's
        Send Signal, no input); refunds whose outcome could not be saved are tried again."""
        self.stuck = False
        for refund_id, task in list(self.refunding.items()):
            if task.done():
                del self.refunding[refund_id]
        self._start_refunds()
        unsettled, self.unsettled = self.unsettled, {}
        self.tasks += [asyncio.create_task(self.settle_case(req)) for req in unsettled.values()]

    def _moved_on(self, version: int) -> Callable[[], bool]:
        return lambda: (
            self.state is not None and (self.state.version != version or self.stop is not None)
        )

    @staticmethod
    def _finished(state: OrderState) -> bool:
        finished = rules.is_finished(state, workflow.now())
        old = rules.is_finished(state, workflow.now(), hold=False)
        if finished != old and not workflow.patched(compat.FINISH_WAITS):
            return old  # an order that ended with a refund FAILED, before that held it open
        return finished

    @staticmethod
    def _next_deadline(state: OrderState) -> rules.Deadline | None:
        deadline = rules.next_deadline(state)
        old = rules.next_deadline(state, hold_finish=False)
        if deadline != old and not workflow.patched(compat.FINISH_WAITS):
            return old  # an order that timed its after-sales window while held open
        return deadline

    async def _on_deadline(self, deadline: rules.Deadline) -> None:
        change = rules.on_deadline(self._placed(), deadline, workflow.now())
        if change is not None:
            await self._commit(change)

    async def _close_unless_intents(self, deadline: rules.Deadline) -> bool:
        """The payment deadline's close, made only if the order never opened a payment
        intent; False when it did (they are closed at the gateway first)."""
        change = rules.on_deadline(self._placed(), deadline, workflow.now())
        return change is None or await self._commit(change, unless_intents=True)

    # ---- placement --------------------------------------------------------------------

    @workflow.update
    async def place(self) -> OrderReceipt:
        """Price, check limits, lock stock: the order exists once this returns."""
        if self.inp.resume:  # a placement retried after reconciliation: the stored order
            await workflow.wait_condition(lambda: self.state is not None)
        async with self.lock:
            if self.state is not None:
                return receipt(self.state)
            if self.rejection is not None:
                raise self.rejection
            try:
                done: OrderState | Placement = await calls.db(
                    ids.PLACE_ORDER,
                    PlaceOrderInput(
                        **self.inp.model_dump(), now=workflow.now(), write_seq=_write_seq()
                    ),
                    "price, limits, stock",
                    PLACED,
                )
            except ACTIVITY_FAILURES as err:
                self.rejection = unwrap(err)
                details.publish_rejected(self.inp.buyer_id, self.rejection)
                raise self.rejection from None
            self.state = done if isinstance(done, OrderState) else self._built(done)
            details.publish(self.state)
            return receipt(self.state)

    # ---- payment ----------------------------------------------------------------------

    @workflow.update
    async def pay(self, req: PayRequest) -> OrderReceipt:
        """Pay from the buyer's balance or credit line (no gateway involved)."""
        async with self.lock:
            state = self._placed()
            rule(rules.check_can_pay, state)  # again: the timer may have won the lock
            payment = Payment(
                channel=req.channel,
                txn_id=f"{req.channel}-{state.id}",
                amount_cents=state.total_cents,
                paid_at=workflow.now(),
            )
            self.seen_txns.add(payment.txn_id)
            await self._accept(payment, charge_wallet=True, actor=req.actor)
            return receipt(self._placed())

    @pay.validator
    def _validate_pay(self, req: PayRequest) -> None:
        state = self._placed()
        self._require_party(state, req.actor)
        if req.channel not in WALLET_CHANNELS:
            raise ApplicationError(
                f"{req.channel} is paid through a payment intent", type=ErrorCode.VALIDATION.value
            )
        rule(rules.check_can_pay, state)

    @workflow.signal
    async def payment_received(self, notice: PaymentNotice) -> None:
        """A gateway's payment: settles the order, or is refunded — never lost, never kept."""
        if self.state is None and self.rejection is None:  # don't yield the lock's turn
            await workflow.wait_condition(
                lambda: self.state is not None or self.rejection is not None
            )
        async with self.lock:
            await self._take(notice)

    @workflow.signal
    async def supplier_event(self, notice: SupplierNotice) -> None:
        """The supplier's callback: shipped (待收货), received (已收货) or rejected (已拒收)."""
        busy = self.purchasing | self.cancelling
        if notice.package_id in busy:  # news may outrun our own call's answer
            await workflow.wait_condition(
                lambda: notice.package_id not in self.purchasing | self.cancelling
            )
        async with self.lock:
            if self.state is None:
                return
            try:
                await self._supplier_news(notice)
            except ApplicationError as err:
                await self._failed("supplier_event", err)

    # ---- shipping, receipt, rejection -------------------------------------------------

    @workflow.update
    async def ship(self, req: ShipRequest) -> OrderReceipt:
        async with self.lock:
            change = rule(
                rules.ship,
                self._placed(),
                req.package_id,
                req.carrier,
                req.tracking_no,
                workflow.now(),
                req.actor,
            )
            await self._commit(change)
            return receipt(change.state)

    @ship.validator
    def _validate_ship(self, req: ShipRequest) -> None:
        state = self._placed()
        self._require_party(state, req.actor)
        rule(rules.check_can_ship, state, req.package_id, req.carrier, req.tracking_no)

    @workflow.update
    async def confirm_receipt(self, req: ConfirmRequest) -> OrderReceipt:
        async with self.lock:
            change = rule(
                rules.confirm_receipt,
                self._placed(),
                req.package_ids,
                workflow.now(),
                req.actor,
                "buyer",
            )
            await self._commit(change)
            return receipt(change.state)

    @confirm_receipt.validator
    def _validate_confirm(self, req: ConfirmRequest) -> None:
        state = self._placed()
        self._require_party(state, req.actor)
        rule(rules.check_can_confirm, state, req.package_ids)

    @workflow.update
    async def extend_receipt(self, req: ExtendRequest) -> OrderReceipt:
        async with self.lock:
            change = rule(rules.extend_receipt, self._placed(), workflow.now(), req.actor)
            await self._commit(change)
            return receipt(change.state)

    @extend_receipt.validator
    def _validate_extend(self, req: ExtendRequest) -> None:
        state = self._placed()
        self._require_party(state, req.actor)
        rule(rules.check_can_extend, state)

    @workflow.signal
    async def carrier_event(self, notice: CarrierNotice) -> None:
        """Carrier news: DELIVERED (sign-off) or REJECTED (the buyer refused it at the door)."""
        async with self.lock:
            if self.state is None or notice.event == "IN_TRANSIT":
                return
            try:
                await self._carrier_news(notice)
            except ApplicationError as err:
                await self._failed("carrier_event", err)

    @workflow.update
    async def confirm_return(self, req: PackageRequest) -> OrderReceipt:
        """The merchant confirms a rejected package arrived back: its goods are on hand."""
        async with self.lock:
            state = self._placed()
            change = rule(fulfil.confirm_return, state, req.package_id, workflow.now(), req.actor)
            await self._commit(change)
            return receipt(change.state)

    @confirm_return.validator
    def _validate_confirm_return(self, req: PackageRequest) -> None:
        state = self._placed()
        self._require_party(state, req.actor)
        rule(fulfil.check_can_confirm_return, state, req.package_id)

    # ---- review -----------------------------------------------------------------------

    @workflow.update
    async def review(self, req: ReviewRequest) -> OrderReceipt:
        """The buyer reviews the completed order once; its rows go in with the event."""
        async with self.lock:
            change = rule(
                rules.review, self._placed(), req.rating, req.text, workflow.now(), req.actor
            )
            await self._commit(change, review=req)
            return receipt(change.state)

    @review.validator
    def _validate_review(self, req: ReviewRequest) -> None:
        state = self._placed()
        self._require_party(state, req.actor)
        rule(rules.check_can_review, state)

    # ---- closing ----------------------------------------------------------------------

    @workflow.update
    async def cancel(self, req: CloseRequest) -> OrderReceipt:
        """The buyer cancels: unpaid, or paid with nothing shipped (every package is
        intercepted; a purchased KEPLER package only if the supplier agrees)."""
        async with self.lock:
            rule(fulfil.check_can_cancel, self._placed())
            self._refuse_while_busy()
            await self._cancel(req, CloseReason.BUYER_CANCELLED)
        await self._refunds_answered()
        return receipt(self._placed())

    @cancel.validator
    def _validate_cancel(self, req: CloseRequest) -> None:
        state = self._placed()
        self._require_party(state, req.actor)
        rule(fulfil.check_can_cancel, state)
        self._refuse_while_busy()

    @workflow.update
    async def close(self, req: CloseRequest) -> OrderReceipt:
        """The merchant closes an unpaid order."""
        async with self.lock:
            rule(rules.check_can_close, self._placed(), CloseReason.SELLER_CLOSED)
            return receipt(await self._close_unpaid(CloseReason.SELLER_CLOSED, req))

    @close.validator
    def _validate_close(self, req: CloseRequest) -> None:
        state = self._placed()
        self._require_party(state, req.actor)
        rule(rules.check_can_close, state, CloseReason.SELLER_CLOSED)

    # ---- refunds before shipment ------------------------------------------------------

    @workflow.update
    async def request_refund(self, req: RefundLinesRequest) -> RefundRequest:
        async with self.lock:
            state = self._placed()
            if any(r.id == req.request_id for r in state.refund_requests):
                return refunds.request_of(state, req.request_id)  # the same request again
            change = rule(
                refunds.request_refund,
                state,
                req.request_id,
                req.lines,
                req.reason,
                workflow.now(),
                req.actor,
            )
            await self._commit(change)
            return refunds.request_of(change.state, req.request_id)

    @request_refund.validator
    def _validate_request_refund(self, req: RefundLinesRequest) -> None:
        state = self._placed()
        self._require_party(state, req.actor)
        if not any(r.id == req.request_id for r in state.refund_requests):
            rule(refunds.check_can_request, state, req.lines)

    @workflow.update
    async def decide_refund(self, req: DecideRefundRequest) -> RefundRequest:
        """The merchant agrees (the money and stock go back) or refuses, with a reason."""
        async with self.lock:
            state = self._placed()
            rule(refunds.check_can_decide, state, req.request_id)
            if req.agree:
                self._refuse_while_busy()
                await self._agree_refund(req.request_id, req.actor)
            else:
                change = rule(
                    refunds.refuse_request,
                    state,
                    req.request_id,
                    req.reason,
                    workflow.now(),
                    req.actor,
                )
                await self._commit(change)
        await self._refunds_answered()
        return refunds.request_of(self._placed(), req.request_id)

    @decide_refund.validator
    def _validate_decide_refund(self, req: DecideRefundRequest) -> None:
        state = self._placed()
        self._require_party(state, req.actor)
        rule(refunds.check_can_decide, state, req.request_id)
        if req.agree:
            self._refuse_while_busy()

    @workflow.update
    async def retry_refund(self, req: RetryRefundRequest) -> Refund:
        """An admin tries a FAILED refund again, with the same refund id; answers with the
        channel's answer (SUCCEEDED, or FAILED again with its reason)."""
        async with self.lock:
            state = self._placed()
            failed = rule(refunds.check_can_retry, state, req.refund_id)
            if workflow.patched(compat.REFUNDS_OUTSIDE_LOCK):
                started = rule(refunds.retry_started, state, failed.id, workflow.now(), req.actor)
                await self._commit(started)
            else:
                payment = refunds.paid_by(state, failed)
                again = failed.model_copy(update={"status": "SUCCEEDED"})
                done = await self._move_money(again, payment)
                await self._commit(rule(refunds.retried, state, done, workflow.now(), req.actor))
                return done
        await self._refunds_answered()
        return next(r for r in self._placed().refunds if r.id == failed.id)

    @retry_refund.validator
    def _validate_retry_refund(self, req: RetryRefundRequest) -> None:
        rule(refunds.check_can_retry, self._placed(), req.refund_id)

    # ---- after-sales cases: each its own workflow -------------------------------------

    @workflow.update
    async def open_case(self, req: OpenCaseRequest) -> AfterSalesCase:
        """The order holds the case's units, saves the case's first snapshot with its own,
        and starts the case's workflow (its own timers; not a child: a case outlives nothing
        of the order's run, and an activity starts it once, by id)."""
        async with self.lock:
            change, case = rule(
                after_sales.new_case,
                self._placed(),
                case_id=req.case_id,
                type_=req.type,
                reason=req.reason,
                description=req.description,
                lines=req.lines,
                images=req.images,
                service_phone=req.service_phone,
                now=workflow.now(),
                actor=req.actor,
            )
            await self._commit(change, case=case)
        await calls.partner(  # outside the lock: a call to Temporal itself
            ids.START_CASE, case, f"start after-sales-{case.id}", calls.START_CASE
        )
        return case

    @open_case.validator
    def _validate_open_case(self, req: OpenCaseRequest) -> None:
        state = self._placed()
        self._require_party(state, req.actor)
        rule(after_sales.check_can_open, state, req.lines, workflow.now(), req.type)

    @workflow.signal
    async def settle_case(self, req: SettleCaseRequest) -> None:
        """A case ended: refund its units (at most the agreed amount; restock a return), or
        free them; then tell the case. Idempotent: a settled case is told its refund again."""
        async with self.lock:
            try:
                result = await self._settle_case(req)
            except DomainError as err:  # a case this order never held: nothing to settle
                workflow.logger.error("case %s not settled: %s", req.case_id, err.message)
                result = CaseSettlement(error=err.message)
            except ApplicationError as err:  # recorded: the case waits for an operator's retry
                self.unsettled[req.case_id] = req
                await self._failed("settle_case", err)
                return
        if result.refund is not None and result.refund.status == PENDING:
            # the case learns the channel's answer, not "under way" (the lock is free meanwhile)
            result = CaseSettlement(refund=await self._refund_outcome(result.refund.id))
        case = workflow.get_external_workflow_handle(ids.case_workflow_id(req.case_id))
        await case.signal(ids.CASE_SETTLED_SIGNAL, result)

    @workflow.signal
    async def reship_case(self, req: ReshipCaseRequest) -> None:
        """An exchange's replacement, asked by its case; the case is told the packages, or
        why none went out (OUT_OF_STOCK: nothing taken, nothing shipped)."""
        async with self.lock:
            try:
                outcome = await self._reship_case(req)
            except DomainError as err:
                outcome = ReshipOutcome(code=err.code.value, error=err.message)
            except ApplicationError as err:
                outcome = ReshipOutcome(code=err.type or "ORDER_ERROR", error=err.message)
        case = workflow.get_external_workflow_handle(ids.case_workflow_id(req.case_id))
        await case.signal(ids.CASE_RESHIPPED_SIGNAL, outcome)

    # ---- reads ------------------------------------------------------------------------

    @workflow.query
    def current(self) -> OrderState | None:
        return self.state
