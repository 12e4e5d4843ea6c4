"""Engines and sessions. SQLite serializes writers with BEGIN IMMEDIATE; PostgreSQL locks rows."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs; only its exception types are used
from sqlalchemy import Connection, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

WRITE = "orders_write"  # execution option: this transaction writes
# what a database that cannot be reached raises: SQLAlchemy's wrappers, asyncpg's connection
# errors, and the refused or reset socket of a connection being opened
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    ConnectionError,
)


def unreachable(err: BaseException) -> bool:
    """Whether `err` says the database could not be reached (refused, reset, shut down, a
    connection lost mid-query), judged by the error's type, never by its message."""
    if isinstance(err, DBAPIError):
        if err.connection_invalidated or isinstance(err, OperationalError | InterfaceError):
            return True
        return err.orig is not None and unreachable(err.orig.__cause__ or err.orig)
    return isinstance(err, CONNECTION_ERRORS)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if not is_sqlite(url):
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        kwargs.setdefault("pool_pre_ping", True)
        return create_async_engine(url, **kwargs)
    engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        # a write transaction takes the write lock up front (one writer at a time: no lost
        # updates); a read begins deferred and never waits behind a writer (WAL)
        write = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


Count = Callable[[str], None]  # told of each round trip to the database, by kind


def count_round_trips(engine: AsyncEngine, count: Count) -> None:
    """Call `count` for each round trip `engine` makes: a statement, a transaction's begin,
    commit or rollback, and a pool checkout's liveness ping (PostgreSQL)."""
    sync = engine.sync_engine

    def transaction(kind: str) -> Callable[[Connection], None]:
        def told(conn: Connection) -> None:
            if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                count(kind)  # (in autocommit the driver sends nothing)

        return told

    event.listen(sync, "before_cursor_execute", lambda *_: count("statement"))
    event.listen(sync, "commit", transaction("commit"))
    event.listen(sync, "rollback", transaction("rollback"))
    if not is_sqlite(str(engine.url)):  # SQLite's BEGIN is a statement of its own (above)
        event.listen(sync, "begin", transaction("begin"))
        if sync.pool._pre_ping:
            event.listen(sync.pool, "checkout", lambda *_: count("ping"))


class Database:
    """One engine and its session factories, built once per process. Reads on PostgreSQL
    run without a transaction (autocommit): under READ COMMITTED each statement sees its own
    snapshot anyway, so a BEGIN and a ROLLBACK around them would buy nothing but two round
    trips. On SQLite a read is a transaction, one snapshot for all its statements."""

    def __init__(self, url: str, *, count: Count | None = None, **kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **kwargs)
        if count is not None:
            count_round_trips(self.engine, count)
        reads = (
            self.engine
            if is_sqlite(url)
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self.sessions = async_sessionmaker(reads, expire_on_commit=False)
        self._writes = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite admits one writer: queue this process's writers here, woken as soon as the
        # previous commits, instead of in SQLite's busy handler, which polls with sleeps
        self._writer = asyncio.Lock() if is_sqlite(url) else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one write transaction: committed on success, rolled back on any error.
        Reads use `sessions()`, whose transactions never take SQLite's write lock."""
        async with contextlib.AsyncExitStack() as stack:
            if self._writer is not None:
                await stack.enter_async_context(self._writer)
            session = await stack.enter_async_context(self._writes())
            await stack.enter_async_context(session.begin())
            await session.connection(execution_options={WRITE: True})
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
