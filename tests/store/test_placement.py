"""store.placement.place_order on SQLite and PostgreSQL: pricing, stock, freight, deadline."""

import asyncio
from datetime import timedelta

import pytest

from domain.errors import DomainError, ErrorCode
from domain.models import FreightPolicy, OrderStatus, OrderTimings, ProductType, StockPolicy
from domain.stock import InsufficientStock
from store import orders, placement
from store.db import Database
from tests.store.helpers import (
    DEDUCT,
    LOCK,
    T0,
    add_sku,
    dump,
    holds_of,
    order_input,
    place,
    rows,
    set_freight,
    stock_of,
)


async def test_lines_are_priced_from_the_catalog(db: Database) -> None:
    await add_sku(db, "PHONE", price=1_999, product_type=ProductType.SELF)
    await add_sku(db, "EBOOK", price=500, policy=DEDUCT, product_type=ProductType.VIRTUAL)

    state = await place(db, "o-1", [("PHONE", 2), ("EBOOK", 3)])

    assert [(x.sku, x.quantity, x.unit_price_cents) for x in state.lines] == [
        ("PHONE", 2, 1_999),
        ("EBOOK", 3, 500),
    ]
    phone, ebook = state.lines
    assert phone.title == "Title of PHONE"
    assert phone.product_type is ProductType.SELF
    assert phone.stock_policy is StockPolicy.LOCK_ON_ORDER
    assert ebook.product_type is ProductType.VIRTUAL
    assert ebook.stock_policy is StockPolicy.DEDUCT_ON_PAYMENT
    assert state.goods_cents == 2 * 1_999 + 3 * 500
    assert state.freight_cents == 0  # no freight rule: free
    assert state.total_cents == state.goods_cents
    assert state.status is OrderStatus.PENDING_PAYMENT
    assert state.buyer_id == "buyer-1"
    assert state.version == 1
    assert state.created_at == T0
    async with db.transaction() as session:
        assert await orders.get(session, "o-1") == state


async def test_a_price_change_after_placement_does_not_reprice_the_order(db: Database) -> None:
    await add_sku(db, "PHONE", price=1_999)
    await place(db, "o-1", [("PHONE", 1)])
    await add_sku(db, "PHONE", price=9_999, stock_at={})
    second = await place(db, "o-2", [("PHONE", 1)])
    async with db.transaction() as session:
        first = await orders.get(session, "o-1")
    assert first is not None and first.total_cents == 1_999
    assert second.total_cents == 9_999


async def test_duplicate_sku_lines_are_merged(db: Database) -> None:
    await add_sku(db, "A", price=100, stock_at={"WH-A": 10})
    await add_sku(db, "B", price=7, stock_at={"WH-A": 10})

    state = await place(db, "o-1", [("A", 2), ("B", 1), ("A", 3)])

    assert [(x.sku, x.quantity) for x in state.lines] == [("A", 5), ("B", 1)]
    assert state.goods_cents == 507
    assert await stock_of(db, "A") == {"WH-A": (10, 5)}
    assert await holds_of(db, "o-1") == {("A", "WH-A"): (5, "HELD"), ("B", "WH-A"): (1, "HELD")}
    assert await rows(db, "SELECT sku, quantity FROM purchase_records ORDER BY sku") == [
        ("A", 5),
        ("B", 1),
    ]


async def test_unknown_sku_is_refused_and_changes_nothing(db: Database) -> None:
    await add_sku(db, "A")
    before = await dump(db)

    with pytest.raises(DomainError, match="unknown SKU: NOPE, ZZZ") as err:
        await place(db, "o-1", [("A", 1), ("ZZZ", 1), ("NOPE", 2)])

    assert err.value.code is ErrorCode.UNKNOWN_SKU
    assert err.value.details == {"skus": ["NOPE", "ZZZ"]}
    assert await dump(db) == before


async def test_delisted_sku_is_refused_and_changes_nothing(db: Database) -> None:
    await add_sku(db, "A")
    await add_sku(db, "OLD", listed=False)
    before = await dump(db)

    with pytest.raises(DomainError, match="no longer sold: OLD") as err:
        await place(db, "o-1", [("A", 1), ("OLD", 1)])

    assert err.value.code is ErrorCode.SKU_DELISTED
    assert err.value.details == {"skus": ["OLD"]}
    assert await dump(db) == before


