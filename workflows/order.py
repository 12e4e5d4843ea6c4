"""The order saga: one workflow per order, id `order-<order id>`.

All state is one `OrderState`; every change is decided by `domain.order`, saved (snapshot +
event row, one transaction) by a local activity, then adopted and published. Requests that
the state does not allow are refused by update validators, so they write no history.
"""

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import order as rules
    from domain.errors import DomainError, ErrorCode
    from domain.messages import (
        AcceptPaymentInput,
        CarrierNotice,
        CloseRequest,
        ConfirmRequest,
        ExtendRequest,
        OrderWorkflowInput,
        PaymentNotice,
        PayRequest,
        PlaceOrderInput,
        RefundPaymentInput,
        SaveOrderInput,
        ShipRequest,
    )
    from domain.models import (
        GATEWAY_CHANNELS,
        SYSTEM,
        WALLET_CHANNELS,
        Actor,
        CloseReason,
        OrderState,
        OrderStatus,
        Payment,
        Refund,
    )
    from workflows import details, ids
    from workflows.errors import ACTIVITY_FAILURES, rule, to_application_error, unwrap

DB_TIMEOUT = timedelta(seconds=30)
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5)
)
REFUND_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5))


@workflow.defn
class OrderWorkflow:
    @workflow.init
    def __init__(self, inp: OrderWorkflowInput) -> None:
        self.inp = inp
        self.state: OrderState | None = None
        self.rejection: ApplicationError | None = None
        self.lock = asyncio.Lock()
        self.seen_txns: set[str] = set()

    # ---- main line --------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: OrderWorkflowInput) -> OrderState | None:
        await workflow.wait_condition(lambda: self.state is not None or self.rejection is not None)
        while self.state is not None and not rules.is_finished(self.state, workflow.now()):
            deadline = rules.next_deadline(self.state)
            version = self.state.version
            if deadline is None:
                await workflow.wait_condition(self._moved_on(version))
                continue
            left = (deadline.at - workflow.now()).total_seconds()
            if left > 0:
                try:
                    await workflow.wait_condition(
                        self._moved_on(version),
                        timeout=left,
                        timeout_summary=f"{deadline.kind}: {deadline.describe()}",
                    )
                    continue
                except TimeoutError:
                    pass
            async with self.lock:
                if self.state.version == version and deadline.kind is not rules.DeadlineKind.FINISH:
                    change = rules.on_deadline(self.state, deadline, workflow.now())
                    if change is not None:
                        await self._commit(
                            change, release_stock=change.state.status is OrderStatus.CLOSED
                        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state

    def _moved_on(self, version: int) -> Callable[[], bool]:
        return lambda: self.state is not None and self.state.version != version

    # ---- placement --------------------------------------------------------------------

    @workflow.update
    async def place(self) -> OrderState:
        """Price, check limits, lock stock: the order exists once this returns."""
        async with self.lock:
            if self.state is not None:
                return self.state
            if self.rejection is not None:
                raise self.rejection
            try:
                self.state = await workflow.execute_local_activity(
                    ids.PLACE_ORDER,
                    PlaceOrderInput(**self.inp.model_dump(), now=workflow.now()),
                    result_type=OrderState,
                    start_to_close_timeout=DB_TIMEOUT,
                    retry_policy=DB_RETRY,
                    summary="price, limits, stock",
                )
            except ACTIVITY_FAILURES as err:
                self.rejection = unwrap(err)
                workflow.upsert_search_attributes(
                    [
                        ids.ORDER_STATUS.value_set(OrderStatus.CLOSED.value),
                        ids.BUYER_ID.value_set(self.inp.buyer_id),
                        ids.CLOSE_REASON.value_set(CloseReason.PLACEMENT_REJECTED.value),
                    ]
                )
                workflow.set_current_details(
                    f"**CLOSED** — {CloseReason.PLACEMENT_REJECTED}: {self.rejection.type}: "
                    f"{self.rejection.message}"
                )
                raise self.rejection from None
            details.publish(self.state)
            return self.state

    # ---- payment ----------------------------------------------------------------------

    @workflow.update
    async def pay(self, req: PayRequest) -> OrderState:
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
            return self._placed()

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
            if notice.txn_id in self.seen_txns:
                return  # the gateway said it twice
            self.seen_txns.add(notice.txn_id)
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
            if problem is None:
                try:
                    await self._accept(
                        payment,
                        charge_wallet=False,
                        actor=Actor(kind="gateway", id=notice.channel.value),
                    )
                except ApplicationError as err:
                    workflow.logger.error("payment %s not accepted: %s", payment.txn_id, err)
                    await self._refund(payment, err.type or "NOT_ACCEPTED")
            else:
                await self._refund(payment, problem)

    async def _accept(self, payment: Payment, *, charge_wallet: bool, actor: Actor) -> None:
        state = self._placed()
        try:
            self.state = await workflow.execute_local_activity(
                ids.ACCEPT_PAYMENT,
                AcceptPaymentInput(
                    state=state,
                    payment=payment,
                    charge_wallet=charge_wallet,
                    now=workflow.now(),
                    actor=actor,
                ),
                result_type=OrderState,
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
                summary="charge, deduct stock, split packages",
            )
        except ACTIVITY_FAILURES as err:
            error = unwrap(err)
            if error.type != ErrorCode.OUT_OF_STOCK.value:
                raise error from None
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
            await self._commit(change, release_stock=True)
            return
        details.publish(self.state)

    async def _refund(self, payment: Payment, reason: str) -> None:
        """Give a whole payment back through its channel and record it on the order."""
        refund = Refund(
            id=f"{payment.txn_id}-R",
            txn_id=payment.txn_id,
            channel=payment.channel,
            amount_cents=payment.amount_cents,
            reason=reason,
            borne_by="merchant",
            created_at=workflow.now(),
        )
        try:
            refund = await workflow.execute_activity(
                ids.REFUND_PAYMENT,
                RefundPaymentInput(order_id=self.inp.order_id, refund=refund, payment=payment),
                result_type=Refund,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=REFUND_RETRY,
                summary=f"refund {payment.txn_id}: {reason}",
            )
        except ACTIVITY_FAILURES as err:
            workflow.logger.error("refund %s failed for good: %s", refund.id, err)
            refund = refund.model_copy(update={"status": "FAILED"})
        if self.state is not None:
            await self._commit(rules.add_refund(self.state, refund, workflow.now(), SYSTEM))

    # ---- shipping and receipt ---------------------------------------------------------

    @workflow.update
    async def ship(self, req: ShipRequest) -> OrderState:
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
            return change.state

    @ship.validator
    def _validate_ship(self, req: ShipRequest) -> None:
        rule(rules.check_can_ship, self._placed(), req.package_id, req.carrier, req.tracking_no)

    @workflow.update
    async def confirm_receipt(self, req: ConfirmRequest) -> OrderState:
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
            return change.state

    @confirm_receipt.validator
    def _validate_confirm(self, req: ConfirmRequest) -> None:
        state = self._placed()
        self._require_buyer(state, req.actor)
        rule(rules.check_can_confirm, state, req.package_ids)

    @workflow.update
    async def extend_receipt(self, req: ExtendRequest) -> OrderState:
        async with self.lock:
            change = rule(rules.extend_receipt, self._placed(), workflow.now(), req.actor)
            await self._commit(change)
            return change.state

    @extend_receipt.validator
    def _validate_extend(self, req: ExtendRequest) -> None:
        state = self._placed()
        self._require_buyer(state, req.actor)
        rule(rules.check_can_extend, state)

    @workflow.signal
    async def carrier_event(self, notice: CarrierNotice) -> None:
        async with self.lock:
            if self.state is None or notice.event != "DELIVERED":
                return  # IN_TRANSIT changes nothing; rejection comes with fulfilment
            try:
                change = rules.carrier_delivered(
                    self.state,
                    notice.package_id,
                    workflow.now(),
                    Actor(kind="carrier", id=notice.carrier),
                )
            except DomainError as err:
                workflow.logger.warning("carrier event ignored: %s", err.message)
                return
            if change is not None:
                await self._commit(change)

    # ---- closing ----------------------------------------------------------------------

    @workflow.update
    async def cancel(self, req: CloseRequest) -> OrderState:
        """The buyer cancels an unpaid order."""
        return await self._close(CloseReason.BUYER_CANCELLED, req)

    @cancel.validator
    def _validate_cancel(self, req: CloseRequest) -> None:
        state = self._placed()
        self._require_buyer(state, req.actor)
        rule(rules.check_can_close, state, CloseReason.BUYER_CANCELLED)

    @workflow.update
    async def close(self, req: CloseRequest) -> OrderState:
        """The merchant closes an unpaid order."""
        return await self._close(CloseReason.SELLER_CLOSED, req)

    @close.validator
    def _validate_close(self, req: CloseRequest) -> None:
        rule(rules.check_can_close, self._placed(), CloseReason.SELLER_CLOSED)

    async def _close(self, reason: CloseReason, req: CloseRequest) -> OrderState:
        async with self.lock:
            state = self._placed()
            rule(rules.check_can_close, state, reason)
            change = rules.close(state, reason, workflow.now(), req.actor, note=req.reason)
            await self._commit(change, release_stock=True)
            return change.state

    # ---- reads and helpers ------------------------------------------------------------

    @workflow.query
    def current(self) -> OrderState | None:
        return self.state

    def _placed(self) -> OrderState:
        if self.state is None:
            raise ApplicationError("order is not placed", type=ErrorCode.NOT_FOUND.value)
        return self.state

    @staticmethod
    def _require_buyer(state: OrderState, actor: Actor) -> None:
        if actor.kind == "buyer" and actor.id != state.buyer_id:
            raise ApplicationError("not your order", type=ErrorCode.NOT_FOUND.value)

    async def _commit(self, change: rules.Change, *, release_stock: bool = False) -> None:
        """Save the snapshot and its event in one transaction, then adopt and publish."""
        try:
            await workflow.execute_local_activity(
                ids.SAVE_ORDER,
                SaveOrderInput(state=change.state, event=change.event, release_stock=release_stock),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
                summary=change.event.type,
            )
        except ACTIVITY_FAILURES as err:
            raise unwrap(err) from None
        self.state = change.state
        details.publish(self.state)


__all__ = ["OrderWorkflow", "to_application_error"]
