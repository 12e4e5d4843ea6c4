"""Place and pay N orders over HTTP against the whole stack in one process: a Temporal dev
server (in memory), the worker, the API on uvicorn, SQLite or PostgreSQL.

    python -m bench.place_pay [--orders 200] [--concurrency 20] [--db sqlite|postgres]

Reports latency percentiles, throughput, and what each order costs: workflow history
events and SQL statements (worker + API).
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.auth import Role, mint
from bench.lifecycle import empty_database
from domain.models import ProductType, SkuInfo, StockPolicy
from gateways.payments import PaymentGatewayClient
from runtime.settings import Settings
from scripts.seed import seed_catalog
from scripts.serve import listening_socket, serving, url_of
from store.db import Database
from worker import build_worker
from workflows.ids import SEARCH_ATTRIBUTES, order_workflow_id

BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"
PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ADDRESS = {"name": "Bench", "phone": "+86 1", "line1": "1 Rd", "city": "SH", "country": "CN"}


class StatementCounter:
    def __init__(self, *dbs: Database) -> None:
        self.count = 0
        for db in dbs:
            event.listen(db.engine.sync_engine, "before_cursor_execute", self._inc)

    def _inc(self, *_: Any) -> None:
        self.count += 1


def pct(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * p))] * 1000


async def run(orders: int, concurrency: int, kind: str) -> None:
    async with AsyncExitStack() as stack:
        url = await empty_database(kind, Path(tempfile.mkdtemp()), stack)
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(BIN / "temporal"),
            data_converter=pydantic_data_converter,
            search_attributes=SEARCH_ATTRIBUTES,
        )
        stack.push_async_callback(env.shutdown)
        sock = listening_socket()
        settings = Settings(database_url=url, task_queue="bench", api_public_url=url_of(sock))
        worker_db, api_db = Database(url), Database(url)
        stack.push_async_callback(worker_db.dispose)
        stack.push_async_callback(api_db.dispose)
        bench_sku = SkuInfo(
            sku="BENCH",
            title="Bench tea",
            price_cents=1000,
            product_type=ProductType.SELF,
            stock_policy=StockPolicy.LOCK_ON_ORDER,
        )
        async with worker_db.transaction() as s:
            await seed_catalog(
                s,
                [(bench_sku, {"WH-A": orders * 2, "WH-B": orders * 2})],
                wallets={f"bench-{i}": (10_000_000, 0) for i in range(concurrency)},
            )
        gateway = PaymentGatewayClient("http://127.0.0.1:9", "unused")
        await stack.enter_async_context(build_worker(env.client, settings, worker_db, gateway))
        app = create_app(settings, temporal=env.client, db=api_db, gateway=gateway)
        await stack.enter_async_context(serving(app, sock, "api"))
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=settings.api_public_url, timeout=60)
        )
        tokens = [mint(settings.jwt_secret, f"bench-{i}", Role.BUYER) for i in range(concurrency)]
        counter = StatementCounter(worker_db, api_db)
        place_s: list[float] = []
        pay_s: list[float] = []
        ids: list[str] = []

        async def client(n: int) -> None:
            headers = {"Authorization": f"Bearer {tokens[n]}"}
            for _ in range(n, orders, concurrency):
                t0 = time.perf_counter()
                r = await http.post(
                    "/orders",
                    headers=headers,
                    json={"lines": [{"sku": "BENCH", "quantity": 1}], "address": ADDRESS},
                )
                t1 = time.perf_counter()
                assert r.status_code == 201, r.text
                oid = r.json()["id"]
                p = await http.post(
                    f"/orders/{oid}/pay", headers=headers, json={"channel": "balance"}
                )
                t2 = time.perf_counter()
                assert p.status_code == 200 and p.json()["status"] == "PENDING_SHIPMENT", p.text
                place_s.append(t1 - t0)
                pay_s.append(t2 - t1)
                ids.append(oid)

        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        history = await env.client.get_workflow_handle(order_workflow_id(ids[0])).fetch_history()
        print(f"db={kind} orders={orders} concurrency={concurrency}")
        print(f"  throughput        {orders / elapsed:7.1f} orders/s (place + pay)")
        for name, xs in (("place", place_s), ("pay", pay_s)):
            print(
                f"  {name:6} latency    p50 {pct(xs, 0.5):6.1f} ms   p95 {pct(xs, 0.95):6.1f} ms"
                f"   mean {statistics.mean(xs) * 1000:6.1f} ms"
            )
        print(f"  history events    {len(history.events)} per order after payment")
        per_order = counter.count / orders
        print(f"  SQL statements    {per_order:.1f} per order (place + pay, API + worker)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    asyncio.run(run(args.orders, args.concurrency, args.db))


if __name__ == "__main__":
    main()
