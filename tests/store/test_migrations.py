"""Migrations that fill what they add from the data already stored: 0007 the operators'
filter columns from order snapshots, 0010 each case's evidence images (on both databases)."""

import asyncio
import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from store.migrate import upgrade
from store.tables import CaseImageRow
from tests.conftest import _pg_exec, _pg_url
from tests.store.helpers import flagged
from tests.unit.test_domain_order import T0, line, paid, placed


def test_0007_fills_the_filter_columns_of_existing_orders(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    upgrade(f"sqlite+aiosqlite:///{path}", "0006")
    state = flagged(paid(placed(line("BOOK-1"))))
    unpaid = placed(line("BOOK-1"), order_id="O-2")
    with sqlite3.connect(path) as conn:
        for s in (state, unpaid):
            conn.execute(
                "INSERT INTO orders (id, buyer_id, status, total_cents, version, snapshot,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    s.id,
                    s.buyer_id,
                    s.status.value,
                    s.total_cents,
                    s.version,
                    json.dumps(s.model_dump(mode="json")),
                    "2026-03-01 12:00:00.000000",
                    "2026-03-01 12:00:00.000000",
                ),
            )
    upgrade(f"sqlite+aiosqlite:///{path}")
    with sqlite3.connect(path) as conn:
        got = conn.execute(
            "SELECT id, sub_statuses, paid_at, refund_failed, open_cases FROM orders ORDER BY id"
        ).fetchall()
    assert state.payment is not None and state.payment.paid_at == T0 + timedelta(minutes=5)
    assert got == [
        ("O-1", " REFUNDING ", "2025-03-01 12:05:00.000000", 1, 1),
        ("O-2", " ", None, 0, 0),
    ]


A, B = "a" * 64, "b" * 64


async def _with_a_case_before_0010(url: str) -> list[tuple[str, str, str, int]]:
    await asyncio.to_thread(upgrade, url, "0009")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO after_sales_cases (id, order_id, buyer_id, status, type, "
                    "version, snapshot, created_at, updated_at) VALUES ('AS1', 'o-1', 'b-1', "
                    "'CANCELLED', 'REFUND_ONLY', 2, :snap, :at, :at)"
                ),
                {"snap": json.dumps({"images": [A, B]}), "at": datetime.now(UTC)},
            )
        await asyncio.to_thread(upgrade, url)
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(
                    CaseImageRow.case_id,
                    CaseImageRow.sha256,
                    CaseImageRow.buyer_id,
                    CaseImageRow.size_bytes,
                ).order_by(CaseImageRow.sha256)
            )
            return [(r.case_id, r.sha256, r.buyer_id, r.size_bytes) for r in rows]
    finally:
        await engine.dispose()


EXPECTED = [("AS1", A, "b-1", 0), ("AS1", B, "b-1", 0)]


async def test_0010_records_the_images_of_existing_cases_sqlite(tmp_path: Path) -> None:
    assert await _with_a_case_before_0010(f"sqlite+aiosqlite:///{tmp_path}/m.db") == EXPECTED


@pytest.mark.postgres
async def test_0010_records_the_images_of_existing_cases_postgres() -> None:
    name = f"orders_m_{uuid.uuid4().hex[:10]}"
    await _pg_exec(f"CREATE DATABASE {name}")
    try:
        assert await _with_a_case_before_0010(_pg_url(name)) == EXPECTED
    finally:
        await _pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def _before_0011(url: str, with_rule: bool) -> dict[str, object]:
    """A platform from before shops: a SKU, an order, a case, a merchant's console session
    and (maybe) the platform's freight rule; then 0011, and what it made of them."""
    await asyncio.to_thread(upgrade, url, "0010")
    engine = create_async_engine(url)
    at = {"at": datetime.now(UTC)}
    try:
        async with engine.begin() as conn:
            for statement in (
                "INSERT INTO skus (sku, title, price_cents, product_type, stock_policy, listed)"
                " VALUES ('TEA', 'Tea', 100, 'SELF', 'LOCK_ON_ORDER', true)",
                "INSERT INTO orders (id, buyer_id, status, total_cents, version, snapshot,"
                " created_at, updated_at) VALUES ('o-1', 'b-1', 'COMPLETED', 100, 3, '{}', :at,"
                " :at)",
                "INSERT INTO after_sales_cases (id, order_id, buyer_id, status, type, version,"
                " snapshot, created_at, updated_at) VALUES ('AS1', 'o-1', 'b-1', 'CANCELLED',"
                " 'REFUND_ONLY', 2, '{}', :at, :at)",
                "INSERT INTO console_sessions (id, user_id, role, created_at, last_seen_at,"
                " expires_at) VALUES ('k', 'm-1', 'merchant', :at, :at, :at)",
            ):
                await conn.execute(text(statement), at)
            if with_rule:
                await conn.execute(
                    text(
                        "INSERT INTO freight_rule (id, flat_cents, free_above_cents, policy)"
                        " VALUES (1, 500, 9900, 'SPLIT')"
                    )
                )
        await asyncio.to_thread(upgrade, url)
        async with engine.connect() as conn:
            got: dict[str, object] = {
                table: (await conn.execute(text(f"SELECT shop_id FROM {table}"))).scalars().all()
                for table in ("skus", "orders", "after_sales_cases", "console_sessions")
            }
            shops = await conn.execute(
                text(
                    "SELECT id, name, service_phone, freight_flat_cents,"
                    " freight_free_above_cents, freight_policy FROM shops"
                )
            )
            got["shops"] = [tuple(r) for r in shops]
        return got
    finally:
        await engine.dispose()


def _expected_0011(with_rule: bool) -> dict[str, object]:
    rule = (500, 9900, "SPLIT") if with_rule else (None, None, None)
    return {
        "skus": ["default"],
        "orders": ["default"],
        "after_sales_cases": ["default"],
        "console_sessions": [None],  # a merchant's session without a shop acts for default
        "shops": [("default", "Default shop", None, *rule)],
    }


@pytest.mark.parametrize("with_rule", [True, False])
async def test_0011_puts_everything_in_the_shop_default_sqlite(
    tmp_path: Path, with_rule: bool
) -> None:
    got = await _before_0011(f"sqlite+aiosqlite:///{tmp_path}/m.db", with_rule)
    assert got == _expected_0011(with_rule)


@pytest.mark.postgres
async def test_0011_puts_everything_in_the_shop_default_postgres() -> None:
    name = f"orders_m_{uuid.uuid4().hex[:10]}"
    await _pg_exec(f"CREATE DATABASE {name}")
    try:
        assert await _before_0011(_pg_url(name), True) == _expected_0011(True)
    finally:
        await _pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
