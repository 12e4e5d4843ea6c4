"""The order list's search, sort and total over many stored orders.

    python -m bench.search [--db sqlite|postgres] [--orders 100000]

Writes `orders` order rows straight into a fresh database (one shop; 977 buyers; each order
two SKUs of 3,000; every tenth shipped with a tracking number), then times one list page
of 25 and its `total`, as `GET /orders` reads them: the plain list and each kind of `q`.
Each figure is the best of three, in milliseconds; the plain list is the yardstick the
searches are compared with, side by side in the same run.
"""

import argparse
import asyncio
import tempfile
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bench.lifecycle import empty_database
from domain.models import Address, OrderLine, OrderState, ProductType, StockPolicy
from store import orders
from store.db import Database
from store.orders import OrderFilter
from store.tables import OrderRow, PackageIndexRow

T0 = datetime(2026, 3, 1, tzinfo=UTC)
BATCH = 5000


def _snapshot() -> dict[str, Any]:
    """One order's snapshot, as the list pages validate each row they show."""
    line = OrderLine(
        sku="SKU-1",
        title="Bench",
        product_type=ProductType.SELF,
        stock_policy=StockPolicy.LOCK_ON_ORDER,
        quantity=1,
        unit_price_cents=1000,
    )
    address = Address(name="Li", phone="+86 1", line1="1 Road", city="Shanghai", country="CN")
    state = OrderState(
        id="bench",
        buyer_id="b-1",
        lines=[line],
        address=address,
        goods_cents=1000,
        freight_cents=0,
        total_cents=1000,
        payment_deadline=T0 + timedelta(days=1),
        created_at=T0,
        updated_at=T0,
    )
    return state.model_dump(mode="json")


async def _fill(db: Database, count: int) -> None:
    snapshot = _snapshot()
    rows = [
        {
            "id": f"{n:020x}",
            "buyer_id": f"b-{n % 977}",
            "shop_id": "default",
            "status": "PENDING_SHIPMENT",
            "total_cents": 1000 + n % 5000,
            "version": 3,
            "snapshot": snapshot,
            "created_at": T0 + timedelta(seconds=n),
            "updated_at": T0,
            "paid_at": T0 + timedelta(seconds=n + 60),
            "skus": f" SKU-{n % 3000} SKU-X{n % 7} ",
            "sub_statuses": " ",
        }
        for n in range(count)
    ]
    packages = [
        {
            "package_id": f"{n:020x}-1",
            "order_id": f"{n:020x}",
            "carrier": "SF",
            "tracking_no": f"SF{n:08d}",
            "status": "SHIPPED",
        }
        for n in range(0, count, 10)
    ]
    async with db.transaction() as s:
        for i in range(0, count, BATCH):
            await s.execute(insert(OrderRow), rows[i : i + BATCH])
        for i in range(0, len(packages), BATCH):
            await s.execute(insert(PackageIndexRow), packages[i : i + BATCH])


async def run(kind: str, count: int) -> None:
    async with AsyncExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        db = Database(await empty_database(kind, workdir, stack))
        stack.push_async_callback(db.dispose)
        await _fill(db, count)
        cases = (
            ("newest first", OrderFilter(), "-placed"),
            ("by total", OrderFilter(), "-total"),
            ("q: order id prefix", OrderFilter(q="0000000000000001"), "-placed"),
            ("q: buyer prefix", OrderFilter(q="b-97"), "-placed"),
            ("q: SKU", OrderFilter(q="SKU-1234"), "-placed"),
            ("q: tracking number", OrderFilter(q=f"SF{(count // 2) // 10 * 10:08d}"), "-placed"),
        )
        base = 0.0
        for label, where, sort in cases:
            best = float("inf")
            for _ in range(3):
                began = time.perf_counter()
                async with db.sessions() as session:
                    found, _ = await orders.page(session, where, limit=25, cursor=None, sort=sort)
                    total = await orders.count(session, where)
                best = min(best, time.perf_counter() - began)
            base = base or best
            print(
                f"search {kind:8} {count:>7} orders · {label:20} {best * 1000:7.1f} ms"
                f" ({best / base:4.1f}× the plain list) · {len(found)} shown of {total}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--orders", type=int, default=100_000)
    args = parser.parse_args()
    asyncio.run(run(args.db, args.orders))


if __name__ == "__main__":
    main()
