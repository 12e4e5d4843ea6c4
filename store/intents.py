"""Payment intents opened at the gateway, by order: before an unpaid order ends, each is
closed there (or found paid)."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain import checkout
from domain.errors import DomainError
from domain.messages import PaymentNotice
from store.sql import insert_ignore
from store.tables import PaymentIntentRow


async def record(
    session: AsyncSession,
    *,
    intent_id: str,
    order_id: str,
    channel: str,
    amount_cents: int,
    now: datetime,
    shares: dict[str, int] | None = None,
) -> None:
    """Keep an intent the gateway opened for an order, or for a checkout with each order's
    share (the gateway's same intent again: once)."""
    await insert_ignore(
        session,
        PaymentIntentRow,
        intent_id=intent_id,
        order_id=order_id,
        channel=channel,
        amount_cents=amount_cents,
        created_at=now,
        shares=shares,
    )


async def shares_of(
    session: AsyncSession, checkout_id: str, amount_cents: int
) -> dict[str, int] | None:
    """How a payment of `amount_cents` for a checkout splits among its orders: the shares of
    the latest intent opened for it at that amount (None: no such intent)."""
    shares: dict[str, int] | None = await session.scalar(
        select(PaymentIntentRow.shares)
        .where(
            PaymentIntentRow.order_id == checkout_id,
            PaymentIntentRow.amount_cents == amount_cents,
        )
        .order_by(PaymentIntentRow.created_at.desc(), PaymentIntentRow.intent_id.desc())
        .limit(1)
    )
    return shares or None


async def of_order(session: AsyncSession, order_id: str) -> list[str]:
    """The ids of the intents opened for an order, oldest first."""
    rows = await session.scalars(
        select(PaymentIntentRow.intent_id)
        .where(PaymentIntentRow.order_id == order_id)
        .order_by(PaymentIntentRow.created_at, PaymentIntentRow.intent_id)
    )
    return list(rows)


async def parts_of(session: AsyncSession, notice: PaymentNotice) -> dict[str, PaymentNotice]:
    """A gateway payment by the order it pays: itself, or, paying a checkout, one share per
    order as the checkout's intent of that amount split it. A payment no intent asked for
    stays whole (it goes back as a payment for no order)."""
    shares = await shares_of(session, notice.order_id, notice.amount_cents)
    if shares:
        try:
            return checkout.split(notice, shares)
        except DomainError:
            pass
    return {notice.order_id: notice}