async def test_lock_on_order_locks_across_two_locations(db: Database) -> None:
    """3 from WH-A + 2 from WH-B: the first location being short does not refuse the line."""
    await add_sku(db, "A", policy=LOCK, stock_at={"WH-A": 3, "WH-B": 2})

    state = await place(db, "o-1", [("A", 5)])

    assert await stock_of(db, "A") == {"WH-A": (3, 3), "WH-B": (2, 2)}
    assert await holds_of(db, "o-1") == {("A", "WH-A"): (3, "HELD"), ("A", "WH-B"): (2, "HELD")}
    assert sorted((a.location, a.quantity) for a in state.allocations) == [
        ("WH-A", 3),
        ("WH-B", 2),
    ]
    assert state.low_stock is False


async def test_lock_on_order_counts_what_other_orders_already_locked(db: Database) -> None:
    await add_sku(db, "A", policy=LOCK, stock_at={"WH-A": 4, "WH-B": 3})
    await place(db, "o-1", [("A", 2)], buyer="b1")  # fullest first: WH-A, which keeps 2 free

    second = await place(db, "o-2", [("A", 5)], buyer="b2")  # 3 free at WH-B + 2 at WH-A

    assert sorted((a.location, a.quantity) for a in second.allocations) == [
        ("WH-A", 2),
        ("WH-B", 3),
    ]
    assert await stock_of(db, "A") == {"WH-A": (4, 4), "WH-B": (3, 3)}
    before = await dump(db)
    with pytest.raises(InsufficientStock, match=r"A \(want 1, have 0\)"):
        await place(db, "o-3", [("A", 1)], buyer="b3")
    assert await dump(db) == before


async def test_deduct_on_payment_checks_only_and_flags_low_stock(db: Database) -> None:
    await add_sku(db, "FEW", policy=DEDUCT, stock_at={"WH-A": 4, "WH-B": 2})
    await add_sku(db, "MANY", policy=DEDUCT, stock_at={"WH-A": 100})

    few = await place(db, "o-1", [("FEW", 2)])  # 4 left after it: under max(2 * 2, 5)
    many = await place(db, "o-2", [("MANY", 2)])  # 98 left

    assert few.low_stock is True
    assert many.low_stock is False
    assert few.allocations == [] and many.allocations == []
    assert await stock_of(db, "FEW") == {"WH-A": (4, 0), "WH-B": (2, 0)}
    assert await stock_of(db, "MANY") == {"WH-A": (100, 0)}
    assert await holds_of(db, "o-1") == {}
    assert await holds_of(db, "o-2") == {}
    # checked, not reserved: another buyer may still order every unit
    await place(db, "o-3", [("FEW", 6)], buyer="b2")
    assert await stock_of(db, "FEW") == {"WH-A": (4, 0), "WH-B": (2, 0)}


async def test_deduct_on_payment_availability_is_still_checked(db: Database) -> None:
    await add_sku(db, "D", policy=DEDUCT, stock_at={"WH-A": 1, "WH-B": 1})
    before = await dump(db)
    with pytest.raises(InsufficientStock, match=r"D \(want 3, have 2\)") as err:
        await place(db, "o-1", [("D", 3)])
    assert err.value.code is ErrorCode.OUT_OF_STOCK
    assert await dump(db) == before


async def test_out_of_stock_lists_every_short_sku_and_changes_nothing(db: Database) -> None:
    await add_sku(db, "A", policy=LOCK, stock_at={"WH-A": 2, "WH-B": 1})
    await add_sku(db, "B", policy=DEDUCT, stock_at={"WH-A": 1})
    await add_sku(db, "C", policy=LOCK, stock_at={"WH-A": 5})
    await add_sku(db, "E", policy=LOCK, stock_at={})  # no stock row at all
    before = await dump(db)

    with pytest.raises(InsufficientStock, match=r"not enough stock: A \(want 4, have 3\)") as err:
        await place(db, "o-1", [("C", 1), ("A", 4), ("B", 2), ("E", 1)])

    assert err.value.code is ErrorCode.OUT_OF_STOCK
    assert [(s.sku, s.requested, s.available) for s in err.value.shortfalls] == [
        ("A", 4, 3),
        ("B", 2, 1),
        ("E", 1, 0),
    ]
    assert await dump(db) == before  # C (available) was not locked either
    assert await rows(db, "SELECT count(*) FROM orders") == [(0,)]
    assert await rows(db, "SELECT count(*) FROM order_events") == [(0,)]


