"""Which database errors mean "unreachable" (a 503 the caller retries), judged by type: a
refused connection or one lost mid-query is; a refused statement is not."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from store.db import Database, unreachable

pytestmark = pytest.mark.postgres


async def test_a_connection_lost_mid_query_is_unreachable(pg_db: Database) -> None:
    async with pg_db.sessions() as session:
        pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with pg_db.sessions() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DBAPIError) as lost:
            await session.execute(text("SELECT 1"))
    assert unreachable(lost.value)


async def test_a_refused_connection_is_unreachable() -> None:
    nowhere = Database("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    try:
        with pytest.raises(ConnectionRefusedError) as refused:
            async with nowhere.sessions() as session:
                await session.execute(text("SELECT 1"))
    finally:
        await nowhere.dispose()
    assert unreachable(refused.value)


async def test_a_refused_statement_is_not_unreachable(pg_db: Database) -> None:
    with pytest.raises(DBAPIError) as refused:
        async with pg_db.sessions() as session:
            await session.execute(text("SELECT * FROM no_such_table"))
    assert not unreachable(refused.value)
