"""Migration 0007 fills the operators' filter columns from the snapshots already stored."""

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

from store.migrate import upgrade
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
