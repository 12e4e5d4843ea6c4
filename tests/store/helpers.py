"""Helpers for the store tests: catalog set-up, calls in one transaction, table dumps."""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text

from domain.messages import AcceptPaymentInput, PlaceOrderInput
from domain.models import (
    DEFAULT_SHOP,
    Actor,
    Address,
    CaseClaim,
    FreightPolicy,
    FreightRule,
    LineRequest,
    OrderState,
    OrderTimings,
    Payment,
    PaymentChannel,
    ProductType,
    Refund,
    Shop,
    SkuInfo,
    StockPolicy,
    SubStatus,
)
from store import catalog, orders, payments, placement, shops, stock
from store.db import Database
from store.tables import Base, StockHoldRow, StockRow

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LOCK = StockPolicy.LOCK_ON_ORDER
DEDUCT = StockPolicy.DEDUCT_ON_PAYMENT
ADDRESS = Address(
    name="Li Lei", phone="+86 138 0000 0000", line1="1 Chang'an Ave", city="Beijing", country="CN"
)


async def add_sku(
    db: Database,
    sku: str,
    *,
    price: int = 1_000,
    policy: StockPolicy = LOCK,
    stock_at: dict[str, int] | None = None,
    limit: int | None = None,
    window_days: int | None = None,
    pay_minutes: int | None = None,
    listed: bool = True,
    product_type: ProductType = ProductType.SELF,
    shop_id: str = DEFAULT_SHOP,
) -> None:
    """A SKU and its stock per location (default: 10 units at WH-A)."""
    info = SkuInfo(
        sku=sku,
        shop_id=shop_id,
        title=f"Title of {sku}",
        price_cents=price,
        product_type=product_type,
        stock_policy=policy,
        limit_per_buyer=limit,
        limit_window_days=window_days,
        payment_window_minutes=pay_minutes,
        listed=listed,
    )
    async with db.transaction() as session:
        await catalog.put_sku(session, info)
        for location, on_hand in (stock_at if stock_at is not None else {"WH-A": 10}).items():
            await catalog.put_stock(session, sku, location, on_hand)


async def add_shop(db: Database, shop_id: str) -> None:
    async with db.transaction() as session:
        await shops.create(session, Shop(id=shop_id, name=shop_id, service_phone="400-1"), T0, "")


async def set_freight(
    db: Database,
    flat: int,
    free_above: int | None = None,
    policy: FreightPolicy = FreightPolicy.ONE_PACKAGE,
) -> None:
    async with db.transaction() as session:
        await shops.put_freight_rule(
            session,
            DEFAULT_SHOP,
            FreightRule(flat_cents=flat, free_above_cents=free_above, policy=policy),
        )


def order_input(
    order_id: str,
    lines: list[tuple[str, int]],
    *,
    buyer: str = "buyer-1",
    now: datetime = T0,
    timings: OrderTimings | None = None,
    reorder_of: str | None = None,
) -> PlaceOrderInput:
    return PlaceOrderInput(
        order_id=order_id,
        buyer_id=buyer,
        lines=[LineRequest(sku=s, quantity=q) for s, q in lines],
        address=ADDRESS,
        timings=timings or OrderTimings(),
        now=now,
        reorder_of=reorder_of,
    )


async def place(
    db: Database,
    order_id: str,
    lines: list[tuple[str, int]],
    **kwargs: Any,
) -> OrderState:
    """Place an order in its own transaction, as the place_order activity does."""
    async with db.transaction() as session:
        return await placement.place_order(session, order_input(order_id, lines, **kwargs))


def payment_input(
    state: OrderState,
    *,
    channel: PaymentChannel = PaymentChannel.ALIPAY,
    txn_id: str | None = None,
    amount: int | None = None,
    now: datetime | None = None,
) -> AcceptPaymentInput:
    at = now or state.created_at + timedelta(minutes=5)
    wallet = channel in (PaymentChannel.BALANCE, PaymentChannel.CREDIT)
    return AcceptPaymentInput(
        state=state,
        payment=Payment(
            channel=channel,
            txn_id=txn_id or f"{channel.value}-{state.id}",
            amount_cents=state.total_cents if amount is None else amount,
            paid_at=at,
        ),
        charge_wallet=wallet,
        now=at,
        actor=Actor(kind="buyer", id=state.buyer_id) if wallet else Actor(kind="gateway"),
    )


