"""A hot SKU: many buyers race for a few units at once.

    python -m bench.hot_sku [--db sqlite|postgres] [--buyers 200] [--units 50]

Every buyer sends one `POST /orders` for one unit at the same moment (the processes of
`make run`, a fresh database). Exactly `units` orders must be placed, every other buyer
refused with OUT_OF_STOCK, quickly, and the stock never negative.
"""

import argparse
import asyncio
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
from sqlalchemy import text

from api.auth import Role, mint
from bench.lifecycle import ADDRESS, fresh_database, p
from runtime.settings import DEV_SECRETS
from scripts.cluster import Cluster
from store.db import Database

HOT = "HOT"


async def run(args: argparse.Namespace) -> None:
    async with AsyncExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="bench-hot-"))
        url = await fresh_database(args.db, workdir, stack, extra={HOT: args.units})
        cluster = Cluster(workdir, url)
        stack.callback(cluster.stop)
        for name in ("temporal", "worker", "api"):
            await cluster.start(name)
        secret = DEV_SECRETS["jwt_secret"]
        # aiohttp: a tenth of httpx's CPU per request, so the load generator leaves the two
        # cores to what it measures (buyers' own machines are elsewhere)
        http = await stack.enter_async_context(
            aiohttp.ClientSession(
                base_url=cluster.api_url,
                timeout=aiohttp.ClientTimeout(total=60),
                # idle connections dropped before uvicorn's 5 s keep-alive ends: a POST on a
                # connection the server is closing fails and is not retried
                connector=aiohttp.TCPConnector(limit=args.buyers + 10, keepalive_timeout=2.0),
            )
        )
        async with http.get("/skus") as warm:  # warm up the API
            assert warm.status == 200
        buyers = [
            {"Authorization": f"Bearer {mint(secret, f'hot-{uuid.uuid4().hex[:8]}', Role.BUYER)}"}
            for _ in range(args.buyers)
        ]
        go = asyncio.Event()

        async def buy(headers: dict[str, str]) -> tuple[int, str, float]:
            await go.wait()
            t = time.perf_counter()
            async with http.post(
                "/orders",
                headers=headers | {"Idempotency-Key": uuid.uuid4().hex},
                json={"lines": [{"sku": HOT, "quantity": 1}], "address": ADDRESS},
            ) as r:
                body = await r.json(content_type=None)
            took = time.perf_counter() - t
            return r.status, body.get("code", ""), took

        def cpu() -> dict[str, float]:
            return cluster.cpu_seconds() | {"load generator": time.process_time()}

        async def wave() -> tuple[list[tuple[int, str, float]], float, str]:
            """Every buyer at once: the answers, how long until the last one, and the CPU
            each process spent on the wave, per request."""
            go.clear()
            tasks = [asyncio.create_task(buy(h)) for h in buyers]
            await asyncio.sleep(0.2)  # all waiting at the gate
            before = cpu()
            began = time.perf_counter()
            go.set()
            answers = await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - began
            used = {k: (v - before.get(k, 0.0)) * 1000 / len(buyers) for k, v in cpu().items()}
            parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(used.items(), key=lambda x: -x[1]))
            return answers, elapsed, f"    CPU ms per request: {parts}"

        results, elapsed, cpu_used = await wave()

        placed = [t for status, _, t in results if status == 201]
        refused = [t for status, code, t in results if status == 409 and code == "OUT_OF_STOCK"]
        other = [
            (s, c) for s, c, _ in results if s != 201 and not (s == 409 and c == "OUT_OF_STOCK")
        ]
        db = Database(url)
        async with db.sessions() as session:
            rows = (
                await session.execute(
                    text("SELECT on_hand, locked FROM stock WHERE sku = :s"), {"s": HOT}
                )
            ).all()
        await db.dispose()
        on_hand, locked = rows[0]
        print(f"db={args.db} buyers={args.buyers} units={args.units}, all at once")
        print(f"  placed {len(placed)}, refused OUT_OF_STOCK {len(refused)}, other {other or 0}")
        print(f"  stock afterwards: on_hand {on_hand}, locked {locked}")
        print(
            f"  placement p50 {p(placed, 0.5):.0f} ms, p99 {p(placed, 0.99):.0f} ms; "
            f"refusal p50 {p(refused, 0.5):.0f} ms, p99 {p(refused, 0.99):.0f} ms; "
            f"all answered in {elapsed:.2f} s"
        )
        print(cpu_used)
        assert len(placed) == args.units and not other
        assert (on_hand, locked) == (args.units, args.units)

        # a second wave, once the stock reads zero: refused from a read, no transaction each
        second, elapsed, cpu_used = await wave()
        assert all(status == 409 and code == "OUT_OF_STOCK" for status, code, _ in second)
        took = [t for _, _, t in second]
        print(
            f"  a second wave of {len(second)} after the sell-out: refusal p50"
            f" {p(took, 0.5):.0f} ms, p99 {p(took, 0.99):.0f} ms, all answered in {elapsed:.2f} s"
        )
        print(cpu_used)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--buyers", type=int, default=200)
    parser.add_argument("--units", type=int, default=50)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
