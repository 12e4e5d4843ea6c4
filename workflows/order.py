"""The order saga: one workflow per order, id `order-<order id>`.

All state is one `OrderState`; every change is decided by `domain.order`, saved (snapshot +
event row, one transaction) by a local activity, then adopted and published. Requests that
the state does not allow are refused by update validators, so they write no history.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import after_sales, refunds
    from domain import fulfilment as fulfil
    from domain import order as rules
    from domain.after_sales import AfterSalesCase
    from domain.errors import DomainError, ErrorCode
    from domain.messages import (
        AcceptPaymentInput,
        CarrierNotice,
        CaseSettlement,
        CloseRequest,
        ConfirmRequest,
        DecideRefundRequest,
        ExtendRequest,
        OpenCaseRequest,
        OrderErrorInput,
        OrderReceipt,
        OrderWorkflowInput,
        PackageRequest,
        PaymentNotice,
        PayRequest,
        PlaceOrderInput,
        PurchaseInput,
        RefundLinesRequest,
        RefundPaymentInput,
        RetryRefundRequest,
        ReviewRequest,
        SaveOrderInput,
        SettleCaseRequest,
        ShipRequest,
        Stop,
        SupplierCancelInput,
        SupplierCancelResult,
        SupplierNotice,
        receipt,
    )
    from domain.models import (
        GATEWAY_CHANNELS,
        OPERATOR_UI,
        RECONCILER,
        SYSTEM,
        WALLET_CHANNELS,
        Actor,
        CloseReason,
        OrderState,
        OrderStatus,
        Package,
        PackageStatus,
        Payment,
        Refund,
        RefundRequest,
        RefundStatus,
    )
    from domain.order import PaymentAccepted, Placement
    from workflows import calls, compat, details, ids
    from workflows.errors import ACTIVITY_FAILURES, is_refusal, rule, unwrap


class NotOurs(Exception):
    """A refund of a transaction that settled another order: never made, never recorded as
    this order's money (the channel's word is `failure`)."""

    def __init__(self, failure: str) -> None:
        super().__init__(failure)
        self.failure = failure


PENDING = RefundStatus.PENDING
REFUND_ANSWER_WAIT = timedelta(seconds=3)  # an update waits this long for its refunds' answer


@workflow.defn
class OrderWorkflow:
    @workflow.init
    def __init__(self, inp: OrderWorkflowInput) -> None:
        self.inp = inp
        self.state: OrderState | None = None
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
        self._require_buyer(state, req.actor)
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

    async def _take(self, notice: PaymentNotice) -> None:
        """A payment, under the lock: taken once per transaction, never fatal."""
        if notice.txn_id in self.seen_txns:
            return  # the gateway said it twice
        self.seen_txns.add(notice.txn_id)
        try:
            await self._take_payment(notice)
        except ApplicationError as err:  # recorded; a redelivery is taken afresh
            self.seen_txns.discard(notice.txn_id)
            await self._failed("payment_received", err)

    async def _settle_intents(self) -> list[PaymentNotice]:
        """Before an unpaid order closes: close its payment intents at the gateway (trade
        close: nothing can be captured after), and get back what was paid on them whose
        callback never came (trade query). Without the lock. A gateway down past its patience
        does not keep the order open: the capture sweep finds a late capture, refunded then."""
        try:
            return await calls.partner(
                ids.SETTLE_OPEN_INTENTS,
                self.inp.order_id,
                "close the payment intents at the gateway",
                calls.SETTLE_INTENTS,
                list[PaymentNotice],
            )
        except ACTIVITY_FAILURES as err:
            workflow.logger.warning("intents of %s not closed: %s", self.inp.order_id, err)
            return []

    async def _take_payment(self, notice: PaymentNotice) -> None:
        payment = Payment(
            channel=notice.channel,
            txn_id=notice.txn_id,
            amount_cents=notice.amount_cents,
            paid_at=notice.paid_at,
        )
        if self.state is None:
            await self._refund(payment, "PLACEMENT_REJECTED")
            return
        problem = rules.payment_problem(self.state, payment)
        if problem is not None:
            await self._refund(payment, problem)
            return
        try:
            await self._accept(
                payment, charge_wallet=False, actor=Actor(kind="gateway", id=notice.channel)
            )
        except ApplicationError as err:
            workflow.logger.error("payment %s not accepted: %s", payment.txn_id, err)
            if err.type == ErrorCode.TXN_REUSED.value:  # another order's money: hands off
                return
            if not is_refusal(err):  # the store failed (recorded): not the payment's fault
                raise
            await self._refund(payment, err.type or "NOT_ACCEPTED")

    async def _accept(self, payment: Payment, *, charge_wallet: bool, actor: Actor) -> None:
        state = self._placed()
        try:
            paid: OrderState | PaymentAccepted = await calls.db(
                ids.ACCEPT_PAYMENT,
                AcceptPaymentInput(
                    state=state,
                    payment=payment,
                    charge_wallet=charge_wallet,
                    now=workflow.now(),
                    actor=actor,
                    write_seq=_write_seq(),
                ),
                "charge, deduct stock, split packages",
                PAID,
            )
        except ACTIVITY_FAILURES as err:
            error = unwrap(err)
            if error.type != ErrorCode.OUT_OF_STOCK.value:
                raise await self._store_failed("accept_payment", error) from None
            # a deduct-on-payment SKU sold out while the buyer paid: refund and close
            if payment.channel in GATEWAY_CHANNELS:
                await self._refund(payment, CloseReason.OUT_OF_STOCK_AT_PAYMENT.value)
            change = rules.close(
                self._placed(),
                CloseReason.OUT_OF_STOCK_AT_PAYMENT,
                workflow.now(),
                SYSTEM,
                note=error.message,
            )
            await self._commit(change)
            return
        if isinstance(paid, OrderState):  # a history recorded before receipts
            self.state = paid
        elif paid.state is not None:  # a later workflow task had moved the order on
            self.state = paid.state
        else:  # as the store marked it paid
            assert paid.at is not None
            self.state = rules.mark_paid(state, payment, paid.allocations, paid.at, actor).state
        details.publish(self.state)

    # ---- money back -------------------------------------------------------------------

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

    async def _intercept(self, package_ids: list[str], reason: str, actor: Actor) -> None:
        """Stop packages before they ship: refund each, restore its stock."""
        state = self._placed()
        assert state.payment is not None
        now = workflow.now()
        refunds = [
            await self._pay_back(fulfil.package_refund(state, pid, reason, now), state.payment)
            for pid in package_ids
        ]
        await self._commit(fulfil.cancel_packages(state, package_ids, refunds, now, actor, reason))

    # ---- supplier (KEPLER) ------------------------------------------------------------

    async def _purchase_due(self) -> None:
        """The cancel window is over: buy each due KEPLER package, once (the package id is
        the supplier's external reference). A supplier that refuses means an intercept."""
        for package in rules.due_purchases(self._placed(), workflow.now()):
            self.purchasing.add(package.id)
            try:
                supplier_order_id: str = await calls.partner(
                    ids.PURCHASE_FROM_SUPPLIER,
                    PurchaseInput(order_id=self.inp.order_id, package=package),
                    f"buy package {package.id} from the supplier",
                    calls.SUPPLIER_PURCHASE,
                    str,
                )
            except ACTIVITY_FAILURES as err:
                workflow.logger.warning("supplier did not take %s: %s", package.id, err)
                async with self.lock:
                    self.purchasing.discard(package.id)
                    await self._intercept([package.id], "SUPPLIER_REFUSED", SYSTEM)
                continue
            async with self.lock:
                self.purchasing.discard(package.id)
                change = fulfil.mark_purchased(
                    self._placed(), package.id, supplier_order_id, workflow.now(), SYSTEM
                )
                await self._commit(change)

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

    async def _supplier_news(self, notice: SupplierNotice) -> None:
        state, now = self._placed(), workflow.now()
        actor = Actor(kind="supplier", id=notice.supplier_order_id)
        try:
            fulfil.check_supplier_notice(state, notice.package_id, notice.supplier_order_id)
            if notice.state == "REJECTED":
                await self._reject(notice.package_id, actor, restocked=True)
                return
            if notice.state == "AWAITING_RECEIPT":
                change = fulfil.supplier_shipped(state, notice.package_id, now, actor)
            else:
                rules.check_can_confirm(state, [notice.package_id])
                change = rules.confirm_receipt(state, [notice.package_id], now, actor, "supplier")
        except DomainError as err:
            workflow.logger.warning("supplier event ignored: %s", err.message)
            return
        if change is not None:
            await self._commit(change)

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
        rule(rules.check_can_ship, self._placed(), req.package_id, req.carrier, req.tracking_no)

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
        self._require_buyer(state, req.actor)
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
        self._require_buyer(state, req.actor)
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

    async def _carrier_news(self, notice: CarrierNotice) -> None:
        actor = Actor(kind="carrier", id=notice.carrier)
        try:
            if notice.event == "REJECTED":
                await self._reject(notice.package_id, actor, restocked=False)
                return
            change = rules.carrier_delivered(
                self._placed(), notice.package_id, workflow.now(), actor
            )
        except DomainError as err:
            workflow.logger.warning("carrier event ignored: %s", err.message)
            return
        if change is not None:
            await self._commit(change)

    async def _reject(self, package_id: str, actor: Actor, *, restocked: bool) -> None:
        """拒收: refund the package's goods and freight share. Supplier goods are restocked
        on the supplier's word; our own come back when the location confirms arrival."""
        state = self._placed()
        fulfil.check_can_reject(state, package_id)
        assert state.payment is not None
        now = workflow.now()
        refund = await self._pay_back(
            fulfil.package_refund(state, package_id, "REJECTED", now), state.payment
        )
        await self._commit(
            fulfil.reject(state, package_id, refund, now, actor, restocked=restocked)
        )

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
        rule(fulfil.check_can_confirm_return, self._placed(), req.package_id)

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
        self._require_buyer(state, req.actor)
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

    @cancel.validator
    def _validate_cancel(self, req: CloseRequest) -> None:
        state = self._placed()
        self._require_buyer(state, req.actor)
        rule(fulfil.check_can_cancel, state)
        self._refuse_while_busy()

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

    async def _cancel_at_suppliers(self, req: CloseRequest, reason: CloseReason) -> None:
        """Ask each supplier holding a purchase to cancel it (the lock let go meanwhile). On a
        refusal, or when the order no longer allows a cancel once they answered, the packages
        already cancelled are intercepted alone and the buyer is told (409)."""
        cancelled: list[str] = []
        bought = [
            p
            for p in self._placed().packages
            if p.status is PackageStatus.PURCHASED and p.supplier_order_id
        ]
        try:
            for package in bought:
                answer = await self._ask_supplier_to_cancel(
                    package, req.reason or "buyer cancelled"
                )
                if not answer.cancelled:
                    raise ApplicationError(
                        f"the supplier refused to cancel package {package.id}: {answer.reason}; "
                        "the order goes on (ask for a refund once it arrives)",
                        {"package_id": package.id},
                        type=ErrorCode.SUPPLIER_REFUSED_CANCEL.value,
                        non_retryable=True,
                    )
                cancelled.append(package.id)
            rule(fulfil.check_can_cancel, self._placed())  # again: others came in meanwhile
        except ApplicationError:
            if cancelled:
                await self._intercept(cancelled, reason.value, req.actor)
            raise

    async def _ask_supplier_to_cancel(self, package: Package, reason: str) -> SupplierCancelResult:
        """Called with the lock held; orders started since it was let go while the supplier
        answers (other messages go on; a second cancel is refused with 409 meanwhile)."""
        assert package.supplier_order_id is not None
        call = calls.partner(
            ids.CANCEL_SUPPLIER_ORDER,
            SupplierCancelInput(
                package_id=package.id, supplier_order_id=package.supplier_order_id, reason=reason
            ),
            f"ask the supplier to cancel {package.id}",
            calls.SUPPLIER_CANCEL,
            SupplierCancelResult,
        )
        if not workflow.patched(compat.SUPPLIER_CANCEL_OUTSIDE_LOCK):
            answer: SupplierCancelResult = await call
            return answer
        self.cancelling.add(package.id)
        try:
            async with self._unlocked():
                answer = await call
        finally:
            self.cancelling.discard(package.id)
        return answer

    @asynccontextmanager
    async def _unlocked(self) -> AsyncIterator[None]:
        """Inside `async with self.lock`: let other messages in while a partner answers; the
        caller looks at the state afresh afterwards."""
        self.lock.release()
        try:
            yield
        finally:
            await self.lock.acquire()

    # ---- refunds before shipment (SPEC §6.1) ------------------------------------------

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
        self._require_buyer(state, req.actor)
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
        rule(refunds.check_can_decide, self._placed(), req.request_id)
        if req.agree:
            self._refuse_while_busy()

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

    # ---- after-sales cases (SPEC §6.2): each its own workflow ---------------------------

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
        self._require_buyer(state, req.actor)
        rule(after_sales.check_can_open, state, req.lines, workflow.now())

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

    @workflow.update
    async def close(self, req: CloseRequest) -> OrderReceipt:
        """The merchant closes an unpaid order."""
        async with self.lock:
            rule(rules.check_can_close, self._placed(), CloseReason.SELLER_CLOSED)
            return receipt(await self._close_unpaid(CloseReason.SELLER_CLOSED, req))

    @close.validator
    def _validate_close(self, req: CloseRequest) -> None:
        rule(rules.check_can_close, self._placed(), CloseReason.SELLER_CLOSED)

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

    # ---- reads and helpers ------------------------------------------------------------

    @workflow.query
    def current(self) -> OrderState | None:
        return self.state

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
    def _require_buyer(state: OrderState, actor: Actor) -> None:
        if actor.kind == "buyer" and actor.id != state.buyer_id:
            raise ApplicationError("not your order", type=ErrorCode.NOT_FOUND.value)

    async def _commit(
        self,
        change: rules.Change,
        *,
        case: AfterSalesCase | None = None,
        review: ReviewRequest | None = None,
    ) -> None:
        """Save the snapshot, its event and the stock effects the change carries in one
        transaction, then adopt and publish. A save that fails for good is recorded
        (ORDER_ERROR) and raised: the change is not adopted."""
        try:
            await calls.db(
                ids.SAVE_ORDER,
                SaveOrderInput(
                    state=change.state,
                    event=change.event,
                    release_stock=change.release_stock,
                    restore=change.restore,
                    returns=change.returns,
                    return_ref=change.return_ref,
                    case=case,
                    review=review,
                    write_seq=_write_seq(),
                ),
                change.event.type,
            )
        except ACTIVITY_FAILURES as err:
            raise await self._store_failed(change.event.type, unwrap(err)) from None
        self.state = change.state
        details.publish(self.state)
        self._start_refunds()

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
