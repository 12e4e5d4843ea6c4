"""The console's server-side sessions: the cookie holds an opaque token, a row here its
sha256, who signed in, and until when the session may live."""

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from store.tables import ConsoleSessionRow

TOUCH_EVERY = timedelta(seconds=60)  # last_seen_at is written at most this often


async def begin(
    session: AsyncSession,
    key: str,
    user_id: str,
    role: str,
    shop_id: str | None,
    expires_at: datetime,
    now: datetime,
) -> None:
    session.add(
        ConsoleSessionRow(
            id=key,
            user_id=user_id,
            role=role,
            shop_id=shop_id,
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
        )
    )


async def live(
    session: AsyncSession, key: str, now: datetime, idle: timedelta
) -> ConsoleSessionRow | None:
    """The session if it has not ended, expired or been idle for `idle` (a read)."""
    row = await session.get(ConsoleSessionRow, key)
    if (
        row is None
        or row.ended_at is not None
        or row.expires_at <= now
        or row.last_seen_at <= now - idle
    ):
        return None
    return row


async def touch(session: AsyncSession, key: str, now: datetime) -> None:
    """A use renews the session (callers write at most every TOUCH_EVERY)."""
    await session.execute(
        update(ConsoleSessionRow)
        .where(ConsoleSessionRow.id == key, ConsoleSessionRow.last_seen_at < now)
        .values(last_seen_at=now)
    )


async def end(session: AsyncSession, key: str, now: datetime) -> None:
    await session.execute(
        update(ConsoleSessionRow)
        .where(ConsoleSessionRow.id == key, ConsoleSessionRow.ended_at.is_(None))
        .values(ended_at=now)
    )


async def end_all(session: AsyncSession, user_id: str, now: datetime) -> int:
    """End every open session of `user_id`; how many were open."""
    ended = await session.scalars(
        update(ConsoleSessionRow)
        .where(ConsoleSessionRow.user_id == user_id, ConsoleSessionRow.ended_at.is_(None))
        .values(ended_at=now)
        .returning(ConsoleSessionRow.id)
    )
    return len(ended.all())
