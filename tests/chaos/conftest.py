"""A private PostgreSQL server for the fault tests, which kill it; the shared one is never
touched."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from scripts.postgres import PrivatePostgres
from store.migrate import upgrade

# test_outages uses the end-to-end helpers, and is collected before tests/e2e registers them
pytest.register_assert_rewrite("tests.e2e.harness")


async def migrated_private_postgres() -> PrivatePostgres:
    """Started, its `postgres` database at the latest schema (stop() it when done)."""
    pg = PrivatePostgres()
    try:
        await pg.init()
        await asyncio.to_thread(upgrade, pg.url())
    except BaseException:
        print(f"---- postgres.log ----\n{pg.log_tail()}")
        pg.stop()
        raise
    return pg


@pytest.fixture
async def private_pg() -> AsyncIterator[PrivatePostgres]:
    pg = await migrated_private_postgres()
    yield pg
    pg.stop()
