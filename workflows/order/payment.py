"""Payment: from the wallet (an update) or a gateway (a signal, taken once per
transaction); what the order cannot keep is refunded."""

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import order as rules
    from domain.errors import ErrorCode
    from domain.messages import (
        AcceptPaymentInput,
        PaymentNotice,
    )
    from domain.models import (
        GATEWAY_CHANNELS,
        SYSTEM,
        Actor,
        CloseReason,
        OrderState,
        Payment,
    )
    from domain.order import PaymentAccepted
    from workflows import calls, details, ids
    from workflows.errors import ACTIVITY_FAILURES, is_refusal, unwrap
from workflows.order.refunding import Refunding
from workflows.order.run import PAID, _write_seq


class Payments(Refunding):
    """Payments taken once per transaction, or refunded."""

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
            # a deduct-on-payment SKU sold out while the buyer paid: refund and close (a
            # wallet's charge was undone with the step, unless the money came from outside:
            # a checkout's one debit)
            if payment.channel in GATEWAY_CHANNELS or not charge_wallet:
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