async def test_freight_from_the_rule_flat_and_free_above_threshold(db: Database) -> None:
    await set_freight(db, flat=800, free_above=10_000, policy=FreightPolicy.SPLIT)
    await add_sku(db, "A", price=2_500, stock_at={"WH-A": 20})

    below = await place(db, "o-1", [("A", 2)])  # 5000
    at = await place(db, "o-2", [("A", 4)])  # 10000: free at the threshold
    above = await place(db, "o-3", [("A", 3), ("A", 2)])  # 12500

    assert (below.goods_cents, below.freight_cents, below.total_cents) == (5_000, 800, 5_800)
    assert (at.goods_cents, at.freight_cents, at.total_cents) == (10_000, 0, 10_000)
    assert (above.freight_cents, above.total_cents) == (0, 12_500)
    assert below.freight_policy is FreightPolicy.SPLIT


async def test_flat_freight_without_threshold(db: Database) -> None:
    await set_freight(db, flat=600)
    await add_sku(db, "A", price=1_000_000, stock_at={"WH-A": 1})
    state = await place(db, "o-1", [("A", 1)])
    assert (state.freight_cents, state.total_cents) == (600, 1_000_600)
    assert state.freight_policy is FreightPolicy.ONE_PACKAGE


async def test_payment_deadline_is_the_shortest_window(db: Database) -> None:
    await add_sku(db, "PLAIN")
    await add_sku(db, "FLASH", pay_minutes=15)
    await add_sku(db, "SLOW", pay_minutes=120)
    one_hour = OrderTimings(payment_window_seconds=3_600)

    plain = await place(db, "o-1", [("PLAIN", 1)], timings=one_hour)
    flash = await place(db, "o-2", [("PLAIN", 1), ("FLASH", 1), ("SLOW", 1)], timings=one_hour)
    slow = await place(db, "o-3", [("SLOW", 1)], timings=one_hour)
    default = await place(db, "o-4", [("SLOW", 1)])

    assert plain.payment_deadline == T0 + timedelta(hours=1)
    assert flash.payment_deadline == T0 + timedelta(minutes=15)
    assert slow.payment_deadline == T0 + timedelta(hours=1)  # the deployment's is shorter
    assert default.payment_deadline == T0 + timedelta(minutes=120)
    assert default.timings == OrderTimings()
    assert plain.timings == one_hour


async def test_placing_the_same_order_twice_returns_it_and_locks_once(db: Database) -> None:
    await add_sku(db, "A", stock_at={"WH-A": 10})
    first = await place(db, "o-1", [("A", 3)])
    after_first = await dump(db)

    again = await place(db, "o-1", [("A", 3)], now=T0 + timedelta(seconds=30))
    different = await place(db, "o-1", [("A", 7)], now=T0 + timedelta(minutes=1))

    assert again == first
    assert different == first
    assert await dump(db) == after_first
    assert await stock_of(db, "A") == {"WH-A": (10, 3)}
    assert await rows(db, "SELECT count(*) FROM order_events") == [(1,)]


async def test_the_same_placement_twice_at_once_is_one_order_locked_once(db: Database) -> None:
    """The API places before any workflow: a client's retry racing its first request finds
    the order under the buyer's guard row, and never holds its stock twice."""
    await add_sku(db, "A", stock_at={"WH-A": 10})
    both = await asyncio.gather(*(place(db, "o-1", [("A", 3)]) for _ in range(4)))

    assert all(state == both[0] for state in both)
    assert await stock_of(db, "A") == {"WH-A": (10, 3)}
    assert await rows(db, "SELECT count(*) FROM order_events") == [(1,)]
    assert await rows(db, "SELECT count(*) FROM stock_holds") == [(1,)]


