"""Wallet top-ups under an Idempotency-Key credit once; reading a wallet writes nothing."""

import pytest

from domain.errors import DomainError, ErrorCode
from store import payments
from store.db import Database
from tests.store.helpers import dump, wallet_of


async def top_up(db: Database, cents: int, key: str | None) -> int:
    async with db.transaction() as session:
        return (await payments.top_up(session, "buyer-1", cents, key)).balance_cents


async def test_a_retried_top_up_credits_once(db: Database) -> None:
    assert await top_up(db, 5_000, "k-1") == 5_000
    assert await top_up(db, 5_000, "k-1") == 5_000  # the retry after a timeout
    assert await top_up(db, 5_000, "k-2") == 10_000  # another key is another top-up
    assert await top_up(db, 700, None) == 10_700  # no key: every call credits
    before = await dump(db)
    with pytest.raises(DomainError) as err:
        await top_up(db, 6_000, "k-1")
    assert (err.value.code, err.value.details) == (
        ErrorCode.IDEMPOTENCY_CONFLICT,
        {"amount_cents": 5_000},
    )
    assert await dump(db) == before


async def test_reading_a_wallet_writes_nothing(db: Database) -> None:
    async with db.sessions() as session:
        seen = await payments.read_wallet(session, "nobody-yet")
    assert (seen.balance_cents, seen.credit_limit_cents, seen.credit_used_cents) == (0, 0, 0)
    assert await wallet_of(db, "nobody-yet") is None  # no row was created by the read
