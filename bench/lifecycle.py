"""An order's whole life against the bare engine, side by side in one run.

    python -m bench.lifecycle [--db sqlite|postgres] [--batches 6] [--batch 30]
                              [--concurrency 10] [--workers 1] [--apis 1]

It starts what `make run` starts, as separate processes (the Temporal dev server on a
file, the worker, the API) on a fresh database, plus the bare engine's own worker
(`bench/bare.py`). A lifecycle is four client round trips each way:
* bare: update-with-start, then three updates, on a workflow that does no work;
* ours: `POST /orders`, `/pay` (balance), `/ship`, `/confirm-receipt` over HTTP.
Batches alternate (bare, ours, ours, bare, …) so drift hits both; the figure is the median
of the per-pair throughput ratios, which holds on a noisy machine where absolute rates do
not. Then one client alone: each step's median latency, ours against the bare update.
"""

import argparse
import asyncio
import re
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter

from api.auth import Role, mint
from bench.bare import TASK_QUEUE, BareWorkflow
from domain.models import FreightPolicy, FreightRule, ProductType, SkuInfo, StockPolicy
from runtime.settings import DEV_SECRETS
from scripts.cluster import Cluster
from scripts.seed import seed_catalog
from store.db import Database
from store.migrate import upgrade

PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ADDRESS = {"name": "Bench", "phone": "+86 1", "line1": "1 Rd", "city": "SH", "country": "CN"}
SKU = "BENCH"
BUYERS = 50
Steps = dict[str, float]  # step -> seconds


async def empty_database(kind: str, workdir: Path, stack: AsyncExitStack) -> str:
    """A migrated, empty database: a file, or a PostgreSQL database dropped at the end."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir}/orders.db"
    else:
        name = f"orders_bench_{uuid.uuid4().hex[:8]}"
        admin = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        async with admin.connect() as c:
            await c.execute(text(f"CREATE DATABASE {name}"))

        async def drop() -> None:
            async with admin.connect() as c:
                await c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            await admin.dispose()

        stack.push_async_callback(drop)
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    await asyncio.to_thread(upgrade, url)
    return url


async def fresh_database(
    kind: str, workdir: Path, stack: AsyncExitStack, extra: dict[str, int] | None = None
) -> str:
    """A migrated database with the bench SKU, `extra` SKUs (sku -> units) and rich buyers."""
    url = await empty_database(kind, workdir, stack)
    db = Database(url)
    skus = {SKU: 10_000_000, **(extra or {})}
    catalog = [
        (
            SkuInfo(
                sku=sku,
                title=f"Bench {sku.lower()}",
                price_cents=1000,
                product_type=ProductType.SELF,
                stock_policy=StockPolicy.LOCK_ON_ORDER,
            ),
            {"WH-A": units},
        )
        for sku, units in skus.items()
    ]
    rule = FreightRule(flat_cents=0, free_above_cents=None, policy=FreightPolicy.ONE_PACKAGE)
    async with db.transaction() as s:
        await seed_catalog(
            s,
            catalog,
            rule,
            {f"bench-{i}": (10**11, 0) for i in range(BUYERS)},
        )
    await db.dispose()
    return url


class Bare:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def lifecycle(self, n: int) -> Steps:
        wid = self.last = f"bare-{uuid.uuid4().hex}"
        out: Steps = {}
        t = time.perf_counter()
        start = WithStartWorkflowOperation(
            BareWorkflow.run,
            wid,
            id=wid,
            task_queue=TASK_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        await self.client.execute_update_with_start_workflow(
            BareWorkflow.step, "place", start_workflow_operation=start
        )
        out["place"] = time.perf_counter() - t
        handle = self.client.get_workflow_handle(wid)
        for step in ("pay", "ship", "confirm"):
            t = time.perf_counter()
            await handle.execute_update(BareWorkflow.step, step)
            out[step] = time.perf_counter() - t
        return out


class Ours:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        secret = DEV_SECRETS["jwt_secret"]
        self.buyers = [
            {"Authorization": f"Bearer {mint(secret, f'bench-{i}', Role.BUYER, 86_400)}"}
            for i in range(BUYERS)
        ]
        self.merchant = {"Authorization": f"Bearer {mint(secret, 'bench-m', Role.MERCHANT)}"}

    async def _post(self, path: str, headers: dict[str, str], body: Any) -> Any:
        r = await self.http.post(path, json=body, headers=headers)
        assert r.status_code in (200, 201), f"{path}: {r.status_code} {r.text}"
        return r.json()

    async def lifecycle(
        self, n: int, after: Callable[[str], Awaitable[None]] | None = None
    ) -> Steps:
        """One order's life; `after(step)` is awaited once each step has answered (untimed)."""
        buyer = self.buyers[n % BUYERS]
        out: Steps = {}
        t = time.perf_counter()
        order = await self._post(
            "/orders",
            buyer | {"Idempotency-Key": uuid.uuid4().hex},
            {"lines": [{"sku": SKU, "quantity": 1}], "address": ADDRESS},
        )
        out["place"] = time.perf_counter() - t
        if after:
            await after("place")
        path = f"/orders/{order['id']}"
        self.last = f"order-{order['id']}"
        t = time.perf_counter()
        paid = await self._post(f"{path}/pay", buyer, {"channel": "balance"})
        out["pay"] = time.perf_counter() - t
        if after:
            await after("pay")
        t = time.perf_counter()
        body = {"carrier": "SF", "tracking_no": f"SF{uuid.uuid4().hex[:16]}"}
        await self._post(f"{path}/packages/{paid['packages'][0]['id']}/ship", self.merchant, body)
        out["ship"] = time.perf_counter() - t
        if after:
            await after("ship")
        t = time.perf_counter()
        done = await self._post(f"{path}/confirm-receipt", buyer, {})
        out["confirm"] = time.perf_counter() - t
        if after:
            await after("confirm")
        assert done["status"] == "COMPLETED", done
        return out


