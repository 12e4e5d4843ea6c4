"""SQLite: only write transactions take the write lock. A read (an API GET) never queues
behind a writer, and two writers still go one at a time."""

import asyncio
from pathlib import Path

from sqlalchemy import text

from store.db import Database
from tests.conftest import fresh_db_url


async def test_a_read_does_not_wait_for_a_writer(tmp_path: Path, sqlite_template: Path) -> None:
    url, _ = await fresh_db_url("sqlite", tmp_path, sqlite_template, None)
    api, worker = Database(url), Database(url)  # two processes' pools, as in `make run`
    try:
        async with worker.transaction() as w:  # a writer holds the lock...
            await w.execute(
                text(
                    "INSERT INTO wallets (buyer_id, balance_cents, credit_limit_cents,"
                    " credit_used_cents) VALUES ('b-1', 5, 0, 0)"
                )
            )

            async def read() -> int:
                async with api.sessions() as r:
                    return int((await r.execute(text("SELECT count(*) FROM wallets"))).scalar_one())

            # ...and a read sees the last committed state at once (it used to wait up to 30 s
            # for the lock, then fail "database is locked")
            assert await asyncio.wait_for(read(), timeout=10) == 0

            async def write() -> None:
                async with api.transaction() as other:
                    await other.execute(text("UPDATE wallets SET balance_cents = 7"))

            blocked = asyncio.create_task(write())
            await asyncio.sleep(0.2)
            assert not blocked.done()  # a second writer waits for the first
        await asyncio.wait_for(blocked, timeout=30)
        async with api.sessions() as r:
            assert (await r.execute(text("SELECT balance_cents FROM wallets"))).scalar_one() == 7
    finally:
        await api.dispose()
        await worker.dispose()
