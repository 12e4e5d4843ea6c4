"""One buyer cannot hoard stock: at most ORDERS_MAX_UNPAID_ORDERS unpaid orders, the next
refused (429 at the API) atomically, even when they come at once; another buyer still buys."""

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import DomainError, ErrorCode
from domain.models import Actor, CloseReason, OrderState
from domain.order import close
from store import orders, placement, stock
from store.db import Database
from tests.store.helpers import T0, add_sku, dump, order_input, pay, stock_of
from tests.store.test_concurrency_pg import race, split, warm_pool


async def place(db: Database, order_id: str, buyer: str = "b-1", most: int = 2) -> OrderState:
    async with db.transaction() as session:
        return await placement.place_order(
            session, order_input(order_id, [("A", 1)], buyer=buyer), most
        )


async def cancel(db: Database, state: OrderState) -> None:
    """What the workflow saves when a buyer cancels an unpaid order."""
    buyer = Actor(kind="buyer", id=state.buyer_id)
    change = close(state, CloseReason.BUYER_CANCELLED, T0 + timedelta(hours=1), buyer)
    async with db.transaction() as session:
        await stock.release(session, state)
        await orders.save(session, change.state, change.event)


async def test_the_next_unpaid_order_past_the_cap_is_refused_and_changes_nothing(
    db: Database,
) -> None:
    await add_sku(db, "A", stock_at={"WH-A": 10})
    first, _ = await place(db, "o-1"), await place(db, "o-2")
    before = await dump(db)
    with pytest.raises(DomainError, match="2 unpaid orders already") as err:
        await place(db, "o-3")
    assert err.value.code is ErrorCode.TOO_MANY_UNPAID_ORDERS
    assert await dump(db) == before
    assert await stock_of(db, "A") == {"WH-A": (10, 2)}

    assert (await place(db, "o-4", buyer="b-2")).buyer_id == "b-2"  # another buyer buys
    await pay(db, first)  # paid: no longer unpaid
    fifth = await place(db, "o-5")
    await cancel(db, fifth)
    assert (await place(db, "o-6")).id == "o-6"  # o-5 closed: no longer unpaid either
    assert (await place(db, "o-2")).id == "o-2"  # a retried placement is not a new one


@pytest.mark.postgres
async def test_unpaid_orders_placed_at_once_stop_exactly_at_the_cap(pg_db: Database) -> None:
    await add_sku(pg_db, "A", stock_at={"WH-A": 100})
    await warm_pool(pg_db, 12)

    async def work(session: AsyncSession, i: int) -> OrderState:
        inp = order_input(f"o-{i:02d}", [("A", 1)], buyer="b-1")
        return await placement.place_order(session, inp, 3)

    results, overlap = await race(pg_db, 12, work)
    placed, refused = split(results)
    assert len(placed) == 3 and len(refused) == 9
    assert all(
        isinstance(e, DomainError) and e.code is ErrorCode.TOO_MANY_UNPAID_ORDERS for e in refused
    )
    assert overlap.peak >= 2
    assert await stock_of(pg_db, "A") == {"WH-A": (100, 3)}
