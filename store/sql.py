"""Small dialect-neutral helpers."""

from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase


async def insert_ignore(session: AsyncSession, table: type[DeclarativeBase], **values: Any) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when the row was new."""
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    mod: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = mod.insert(table).values(**values).on_conflict_do_nothing()
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
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    mod: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = mod.insert(table).values(**insert)
    stmt = stmt.on_conflict_do_update(index_elements=[conflict_on], set_=update, where=where)
    await session.execute(stmt)
