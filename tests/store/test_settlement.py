"""A shop's settlement equals the ledgers to the cent: over random shops, orders, payments
and refunds (some failed, some outside the period), each shop's totals are the sums of its
own entries booked in [from, to), the per-order rows add up to them, and the shops together
account for every payment and booked refund of the period (SQLite and PostgreSQL)."""

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from store import settlement
from store.db import Database
from store.tables import OrderRow, PaymentRow, RefundRow, ShopRow

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SHOPS = 3
cents = st.integers(min_value=1, max_value=10**9)
minute = st.integers(min_value=0, max_value=600)
refund = st.tuples(cents, minute, st.sampled_from(["SUCCEEDED", "PENDING", "FAILED"]))
order = st.tuples(
    st.integers(min_value=0, max_value=SHOPS - 1),
    st.lists(st.tuples(cents, minute), max_size=2),  # a second payment: a late one, refunded
    st.lists(refund, max_size=3),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(orders=st.lists(order, max_size=12), period=st.tuples(minute, minute))
async def test_settlement_equals_the_ledgers_to_the_cent(
    db: Database,
    orders: list[tuple[int, list[tuple[int, int]], list[tuple[int, int, str]]]],
    period: tuple[int, int],
) -> None:
    run = uuid.uuid4().hex[:8]
    shops = [f"s{run}-{n}" for n in range(SHOPS)]
    start, end = (T0 + timedelta(minutes=m) for m in sorted(period))
    end += timedelta(minutes=1)  # a period of at least a minute
    paid_by = dict.fromkeys(shops, 0)
    refunded_by = dict.fromkeys(shops, 0)
    orders_by: dict[str, set[str]] = {s: set() for s in shops}
    async with db.transaction() as session:
        for shop_id in shops:
            session.add(ShopRow(id=shop_id, name=shop_id, created_at=T0))
        for n, (shop, payments, refunds) in enumerate(orders):
            order_id, shop_id = f"o{run}-{n}", shops[shop]
            session.add(
                OrderRow(
                    id=order_id,
                    buyer_id="b",
                    shop_id=shop_id,
                    status="COMPLETED",
                    total_cents=0,
                    version=1,
                    snapshot={},
                    created_at=T0,
                    updated_at=T0,
                )
            )
            for k, (amount, m) in enumerate(payments):
                at = T0 + timedelta(minutes=m)
                session.add(
                    PaymentRow(
                        txn_id=f"{order_id}-p{k}",
                        order_id=order_id,
                        channel="balance",
                        amount_cents=amount,
                        status="CAPTURED",
                        paid_at=at,
                    )
                )
                if start <= at < end:
                    paid_by[shop_id] += amount
                    orders_by[shop_id].add(order_id)
            for k, (amount, m, status) in enumerate(refunds):
                at = T0 + timedelta(minutes=m)
                session.add(
                    RefundRow(
                        id=f"{order_id}-r{k}",
                        order_id=order_id,
                        txn_id=f"{order_id}-p0",
                        channel="balance",
                        amount_cents=amount,
                        borne_by="merchant",
                        reason="x",
                        status=status,
                        created_at=at,
                    )
                )
                if start <= at < end and status != "FAILED":
                    refunded_by[shop_id] += amount
                    orders_by[shop_id].add(order_id)

    async with db.sessions() as session:
        for shop_id in shops:
            paid, refunded, ids = paid_by[shop_id], refunded_by[shop_id], orders_by[shop_id]
            got = await settlement.totals(session, shop_id, start, end)
            assert (got.paid_cents, got.refunded_cents, got.orders) == (paid, refunded, len(ids))
            assert got.net_cents == paid - refunded
            lines = [line async for line in settlement.by_order(session, shop_id, start, end)]
            assert {line.order_id for line in lines} == ids
            assert sum(line.paid_cents for line in lines) == paid
            assert sum(line.net_cents for line in lines) == paid - refunded
    # the shops together account for every payment of the period in the ledger
    async with db.sessions() as session:
        ledger = await session.scalar(
            select(func.coalesce(func.sum(PaymentRow.amount_cents), 0)).where(
                PaymentRow.order_id.like(f"o{run}-%"),
                PaymentRow.paid_at >= start,
                PaymentRow.paid_at < end,
            )
        )
        shops_paid = [(await settlement.totals(session, s, start, end)).paid_cents for s in shops]
    assert sum(shops_paid) == ledger
