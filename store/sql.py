"""Small dialect-neutral helpers."""

from typing import Any

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
