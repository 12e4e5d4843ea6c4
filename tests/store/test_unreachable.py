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


async def _pooled_backend(db: Database) -> int:
    """The server process of the connection the pool holds (one connection, checked in)."""
    async with db.sessions() as session:
        return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _kill(db: Database, pid: int) -> None:
    """End a server process from outside the pool, as a restarted database would."""
    killer = Database(db.url)
    try:
        async with killer.sessions() as session:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await killer.dispose()


@pytest.mark.parametrize("idle", [True, False], ids=["idle-checked", "busy-trusted"])
async def test_a_pooled_connection_is_checked_only_after_sitting_idle(
    pg_db: Database, monkeypatch: pytest.MonkeyPatch, idle: bool
) -> None:
    """A connection idle longer than IDLE_PING_SECONDS is pinged at checkout, and a dead one
    is replaced before the caller sees it (the database was restarted meanwhile); one used a
    moment ago is trusted, which spares a busy process a ping (three round trips) per use."""
    trips: list[str] = []
    db = Database(pg_db.url, pool_size=1, max_overflow=1, count=trips.append)
    try:
        first = await _pooled_backend(db)
        await _kill(db, first)
        monkeypatch.setattr("store.db.IDLE_PING_SECONDS", -1.0 if idle else 3600.0)
        trips.clear()
        if idle:
            assert await _pooled_backend(db) != first  # a new connection, no error
            assert trips.count("ping") == 3 * (1 + 1)  # the dead one's ping, then the new
        else:
            with pytest.raises(DBAPIError) as lost:
                await _pooled_backend(db)
            assert unreachable(lost.value) and "ping" not in trips
    finally:
        await db.dispose()