async def pay(db: Database, state: OrderState, **kwargs: Any) -> OrderState:
    async with db.transaction() as session:
        return await payments.accept_payment(session, payment_input(state, **kwargs))


async def release(db: Database, order_id: str) -> None:
    """What saving a closed unpaid order does: release its locks, end its limit counts."""
    async with db.transaction() as session:
        state = await orders.get(session, order_id)
        if state is not None:
            await stock.release(session, state)
        await stock.end_purchases(session, order_id)


async def top_up(db: Database, buyer: str, balance: int = 0, credit: int = 0) -> None:
    async with db.transaction() as session:
        if balance:
            await payments.top_up(session, buyer, balance)
        if credit:
            await payments.set_credit_limit(session, buyer, credit)


# ---- reading the tables back --------------------------------------------------------------


async def dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order: compare two dumps to prove that a
    refused operation changed nothing."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with db.transaction() as session:
        for table in Base.metadata.sorted_tables:
            rows = await session.execute(select(table).order_by(*table.primary_key.columns))
            out[table.name] = [tuple(r) for r in rows]
    return out


async def stock_of(db: Database, sku: str) -> dict[str, tuple[int, int]]:
    """{location: (on_hand, locked)}"""
    async with db.transaction() as session:
        rows = await session.scalars(
            select(StockRow).where(StockRow.sku == sku).order_by(StockRow.location)
        )
        return {r.location: (r.on_hand, r.locked) for r in rows}


async def holds_of(db: Database, order_id: str) -> dict[tuple[str, str], tuple[int, str]]:
    """{(sku, location): (quantity, state)}"""
    async with db.transaction() as session:
        rows = await session.scalars(select(StockHoldRow).where(StockHoldRow.order_id == order_id))
        return {(h.sku, h.location): (h.quantity, h.state) for h in rows}


async def rows(db: Database, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async with db.transaction() as session:
        return [tuple(r) for r in await session.execute(text(sql), params)]


async def wallet_of(db: Database, buyer: str) -> tuple[int, int, int] | None:
    """(balance, credit_limit, credit_used), None when the buyer has no wallet row."""
    found = await rows(
        db,
        "SELECT balance_cents, credit_limit_cents, credit_used_cents FROM wallets"
        " WHERE buyer_id = :b",
        b=buyer,
    )
    return (int(found[0][0]), int(found[0][1]), int(found[0][2])) if found else None


async def assert_stock_invariant(db: Database) -> None:
    """on_hand >= locked >= 0 for every row."""
    for sku, location, on_hand, locked in await rows(
        db, "SELECT sku, location, on_hand, locked FROM stock"
    ):
        assert on_hand >= locked >= 0, (sku, location, on_hand, locked)


async def snapshot(db: Database, order_id: str) -> OrderState:
    """The order as the database keeps it."""
    async with db.sessions() as session:
        state = await orders.get(session, order_id)
    assert state is not None, f"no stored order {order_id}"
    return state


def flagged(state: OrderState, version: int | None = None) -> OrderState:
    """`state` as operators look for it: refunding, a refund FAILED, one case open, one
    closed."""
    failed = Refund(
        id="RF1",
        txn_id="t",
        channel=PaymentChannel.ALIPAY,
        amount_cents=1,
        reason="x",
        status="FAILED",
        created_at=T0,
    )
    return state.model_copy(
        update={
            "version": version or state.version,
            "sub_statuses": [SubStatus.REFUNDING],
            "refunds": [failed],
            "cases": [
                CaseClaim(id="C1", type="REFUND_ONLY", takes=[]),
                CaseClaim(id="C2", type="REFUND_ONLY", takes=[], open=False),
            ],
        }
    )