class RoundTrips:
    """Round trips to the database so far, summed over the API and every worker, by kind
    (each process counts its own: `orders_db_round_trips`). None with several API processes,
    whose counters a scrape cannot sum."""

    def __init__(self, cluster: Cluster, http: httpx.AsyncClient, apis: int) -> None:
        self.cluster, self.http, self.apis = cluster, http, apis
        admin = mint(DEV_SECRETS["jwt_secret"], "bench-admin", Role.ADMIN)
        self.admin = {"Authorization": f"Bearer {admin}"}

    async def now(self) -> Counter[str] | None:
        if self.apis > 1:
            return None
        texts = [(await self.http.get("/metrics", headers=self.admin)).text]
        for bind in self.cluster.worker_metrics.values():
            texts.append((await self.http.get(f"http://{bind}/metrics")).text)
        total: Counter[str] = Counter()
        for text_ in texts:
            for kind, value in re.findall(
                r'^orders_db_round_trips(?:_total)?\{[^}]*kind="(\w+)"[^}]*\} ([0-9.e+]+)$',
                text_,
                re.MULTILINE,
            ):
                total[kind] += int(float(value))
        return total


def per_unit(trips: Counter[str], count: int) -> str:
    """Round trips per `count`, by kind: "13.0 (statement 9.0, ping 2.0, ...)"."""
    kinds = ", ".join(f"{k} {v / count:.1f}" for k, v in trips.most_common())
    return f"{sum(trips.values()) / count:.1f} ({kinds})"


Lifecycle = Callable[[int], Coroutine[Any, Any, Steps]]


async def batch(lifecycle: Lifecycle, count: int, concurrency: int) -> tuple[float, list[Steps]]:
    """`count` lifecycles by `concurrency` clients: lifecycles per second, and each one's steps."""
    results: list[Steps] = []
    queue = iter(range(count))

    async def client() -> None:
        for n in queue:
            results.append(await lifecycle(n))

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return count / (time.perf_counter() - began), results


async def paced(lifecycle: Lifecycle, rate: float, seconds: float) -> list[Steps]:
    """Open-loop arrivals: a lifecycle starts every 1/rate s, whether or not others finished."""
    tasks: list[asyncio.Task[Steps]] = []
    began = time.perf_counter()
    for n in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(lifecycle(n)))
    return list(await asyncio.gather(*tasks))


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return sorted(values)[min(len(values) - 1, int(len(values) * q))] * 1000


