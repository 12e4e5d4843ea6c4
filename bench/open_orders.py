"""Many orders open at once: the worker's memory, and a mass expiry.

    python -m bench.open_orders [--db sqlite|postgres] [--orders 2000] [--window 90]

Places `orders` unpaid orders (the processes of `make run`, payment window `window` s),
sampling the worker's resident memory as they accumulate. Then the worker is stopped, as a
deploy would, until every payment window has ended, and started again with an empty
cache: every order's timer is due together, each workflow comes back from its history to
close, and the time until all are CLOSED gives the mass-expiry rate. Afterwards no lock may
be left and the stock must be exactly as before.
"""

import argparse
import asyncio
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
from sqlalchemy import text

from api.auth import Role, mint
from bench.lifecycle import ADDRESS, BUYERS, SKU, fresh_database
from runtime.settings import DEV_SECRETS
from scripts.cluster import Cluster
from store.db import Database


async def count(db: Database, sql: str) -> int:
    async with db.sessions() as session:
        value: int = (await session.execute(text(sql))).scalar_one()
    return value


async def run(args: argparse.Namespace) -> None:
    async with AsyncExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="bench-open-"))
        url = await fresh_database(args.db, workdir, stack)
        db = Database(url)
        stack.push_async_callback(db.dispose)
        cluster = Cluster(
            workdir,
            url,
            extra_env={
                "ORDERS_PAYMENT_WINDOW_SECONDS": str(args.window),
                # many unpaid orders of few buyers is this bench's point, not the cap's
                "ORDERS_MAX_UNPAID_ORDERS": "1000",
            },
        )
        stack.callback(cluster.stop)
        for name in ("temporal", "worker", "api"):
            await cluster.start(name)
        secret = DEV_SECRETS["jwt_secret"]
        buyers = [
            {"Authorization": f"Bearer {mint(secret, f'bench-{i}', Role.BUYER, 86_400)}"}
            for i in range(BUYERS)
        ]
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=cluster.api_url, timeout=60)
        )
        rss = [(0, cluster.rss_mb("worker"))]
        placed = 0
        began = time.perf_counter()

        async def client(n: int) -> None:
            nonlocal placed
            for i in range(n, args.orders, args.concurrency):
                r = await http.post(
                    "/orders",
                    headers=buyers[i % BUYERS] | {"Idempotency-Key": uuid.uuid4().hex},
                    json={"lines": [{"sku": SKU, "quantity": 1}], "address": ADDRESS},
                )
                assert r.status_code == 201, r.text
                placed += 1
                if placed % args.sample == 0:
                    rss.append((placed, cluster.rss_mb("worker")))

        await asyncio.gather(*(client(n) for n in range(args.concurrency)))
        placing = time.perf_counter() - began
        print(f"db={args.db} orders={args.orders} payment window {args.window} s")
        print(f"  placed in {placing:.1f} s ({args.orders / placing:.0f} orders/s)")
        print(
            "  worker RSS (MB) as orders open: "
            + ", ".join(f"{n}: {mb:.0f}" for n, mb in rss[:: max(1, len(rss) // 12)])
        )
        if args.no_expiry:
            return
        cluster.stop_gracefully("worker")
        locked = await count(db, f"SELECT locked FROM stock WHERE sku = '{SKU}'")
        assert locked == args.orders, locked
        # every payment window ends while the worker is away
        await asyncio.sleep(max(0.0, began + placing + args.window + 2 - time.perf_counter()))

        restarted = time.perf_counter()
        cpu_before = cluster.cpu_seconds()
        await cluster.restart("worker")
        closed, closing_rss = 0, []
        while closed < args.orders:
            await asyncio.sleep(0.5)
            closed = await count(db, "SELECT count(*) FROM orders WHERE status = 'CLOSED'")
            closing_rss.append(cluster.rss_mb("worker"))
        closing = time.perf_counter() - restarted
        cpu = {
            name: used - cpu_before.get(name, 0.0)
            for name, used in cluster.cpu_seconds().items()
            if name != "worker"
        } | {"worker": cluster.cpu_seconds()["worker"]}
        locked = await count(db, f"SELECT locked FROM stock WHERE sku = '{SKU}'")
        on_hand = await count(db, f"SELECT on_hand FROM stock WHERE sku = '{SKU}'")

        print(
            f"  mass expiry: {args.orders} orders closed {closing:.1f} s after the worker came"
            f" back ({args.orders / closing:.0f} orders/s, worker start-up included)"
        )
        print(
            f"  worker RSS while closing: peak {max(closing_rss):.0f} MB,"
            f" at the end {closing_rss[-1]:.0f} MB"
        )
        print(
            "  CPU seconds while closing: "
            + ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items(), key=lambda x: -x[1]))
        )
        print(f"  stock afterwards: on_hand {on_hand}, locked {locked}")
        assert locked == 0 and on_hand == 10_000_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--window", type=int, default=90, help="payment window, seconds")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--sample", type=int, default=250, help="RSS every this many orders")
    parser.add_argument("--no-expiry", action="store_true", help="memory only")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
