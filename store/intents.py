"""Payment intents opened at the gateway, by order: before an unpaid order ends, each is
closed there (or found paid)."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

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
) -> None:
    """Keep an intent the gateway opened for an order (the gateway's same intent again: once)."""
    await insert_ignore(
        session,
        PaymentIntentRow,
        intent_id=intent_id,
        order_id=order_id,
        channel=channel,
        amount_cents=amount_cents,
        created_at=now,
    )


async def of_order(session: AsyncSession, order_id: str) -> list[str]:
    """The ids of the intents opened for an order, oldest first."""
    rows = await session.scalars(
        select(PaymentIntentRow.intent_id)
        .where(PaymentIntentRow.order_id == order_id)
        .order_by(PaymentIntentRow.created_at, PaymentIntentRow.intent_id)
    )
    return list(rows)
