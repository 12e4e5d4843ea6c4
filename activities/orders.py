"""The order saga's activities. Database writes are short: the workflow runs them locally."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.errors import DomainError, ErrorCode
from domain.messages import AcceptPaymentInput, PlaceOrderInput, RefundPaymentInput, SaveOrderInput
from domain.models import GATEWAY_CHANNELS, OrderState, Refund
from gateways.payments import PaymentGatewayClient, PaymentGatewayError
from store import orders, payments, placement, stock
from store.db import Database
from workflows import ids
from workflows.errors import to_application_error


class OrderActivities:
    def __init__(self, db: Database, gateway: PaymentGatewayClient | None) -> None:
        self.db = db
        self.gateway = gateway

    @asynccontextmanager
    async def _txn(self) -> AsyncIterator[AsyncSession]:
        """One transaction; a business refusal becomes a non-retryable ApplicationError."""
        try:
            async with self.db.transaction() as session:
                yield session
        except DomainError as err:
            raise to_application_error(err) from None

    @activity.defn(name=ids.PLACE_ORDER)
    async def place_order(self, inp: PlaceOrderInput) -> OrderState:
        async with self._txn() as session:
            return await placement.place_order(session, inp)

    @activity.defn(name=ids.ACCEPT_PAYMENT)
    async def accept_payment(self, inp: AcceptPaymentInput) -> OrderState:
        async with self._txn() as session:
            return await payments.accept_payment(session, inp)

    @activity.defn(name=ids.SAVE_ORDER)
    async def save_order(self, inp: SaveOrderInput) -> None:
        try:
            async with self._txn() as session:
                if inp.release_stock:
                    await stock.release(session, inp.state.id)
                await orders.save(session, inp.state, inp.event)
        except IntegrityError as err:
            if "tracking" not in str(err).lower():
                raise
            raise ApplicationError(
                "this carrier's tracking number is already used by another package",
                type=ErrorCode.INVALID_TRANSITION.value,
                non_retryable=True,
            ) from None

    @activity.defn(name=ids.REFUND_PAYMENT)
    async def refund_payment(self, inp: RefundPaymentInput) -> Refund:
        """Money back through the paying channel, then the ledger; idempotent on refund id."""
        refund = inp.refund
        if refund.channel in GATEWAY_CHANNELS:
            if self.gateway is None:
                raise ApplicationError("no payment gateway configured", non_retryable=True)
            try:
                await self.gateway.refund(
                    refund.txn_id, refund.id, refund.amount_cents, refund.reason
                )
            except PaymentGatewayError as err:
                raise ApplicationError(
                    str(err),
                    type=ErrorCode.PAYMENT_GATEWAY_ERROR.value,
                    non_retryable=not err.retryable,
                ) from err
        async with self._txn() as session:
            await payments.record_refund(session, inp.order_id, inp.payment, refund, inp.note_event)
        return refund
