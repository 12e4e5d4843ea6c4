"""Engines and sessions. SQLite serializes writers with BEGIN IMMEDIATE; PostgreSQL locks rows."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs; only its exception types are used
from sqlalchemy import Connection, event
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
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


Count = Callable[[str], None]  # told of each round trip to the database, by kind


def _ping_when_idle(engine: AsyncEngine, count: Count) -> None:
    """Check a pooled connection before use only when it sat idle for a while (a database
    restarted meanwhile left it dead); a busy connection, used a moment ago, goes straight
    to work. The driver's ping is three round trips (BEGIN, a statement, ROLLBACK), which
    SQLAlchemy's `pool_pre_ping` would pay on every checkout. A dead connection found so is
    replaced by the pool before the caller sees it."""
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "connect")
    def _fresh(_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkin")
    def _back(_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _out(conn: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) <= IDLE_PING_SECONDS:
            return
        for _ in range(3):
            count("ping")
        try:
            engine.dialect.do_ping(conn)
        except Exception as err:  # dead: the pool drops it and connects afresh
            raise DisconnectionError() from err


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


IDLE_PING_SECONDS = 1.0  # a pooled connection idle longer is checked before it is used


def make_engine(url: str, count: Count | None = None, **kwargs: Any) -> AsyncEngine:
    if not is_sqlite(url):
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        engine = create_async_engine(url, **kwargs)
        _ping_when_idle(engine, count or (lambda _: None))
        return engine
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


def count_round_trips(engine: AsyncEngine, count: Count) -> None:
    """Call `count` for each round trip `engine` makes: a statement, a transaction's begin,
    commit or rollback (an idle connection's ping is counted by `make_engine`)."""
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


class Database:
    """One engine and its session factories, built once per process. Reads on PostgreSQL
    run without a transaction (autocommit): under READ COMMITTED each statement sees its own
    snapshot anyway, so a BEGIN and a ROLLBACK around them would buy nothing but two round
    trips. On SQLite a read is a transaction, one snapshot for all its statements."""

    def __init__(self, url: str, *, count: Count | None = None, **kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, count, **kwargs)
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
