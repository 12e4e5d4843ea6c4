"""Races on PostgreSQL: row locks must keep stock and purchase limits exact.

Each contender runs in its own transaction on its own connection, all started at once with
asyncio.gather (no sleeps, no barrier). `Overlap` proves they really ran at the same time: it
counts transactions that are open on the server (their first statement answered, not yet
committed) and records the peak.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import DomainError, ErrorCode
from domain.models import OrderState, PaymentChannel
from domain.stock import InsufficientStock
from store import payments, placement, stock
from store.db import Database
from tests.store.helpers import (
    DEDUCT,
    LOCK,
    add_sku,
    assert_stock_invariant,
    order_input,
    payment_input,
    place,
    rows,
    stock_of,
)

pytestmark = pytest.mark.postgres
T = TypeVar("T")


class Overlap:
    def __init__(self) -> None:
        self.open = 0
        self.peak = 0
        self.backends: set[int] = set()

    @asynccontextmanager
    async def transaction(self, db: Database) -> AsyncIterator[AsyncSession]:
        async with db.transaction() as session:
            pid = await session.scalar(text("SELECT pg_backend_pid()"))  # BEGIN is now sent
            self.backends.add(int(pid))
            self.open += 1
            self.peak = max(self.peak, self.open)
            try:
                yield session
            finally:
                self.open -= 1  # before the commit: the transaction still holds its locks


async def warm_pool(db: Database, n: int) -> None:
    """Open n connections up front, so no contender is late because it was still connecting."""

    async def touch() -> None:
        async with db.transaction() as session:
            await session.execute(text("SELECT pg_sleep(0)"))
            await asyncio.sleep(0)

    await asyncio.gather(*(touch() for _ in range(n)))


async def race(
    db: Database, n: int, work: Callable[[AsyncSession, int], Awaitable[T]]
) -> tuple[list[T | BaseException], Overlap]:
    overlap = Overlap()

    async def one(i: int) -> T:
        async with overlap.transaction(db) as session:
            return await work(session, i)

    results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    return results, overlap


def split(results: list[Any]) -> tuple[list[Any], list[BaseException]]:
    ok = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    return ok, failed


@pytest.mark.parametrize("lock", [True, False], ids=["rows-locked-first", "reserved-last"])
async def test_50_concurrent_placements_lock_exactly_the_stock(pg_db: Database, lock: bool) -> None:
    """Exact either way: rows locked before the read, or (the first tries) planned on a
    read and reserved by conditional updates, where a placement whose units were taken
    meanwhile fails with StockMoved, having changed nothing."""
    await add_sku(pg_db, "HOT", policy=LOCK, stock_at={"WH-A": 6, "WH-B": 4})
    await warm_pool(pg_db, 50)

    async def work(session: AsyncSession, i: int) -> OrderState:
        return await placement.place_order(
            session, order_input(f"o-{i:02d}", [("HOT", 1)], buyer=f"b-{i:02d}"), lock=lock
        )

    results, overlap = await race(pg_db, 50, work)

    placed, failed = split(results)
    moved = [e for e in failed if isinstance(e, stock.StockMoved)]
    refused = [e for e in failed if not isinstance(e, stock.StockMoved)]
    if lock:
        assert (len(placed), moved) == (10, []), failed[:1]
    else:  # never more than the stock; those that lost a unit to a faster one changed nothing
        assert 0 < len(placed) <= 10, failed[:1]
    for err in refused:
        assert isinstance(err, InsufficientStock), repr(err)
        assert err.code is ErrorCode.OUT_OF_STOCK
        assert "HOT (want 1, have 0)" in err.message
    assert overlap.peak >= 25, f"only {overlap.peak} of 50 transactions overlapped"
    assert len(overlap.backends) >= 25
    n = len(placed)
    locked = await stock_of(pg_db, "HOT")
    assert sum(held for _, held in locked.values()) == n  # what was placed, never more
    await assert_stock_invariant(pg_db)
    assert await rows(pg_db, "SELECT count(*), sum(quantity) FROM stock_holds") == [(n, n)]
    assert await rows(pg_db, "SELECT count(*) FROM orders") == [(n,)]
    assert await rows(pg_db, "SELECT count(*) FROM order_events") == [(n,)]
    assert await rows(pg_db, "SELECT count(*) FROM purchase_records") == [(n,)]
    assert sorted(s.id for s in placed) == sorted(
        r[0] for r in await rows(pg_db, "SELECT id FROM orders")
    )


async def test_50_concurrent_placements_tried_again_place_exactly_the_stock(
    pg_db: Database,
) -> None:
    """What the API runs: each placement tried again from a fresh read when its units were
    taken meanwhile, the last try with the rows locked first: exactly the stock is placed,
    every other buyer is refused OUT_OF_STOCK."""
    await add_sku(pg_db, "HOT", policy=LOCK, stock_at={"WH-A": 6, "WH-B": 4})
    await warm_pool(pg_db, 50)
    results = await asyncio.gather(
        *(
            placement.place(pg_db, order_input(f"o-{i:02d}", [("HOT", 1)], buyer=f"b-{i}"), 20)
            for i in range(50)
        ),
        return_exceptions=True,
    )
    placed, refused = split(results)
    assert len(placed) == 10, refused[:1]
    assert all(isinstance(e, InsufficientStock) for e in refused), refused[:1]
    assert await stock_of(pg_db, "HOT") == {"WH-A": (6, 6), "WH-B": (4, 4)}
    await assert_stock_invariant(pg_db)
    assert await rows(pg_db, "SELECT count(*), sum(quantity) FROM stock_holds") == [(10, 10)]


async def test_20_concurrent_payments_deduct_exactly_the_stock(pg_db: Database) -> None:
    await add_sku(pg_db, "FLASH", policy=DEDUCT, stock_at={"WH-A": 6, "WH-B": 4})
    states = [
        await place(pg_db, f"o-{i:02d}", [("FLASH", 1)], buyer=f"b-{i:02d}") for i in range(20)
    ]
    assert await stock_of(pg_db, "FLASH") == {"WH-A": (6, 0), "WH-B": (4, 0)}  # checked only
    await warm_pool(pg_db, 20)

    async def work(session: AsyncSession, i: int) -> OrderState:
        return await payments.accept_payment(session, payment_input(states[i]))

    results, overlap = await race(pg_db, 20, work)

    paid, refused = split(results)
    assert len(paid) == 10, refused[:1]
    assert len(refused) == 10
    for err in refused:
        assert isinstance(err, InsufficientStock), repr(err)
        assert err.code is ErrorCode.OUT_OF_STOCK
    assert overlap.peak >= 10, f"only {overlap.peak} of 20 transactions overlapped"
    assert await stock_of(pg_db, "FLASH") == {"WH-A": (0, 0), "WH-B": (0, 0)}
    await assert_stock_invariant(pg_db)
    assert await rows(pg_db, "SELECT count(*), sum(quantity) FROM stock_holds") == [(10, 10)]
    assert await rows(pg_db, "SELECT count(*) FROM payments") == [(10,)]
    assert await rows(pg_db, "SELECT status, count(*) FROM orders GROUP BY status ORDER BY 1") == [
        ("PENDING_PAYMENT", 10),
        ("PENDING_SHIPMENT", 10),
    ]
    for state in paid:
        assert sum(pl.quantity for p in state.packages for pl in p.lines) == 1


async def test_one_buyers_simultaneous_orders_pass_the_limit_once(pg_db: Database) -> None:
    """Even rounds: limit 1, nothing bought yet (the guard row is new). Odd rounds: limit 2,
    one unit already ordered (the guard row exists, so only its row lock can serialize)."""
    rounds = 6
    for r in range(rounds):
        await add_sku(pg_db, f"LTD-{r}", policy=LOCK, limit=1 + r % 2, window_days=30)
        if r % 2:
            await place(pg_db, f"o-{r}-prior", [(f"LTD-{r}", 1)], buyer="solo")
    await warm_pool(pg_db, 2)
    overlapped = 0

    for r in range(rounds):
        sku, limit = f"LTD-{r}", 1 + r % 2

        async def work(session: AsyncSession, i: int, sku: str = sku, r: int = r) -> OrderState:
            return await placement.place_order(
                session, order_input(f"o-{r}-{i}", [(sku, 1)], buyer="solo")
            )

        results, overlap = await race(pg_db, 2, work)

        placed, refused = split(results)
        assert len(placed) == 1, (r, results)
        assert len(refused) == 1
        err = refused[0]
        assert isinstance(err, DomainError) and err.code is ErrorCode.LIMIT_EXCEEDED, repr(err)
        assert err.message.startswith(f"{sku}: limit is {limit} per buyer in its window")
        assert f"your orders in it already hold {limit}" in err.message
        overlapped += overlap.peak == 2
        assert await stock_of(pg_db, sku) == {"WH-A": (10, limit)}
        assert await rows(
            pg_db,
            "SELECT buyer_id, sum(quantity) FROM purchase_records WHERE sku = :s GROUP BY 1",
            s=sku,
        ) == [("solo", limit)]

    assert overlapped == rounds, f"the two orders overlapped in {overlapped}/{rounds} rounds"
    await assert_stock_invariant(pg_db)
    assert await rows(pg_db, "SELECT count(*) FROM orders") == [(rounds + rounds // 2,)]


async def test_concurrent_wallet_payments_of_one_txn_charge_once(pg_db: Database) -> None:
    """Two deliveries of the same wallet payment at once (a retried activity racing the
    first attempt): idempotent on txn_id, so the wallet is charged once."""
    await add_sku(pg_db, "A", price=1_000, stock_at={"WH-A": 10})
    state = await place(pg_db, "o-1", [("A", 2)])
    async with pg_db.transaction() as session:
        await payments.top_up(session, "buyer-1", 10_000)
    await warm_pool(pg_db, 2)

    async def work(session: AsyncSession, i: int) -> OrderState:
        return await payments.accept_payment(
            session, payment_input(state, channel=PaymentChannel.BALANCE)
        )

    results, overlap = await race(pg_db, 2, work)

    paid, failed = split(results)
    assert failed == []
    assert overlap.peak == 2
    assert paid[0] == paid[1]
    assert await rows(pg_db, "SELECT balance_cents FROM wallets") == [(8_000,)]
    assert await stock_of(pg_db, "A") == {"WH-A": (8, 0)}


async def test_concurrent_releases_of_one_order_release_once(pg_db: Database) -> None:
    """A retried close racing the first attempt must not give back another order's locks."""
    await add_sku(pg_db, "A", stock_at={"WH-A": 10})
    await place(pg_db, "o-keep", [("A", 3)], buyer="b1")
    closing = await place(pg_db, "o-close", [("A", 2)], buyer="b2")
    assert await stock_of(pg_db, "A") == {"WH-A": (10, 5)}
    await warm_pool(pg_db, 2)

    both = asyncio.Barrier(2)

    async def work(session: AsyncSession, i: int) -> None:
        await both.wait()  # both transactions open before either releases (on a busy machine
        await stock.release(session, closing)  # the first could otherwise finish alone)

    results, overlap = await race(pg_db, 2, work)

    assert split(results)[1] == []
    assert overlap.peak == 2
    assert await stock_of(pg_db, "A") == {"WH-A": (10, 3)}  # o-keep's 3 are still locked
    await assert_stock_invariant(pg_db)