async def test_order_row_and_placed_event_are_written_together(db: Database) -> None:
    await add_sku(db, "A", price=250, stock_at={"WH-A": 10})

    state = await place(db, "o-1", [("A", 2)], buyer="b7")

    assert await rows(
        db, "SELECT id, buyer_id, status, close_reason, total_cents, version FROM orders"
    ) == [("o-1", "b7", "PENDING_PAYMENT", None, 500, 1)]
    assert await rows(
        db, "SELECT order_id, version, type, actor_kind, actor_id, event_key FROM order_events"
    ) == [("o-1", 1, "PLACED", "buyer", "b7", "1:PLACED")]
    async with db.transaction() as session:
        events = await orders.events(session, "o-1")
    assert [(e.type, e.at, e.data) for e in events] == [("PLACED", T0, {"total_cents": 500})]
    assert state.version == 1


async def test_a_rolled_back_placement_leaves_no_order_event_or_lock(db: Database) -> None:
    """The order row, its event, the locks and the purchase record share one transaction."""
    await add_sku(db, "A", stock_at={"WH-A": 10})
    before = await dump(db)

    class Crash(Exception):
        pass

    with pytest.raises(Crash):
        async with db.transaction() as session:
            placed = await placement.place_order(session, order_input("o-1", [("A", 2)]))
            assert placed.id == "o-1"
            assert await orders.get(session, "o-1") is not None  # visible inside the txn
            raise Crash

    assert await dump(db) == before
    assert await rows(db, "SELECT count(*) FROM orders") == [(0,)]
    assert await rows(db, "SELECT count(*) FROM order_events") == [(0,)]


async def test_a_refused_placement_writes_no_order_and_no_event(db: Database) -> None:
    await add_sku(db, "A", stock_at={"WH-A": 1})
    with pytest.raises(InsufficientStock, match="not enough stock"):
        await place(db, "o-1", [("A", 2)])
    assert await rows(db, "SELECT count(*) FROM orders") == [(0,)]
    assert await rows(db, "SELECT count(*) FROM order_events") == [(0,)]
    assert await rows(db, "SELECT count(*) FROM stock_holds") == [(0,)]
    assert await rows(db, "SELECT count(*) FROM purchase_records") == [(0,)]
    # and the id is still free: a later, valid placement with it goes through
    state = await place(db, "o-1", [("A", 1)])
    assert state.total_cents == 1_000


# ---- sure_refusal: the API's read-only pre-check -------------------------------------------


async def _sure(db: Database, lines: list[tuple[str, int]]) -> DomainError | None:
    async with db.sessions() as session:
        return await placement.sure_refusal(session, order_input("o-new", lines))


async def test_the_precheck_refuses_only_what_placement_would_refuse_alike(db: Database) -> None:
    await add_sku(db, "TEA", stock_at={"WH-A": 2, "WH-B": 1})
    await add_sku(db, "CAP", stock_at={"WH-A": 1}, limit=5, window_days=30)
    await add_sku(db, "OLD", listed=False)
    await place(db, "o-1", [("TEA", 1)])  # 2 of TEA left
    before = await dump(db)

    assert await _sure(db, [("TEA", 2)]) is None  # enough
    short = await _sure(db, [("TEA", 3)])
    assert short is not None and short.code is ErrorCode.OUT_OF_STOCK
    with pytest.raises(InsufficientStock) as placed:  # what placement itself says
        await place(db, "o-x", [("TEA", 3)])
    assert (short.message, short.details) == (placed.value.message, placed.value.details)
    unknown = await _sure(db, [("TEA", 1), ("NOPE", 1)])
    assert unknown is not None and unknown.code is ErrorCode.UNKNOWN_SKU
    delisted = await _sure(db, [("OLD", 1)])
    assert delisted is not None and delisted.code is ErrorCode.SKU_DELISTED
    # a SKU with a purchase limit: its limit might be placement's reason, so no guess
    assert await _sure(db, [("CAP", 2)]) is None
    assert await dump(db) == before  # reads: nothing written

    await place(db, "o-2", [("TEA", 2)])  # sold out: the next buyer is refused from the read
    gone = await _sure(db, [("TEA", 1)])
    assert gone is not None and gone.code is ErrorCode.OUT_OF_STOCK


async def test_the_precheck_leaves_an_order_already_placed_to_placement(db: Database) -> None:
    await add_sku(db, "TEA", stock_at={"WH-A": 1})
    await place(db, "o-new", [("TEA", 1)])  # the same id: a retried request
    assert await _sure(db, [("TEA", 1)]) is None  # its answer is the order, not a refusal
