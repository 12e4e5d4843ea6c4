"""Small dialect-neutral helpers."""

from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase


def _dialect(session: AsyncSession) -> Any:
    """The dialect module whose INSERT knows ON CONFLICT: PostgreSQL's or SQLite's."""
    name = session.bind.dialect.name if session.bind else "sqlite"
    return postgresql if name == "postgresql" else sqlite


async def insert_ignore(session: AsyncSession, table: type[DeclarativeBase], **values: Any) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when the row was new."""
    stmt = _dialect(session).insert(table).values(**values).on_conflict_do_nothing()
    result: Any = await session.execute(stmt)
    return bool(result.rowcount)


async def upsert_newer(
    session: AsyncSession,
    table: type[DeclarativeBase],
    *,
    conflict_on: str,
    insert: dict[str, Any],
    update: dict[str, Any],
    where: ColumnElement[bool],
) -> None:
    """INSERT `insert`, or on a `conflict_on` clash UPDATE with `update` only `where` it
    holds (e.g. the stored version is older): one statement on SQLite and PostgreSQL."""
    stmt = _dialect(session).insert(table).values(**insert)
    stmt = stmt.on_conflict_do_update(index_elements=[conflict_on], set_=update, where=where)
    await session.execute(stmt)


async def insert_locked(
    session: AsyncSession, table: type[DeclarativeBase], keys: list[str], **values: Any
) -> None:
    """Make the row if missing and hold its lock until the transaction ends, in one
    statement: on PostgreSQL an upsert (it locks the row it inserts or finds); SQLite admits
    one writer at a time, so there a plain insert-if-missing does."""
    if _dialect(session) is sqlite:
        await insert_ignore(session, table, **values)
        return
    stmt = postgresql.insert(table).values(**values)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=keys, set_={keys[0]: stmt.excluded[keys[0]]})
    )
