"""The order saga's activities. Database writes are short: the workflow runs them locally."""

from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.common import MetricMeter
from temporalio.exceptions import ApplicationError

from activities.txn import txn
from domain.errors import ErrorCode
from domain.messages import (
    AcceptPaymentInput,
    OrderErrorInput,
    PlaceOrderInput,
    PurchaseInput,
    RefundPaymentInput,
    SaveOrderInput,
    SupplierCancelInput,
    SupplierCancelResult,
)
from domain.models import (
    GATEWAY_CHANNELS,
    SYSTEM,
    EventType,
    OrderEvent,
    OrderState,
    Refund,
    RefundStatus,
)
from domain.order import PaymentAccepted, Placement, placement_of, refund_failed
from gateways.payments import PaymentGatewayClient, PaymentGatewayError
from gateways.supplier import SupplierClient, SupplierError, SupplierItem
from runtime.metrics import BusinessMetrics
from store import cases, intents, orders, payments, placement, reviews, stock
from store.db import Database
from workflows import ids


class OrderActivities:
    def __init__(
        self,
        db: Database,
        gateway: PaymentGatewayClient | None,
        supplier: SupplierClient | None = None,
        supplier_notify_url: str = "",
        metrics: BusinessMetrics | None = None,
        max_unpaid_orders: int = placement.MAX_UNPAID_ORDERS,
    ) -> None:
        self.db = db
        self.max_unpaid_orders = max_unpaid_orders
        self.gateway = gateway
        self.supplier = supplier
        self.supplier_notify_url = supplier_notify_url
        self.metrics = metrics or BusinessMetrics(MetricMeter.noop)

    def _txn(self, *, write: bool = True) -> AbstractAsyncContextManager[AsyncSession]:
        return txn(self.db, write=write)

    @activity.defn(name=ids.PLACE_ORDER)
    async def place_order(self, inp: PlaceOrderInput) -> Placement:
        """The order is saved; the workflow builds it again from what this answers."""
        async with self._txn() as session:
            state = await placement.place_order(session, inp, self.max_unpaid_orders)
        self.metrics.placed()
        return placement_of(state)

    @activity.defn(name=ids.LOAD_ORDER)
    async def load_order(self, order_id: str) -> OrderState:
        async with self._txn(write=False) as session:
            state = await orders.get(session, order_id)
        if state is None:
            raise ApplicationError(
                f"order {order_id} is not stored",
                type=ErrorCode.NOT_FOUND.value,
                non_retryable=True,
            )
        return state

    @activity.defn(name=ids.ACCEPT_PAYMENT)
    async def accept_payment(self, inp: AcceptPaymentInput) -> PaymentAccepted:
        """The paid order is saved; the workflow marks it paid again from what this answers."""
        try:
            async with self._txn() as session:
                state = await payments.accept_payment(session, inp)
        except orders.StaleWrite:  # a later workflow task has moved on: what it stored
            return PaymentAccepted(state=await self.load_order(inp.state.id))
        self.metrics.paid()
        return PaymentAccepted(allocations=state.allocations, at=state.updated_at)

    @activity.defn(name=ids.SAVE_ORDER)
    async def save_order(self, inp: SaveOrderInput) -> None:
        await self._save_order(inp)

    @activity.defn(name=ids.CLOSE_UNLESS_INTENTS)
    async def close_unless_intents(self, inp: SaveOrderInput) -> bool:
        """An unpaid order's close, saved as `save_order` saves it, but only if no payment
        intent was ever opened for it (read in the same transaction); False: it has some,
        which the workflow closes at the gateway first. A wallet-only order closes in one
        local activity instead of a gateway activity and then a save."""
        return await self._save_order(inp, unless_intents=True)

    async def _save_order(self, inp: SaveOrderInput, *, unless_intents: bool = False) -> bool:
        try:
            async with self._txn() as session:
                if unless_intents and await intents.of_order(session, inp.state.id):
                    return False
                if inp.release_stock:
                    await stock.release(session, inp.state)
                if inp.restore:
                    await stock.restore(session, inp.state.id, inp.restore)
                if inp.returns:
                    await stock.return_units(session, inp.state.id, inp.return_ref, inp.returns)
                if inp.takes:
                    await stock.take_units(session, inp.state.id, inp.take_ref, inp.takes)
                if inp.case is not None:  # a case opened: its first snapshot
                    await cases.save(session, inp.case)
                if inp.review is not None:
                    await reviews.add(
                        session,
                        order_id=inp.state.id,
                        buyer_id=inp.state.buyer_id,
                        skus=[line.sku for line in inp.state.lines],
                        rating=inp.review.rating,
                        text=inp.review.text,
                        at=inp.event.at,
                    )
                if refund_failed(inp.state):
                    await payments.note_failed_refunds(session, inp.state)
                if inp.state.close_reason is not None:
                    await stock.end_purchases(session, inp.state.id)
                await orders.save(session, inp.state, inp.event, write_seq=inp.write_seq)
        except orders.StaleWrite:  # a later workflow task wrote this order: nothing of ours
            activity.logger.warning("stale write of order %s skipped", inp.state.id)
            return True
        self.metrics.saved(inp.event)
        if inp.case is not None:
            self.metrics.case(inp.case.status.value)
        return True

    @activity.defn(name=ids.NOTE_ORDER_ERROR)
    async def note_order_error(self, inp: OrderErrorInput) -> None:
        """ORDER_ERROR in the order's event log, and its flag; idempotent per step attempt."""
        event = OrderEvent(
            order_id=inp.order_id,
            version=0,
            type=EventType.ORDER_ERROR,
            actor=SYSTEM,
            at=inp.at,
            data={"step": inp.step, "reason": inp.reason},
        )
        async with self._txn() as session:
            await orders.note_error(session, event, f"error:{inp.write_seq}:{inp.step}"[:160])

    @activity.defn(name=ids.REFUND_PAYMENT)
    async def refund_payment(self, inp: RefundPaymentInput) -> Refund:
        """Money back through the paying channel, then the ledger; idempotent on refund id.
        Answers the refund SUCCEEDED; a refusal for good is a non-retryable error carrying
        the channel's reason."""
        refund = inp.refund.model_copy(update={"status": RefundStatus.SUCCEEDED, "failure": None})
        if refund.channel in GATEWAY_CHANNELS:
            async with self._txn(write=False) as session:  # never move another order's money
                await payments.check_txn_is(session, refund.txn_id, inp.order_id)
            if self.gateway is None:
                raise ApplicationError("no payment gateway configured", non_retryable=True)
            try:
                await self.gateway.refund(
                    refund.txn_id, refund.id, refund.amount_cents, refund.reason
                )
            except PaymentGatewayError as err:
                if not err.retryable:
                    self.metrics.refund(refund, "REFUSED")
                raise ApplicationError(
                    str(err),
                    type=ErrorCode.PAYMENT_GATEWAY_ERROR.value,
                    non_retryable=not err.retryable,
                ) from err
        async with self._txn() as session:
            await payments.record_refund(session, inp.order_id, inp.payment, refund, inp.note_event)
        self.metrics.refund(refund, "SUCCEEDED")
        return refund

    def _supplier(self) -> SupplierClient:
        if self.supplier is None:
            raise ApplicationError("no supplier configured", non_retryable=True)
        return self.supplier

    @activity.defn(name=ids.PURCHASE_FROM_SUPPLIER)
    async def purchase_from_supplier(self, inp: PurchaseInput) -> str:
        """Idempotent on the package id (the supplier's external reference): a retry after
        the supplier accepted gets the same supplier order back, never a second one."""
        items = [SupplierItem(sku=line.sku, quantity=line.quantity) for line in inp.package.lines]
        try:
            order = await self._supplier().place_order(
                inp.package.id, items, self.supplier_notify_url
            )
        except SupplierError as err:
            raise ApplicationError(
                str(err), type=ErrorCode.SUPPLIER_ERROR.value, non_retryable=not err.retryable
            ) from err
        return order.supplier_order_id

    @activity.defn(name=ids.CANCEL_SUPPLIER_ORDER)
    async def cancel_supplier_order(self, inp: SupplierCancelInput) -> SupplierCancelResult:
        """Ask the supplier to cancel; a refusal is an answer, not an error."""
        try:
            answer = await self._supplier().cancel(inp.supplier_order_id, inp.reason)
        except SupplierError as err:
            if err.retryable:
                raise
            return SupplierCancelResult(cancelled=False, reason=str(err))
        return SupplierCancelResult(cancelled=answer.cancelled, reason=answer.reason)
