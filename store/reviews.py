"""Verified reviews: written with the order's REVIEWED event, listed per SKU from here alone."""

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.orders import keyset
from store.sql import insert_ignore
from store.tables import ReviewRow


async def add(
    session: AsyncSession,
    *,
    order_id: str,
    buyer_id: str,
    skus: list[str],
    rating: int,
    text: str,
    at: datetime,
) -> bool:
    """One row per SKU of the order; False when this order's review is already stored (a
    retried write, or a second review racing the first: the unique key lets one win)."""
    fresh = [
        await insert_ignore(
            session,
            ReviewRow,
            id=f"{order_id}:{sku}",
            order_id=order_id,
            sku=sku,
            buyer_id=buyer_id,
            rating=rating,
            text=text,
            created_at=at,
        )
        for sku in dict.fromkeys(skus)
    ]
    return all(fresh)


async def summary(session: AsyncSession, sku: str) -> tuple[float | None, int]:
    """(average rating, count) of a SKU's reviews."""
    avg, count = (
        await session.execute(
            select(func.avg(ReviewRow.rating), func.count()).where(ReviewRow.sku == sku)
        )
    ).one()
    return (round(float(avg), 2) if avg is not None else None), int(count)


async def page(
    session: AsyncSession, sku: str, limit: int, cursor: str | None
) -> tuple[list[ReviewRow], str | None]:
    """Newest first; raises ValueError on a cursor we did not make."""
    return await keyset(
        session, select(ReviewRow).where(ReviewRow.sku == sku), ReviewRow, limit, cursor
    )