async def run(args: argparse.Namespace) -> None:
    async with AsyncExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="bench-"))
        url = await fresh_database(args.db, workdir, stack)
        cluster = Cluster(workdir, url, api_processes=args.apis)
        stack.callback(cluster.stop)
        await cluster.start("temporal")
        await cluster.start("bare")
        for i in range(args.workers):
            await cluster.start("worker", as_name=f"worker-{i}")
        await cluster.start("api")
        client = await Client.connect(
            cluster.temporal_address, data_converter=pydantic_data_converter
        )
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=cluster.api_url,
                timeout=60,
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
            )
        )
        bare, ours = Bare(client), Ours(http)

        for lifecycle in (bare.lifecycle, ours.lifecycle):  # warm up: imports, caches, pools
            await batch(lifecycle, 2 * args.concurrency, args.concurrency)

        trips = RoundTrips(cluster, http, args.apis)
        trips_ours: Counter[str] = Counter()
        rates: dict[str, list[float]] = {"bare": [], "ours": []}
        cpu: dict[str, dict[str, float]] = {"bare": {}, "ours": {}}  # process -> CPU seconds
        steps: list[Steps] = []
        for b in range(args.batches):
            order = [("bare", bare.lifecycle), ("ours", ours.lifecycle)]
            for name, lifecycle in order if b % 2 == 0 else order[::-1]:
                before, own = cluster.cpu_seconds(), time.process_time()
                trips_before = await trips.now()
                rate, results = await batch(lifecycle, args.batch, args.concurrency)
                after = cluster.cpu_seconds() | {"load generator": time.process_time()}
                trips_after = await trips.now()
                if name == "ours" and trips_before is not None and trips_after is not None:
                    trips_ours += trips_after - trips_before
                before["load generator"] = own
                for proc, used in after.items():
                    cpu[name][proc] = cpu[name].get(proc, 0.0) + used - before.get(proc, 0.0)
                rates[name].append(rate)
                if name == "ours":
                    steps += results
        ratios = [o / b for o, b in zip(rates["ours"], rates["bare"], strict=True)]

        print(
            f"db={args.db} workers={args.workers} apis={args.apis} "
            f"concurrency={args.concurrency} batches={args.batches}×{args.batch}"
        )
        for name, xs in rates.items():
            print(f"  {name:5} lifecycles/s  " + " ".join(f"{x:5.1f}" for x in xs))
        print("  ratio per pair   " + " ".join(f"{r:5.2f}" for r in ratios))
        print(f"  median ratio     {statistics.median(ratios):.2f}")
        count = args.batches * args.batch
        print("  CPU ms per lifecycle, by process (the machine has 2 cores)")
        for name in ("bare", "ours"):
            per = {k: v * 1000 / count for k, v in cpu[name].items() if v > 0.0005 * count}
            total = sum(per.values())
            parts = ", ".join(f"{k} {v:.0f}" for k, v in sorted(per.items(), key=lambda x: -x[1]))
            print(f"    {name:5} {total:5.0f} ms: {parts}")
        if trips_ours:
            print(f"  database round trips per lifecycle: {per_unit(trips_ours, count)}")
        placement = [s["place"] for s in steps]
        print(
            f"  ours under load  placement p50 {p(placement, 0.5):.0f} ms, "
            f"p99 {p(placement, 0.99):.0f} ms"
        )

        half = statistics.median(rates["ours"]) / 2
        at_half = await paced(ours.lifecycle, half, args.paced_seconds)
        placing = [s["place"] for s in at_half]
        print(
            f"  ours at half the max ({half:.1f} lifecycles/s, open loop): placement"
            f" p50 {p(placing, 0.5):.0f} ms, p99 {p(placing, 0.99):.0f} ms"
        )
        # one client alone: each step's median, ours against the bare update
        await asyncio.sleep(2)  # let the server finish the batches' background work
        bare_alone: list[Steps] = []
        ours_alone: list[Steps] = []
        for n in range(args.alone):  # interleaved: the same conditions for both
            bare_alone.append(await bare.lifecycle(n))
            ours_alone.append(await ours.lifecycle(n))
        print(f"  one client, p50 (ms)   {'bare':>6} {'ours':>6} {'×':>5}")
        for step in ("place", "pay", "ship", "confirm"):
            b_ = p([s[step] for s in bare_alone], 0.5)
            o_ = p([s[step] for s in ours_alone], 0.5)
            print(f"    {step:8}             {b_:6.1f} {o_:6.1f} {o_ / b_:5.1f}")
        b_life = p([sum(s.values()) for s in bare_alone], 0.5)
        o_life = p([sum(s.values()) for s in ours_alone], 0.5)
        print(f"    lifecycle            {b_life:6.1f} {o_life:6.1f} {o_life / b_life:5.1f}")
        # round trips per step: one client, the counters read after each step's answer
        by_step: dict[str, Counter[str]] = {}
        mark = await trips.now()
        if mark is not None:

            async def counted(step: str) -> None:
                nonlocal mark
                now = await trips.now()
                assert now is not None and mark is not None
                by_step[step] = by_step.get(step, Counter()) + (now - mark)
                mark = now

            alone_n = 10
            for n in range(alone_n):
                await ours.lifecycle(n, after=counted)
            print("  database round trips per step (one client):")
            for step, step_trips in by_step.items():
                print(f"    {step:8} {per_unit(step_trips, alone_n)}")
        # the last lifecycle of one client alone: under load, a step can share a workflow
        # task with the one before (fewer events), so that one would flatter the figure
        for name, wid in (("bare", bare.last), ("ours", ours.last)):
            events = (await client.get_workflow_handle(wid).fetch_history()).events
            size = sum(e.ByteSize() for e in events)
            print(f"  {name:5} history    {len(events)} events, {size} bytes per lifecycle")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--batch", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--alone", type=int, default=30, help="lifecycles of one client")
    parser.add_argument("--paced-seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--apis", type=int, default=1)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
