"""A shop's settlement (结算) for a period: the money its orders took and gave back, read from
the payments and refunds ledgers (an order belongs to one shop, so each entry to one)."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Select, func, literal, select, union, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import RefundStatus
from store.tables import OrderRow, PaymentRow, RefundRow

BATCH = 1000  # orders read at a time


@dataclass(frozen=True)
class OrderLine:
    """One order's part of a period: what it was paid and refunded in it."""

    order_id: str
    paid_cents: int
    refunded_cents: int

    @property
    def net_cents(self) -> int:
        return self.paid_cents - self.refunded_cents


@dataclass(frozen=True)
class Totals:
    paid_cents: int
    refunded_cents: int  # refunds booked (succeeded or on their way), failed ones not
    orders: int  # orders with a payment or a refund booked in the period

    @property
    def net_cents(self) -> int:
        return self.paid_cents - self.refunded_cents


def _paid(shop_id: str, start: datetime, end: datetime) -> Select[str, int]:
    return (
        select(PaymentRow.order_id, PaymentRow.amount_cents.label("paid"))
        .join(OrderRow, OrderRow.id == PaymentRow.order_id)
        .where(OrderRow.shop_id == shop_id, PaymentRow.paid_at >= start, PaymentRow.paid_at < end)
    )


def _refunded(shop_id: str, start: datetime, end: datetime) -> Select[str, int]:
    return (
        select(RefundRow.order_id, RefundRow.amount_cents.label("refunded"))
        .join(OrderRow, OrderRow.id == RefundRow.order_id)
        .where(
            OrderRow.shop_id == shop_id,
            RefundRow.status != RefundStatus.FAILED.value,
            RefundRow.created_at >= start,
            RefundRow.created_at < end,
        )
    )


async def by_order(
    session: AsyncSession, shop_id: str, start: datetime, end: datetime
) -> AsyncIterator[OrderLine]:
    """Each order with money booked in [start, end), by order id, read a thousand at a
    time (a year of a big shop is many rows)."""
    paid = _paid(shop_id, start, end).subquery()
    refunded = _refunded(shop_id, start, end).subquery()
    zero = literal(0, BigInteger)
    entries = union_all(
        select(paid.c.order_id, paid.c.paid, zero.label("refunded")),
        select(refunded.c.order_id, zero, refunded.c.refunded),
    ).subquery()
    after, batch = "", BATCH
    while batch == BATCH:  # pages of orders by id: no cursor, so reads may autocommit
        query = (
            select(entries.c.order_id, func.sum(entries.c.paid), func.sum(entries.c.refunded))
            .where(entries.c.order_id > after)
            .group_by(entries.c.order_id)
            .order_by(entries.c.order_id)
            .limit(BATCH)
        )
        rows = (await session.execute(query)).all()
        for order_id, paid_cents, refunded_cents in rows:
            yield OrderLine(order_id, int(paid_cents or 0), int(refunded_cents or 0))
        batch = len(rows)
        after = rows[-1][0] if rows else after


async def totals(session: AsyncSession, shop_id: str, start: datetime, end: datetime) -> Totals:
    """The period's sums, computed by the database."""
    paid = _paid(shop_id, start, end).subquery()
    refunded = _refunded(shop_id, start, end).subquery()
    paid_cents = await session.scalar(select(func.coalesce(func.sum(paid.c.paid), 0)))
    refunded_cents = await session.scalar(select(func.coalesce(func.sum(refunded.c.refunded), 0)))
    ids = union(select(paid.c.order_id), select(refunded.c.order_id)).subquery()
    orders = await session.scalar(select(func.count()).select_from(ids))
    return Totals(int(paid_cents or 0), int(refunded_cents or 0), int(orders or 0))
