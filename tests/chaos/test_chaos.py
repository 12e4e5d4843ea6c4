"""Fault injection on the real processes: orders driven through their lifecycles by
retrying clients while the worker, the API and the Temporal server are killed with -9 (the
Temporal server for CHAOS_OUTAGE_SECONDS), on PostgreSQL and on SQLite. Then the books must
balance: every acknowledged order where its lifecycle left it, wallets = top-ups − payments
+ refunds, one payment per paid order, one refund per refunded one, stock exact, nothing
left in the inbox, and every running workflow an order that should be running, agreeing
with the database.

`make test` runs it small; `make chaos` runs CHAOS_ORDERS=300 with an outage longer than
the sandbox gateway's retry budget (8 attempts, about 50 s)."""

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from api.auth import Role
from domain.models import OrderState
from scripts.cluster import Cluster
from store.db import Database
from tests.chaos.driver import TOP_UP_CENTS, Driver, Json, Kind, Placed
from tests.conftest import _pg_exec, fresh_db_url
from workflows import ids
from workflows.order import OrderWorkflow

pytestmark = pytest.mark.chaos

ORDERS = int(os.environ.get("CHAOS_ORDERS", "24"))
OUTAGE_SECONDS = float(os.environ.get("CHAOS_OUTAGE_SECONDS", "4"))
CONCURRENCY = int(os.environ.get("CHAOS_CONCURRENCY", "6"))
STOCK = 100_000
KINDS = list(Kind)


async def inject_faults(cluster: Cluster, driver: Driver, log: list[str]) -> None:
    """kill -9 each process while orders are in flight; the Temporal server stays down for
    the outage. A supervisor (this loop) starts again whatever died of it."""

    async def down(names: list[str], seconds: float) -> None:
        started, busy = time.monotonic(), driver.in_flight
        for name in names:
            cluster.kill(name)
        if "temporal" in names:
            driver.pay_gate.set()  # the held gateway payments are made now
        await asyncio.sleep(seconds)
        for name in names:
            await cluster.restart(name)
        took = time.monotonic() - started
        log.append(f"{'+'.join(names)} killed with {busy} lifecycles under way, down {took:.1f} s")

    await asyncio.sleep(1.0)
    await down(["worker"], 1.0)
    await asyncio.sleep(1.5)
    await down(["api"], 0.5)
    await asyncio.sleep(1.5)
    await down(["temporal"], OUTAGE_SECONDS)
    log += [f"{name} died during the outage" for name in await cluster.supervise()]
    await asyncio.sleep(2.0)
    await down(["worker", "api"], 0.5)


async def drive(driver: Driver, faults: asyncio.Task[None]) -> int:
    """Lifecycles at CONCURRENCY until at least ORDERS were started and the faults are over
    (at most 4 × ORDERS), all run to their end; the number started."""
    admin = driver.token("chaos-admin", Role.ADMIN)
    merchant = driver.token("chaos-merchant", Role.MERCHANT)
    slots = asyncio.Semaphore(CONCURRENCY)
    running: set[asyncio.Task[None]] = set()
    started = 0

    async def one(kind: Kind) -> None:
        try:
            await driver.lifecycle(kind, admin, merchant)
        finally:
            slots.release()

    while (started < ORDERS or not faults.done()) and started < 4 * ORDERS:
        await slots.acquire()
        task = asyncio.create_task(one(KINDS[started % len(KINDS)]))
        running.add(task)
        started += 1
    await faults
    await asyncio.gather(*running)
    return started


async def eventually_settled(driver: Driver, admin: dict[str, str]) -> dict[str, Json]:
    """Every order where its lifecycle leaves it, and the inbox empty (bounded wait: a
    gateway payment lands through the relay after the outage)."""
    deadline = time.monotonic() + 120 + 5 * OUTAGE_SECONDS  # the relay backs off meanwhile
    while True:
        orders = {
            p.order_id: await driver.call("GET", f"/orders/{p.order_id}", admin)
            for p in driver.placed
        }
        pending = (await driver.call("GET", "/admin/callbacks/pending", admin))["items"]
        wrong = {
            p.order_id: orders[p.order_id]["status"]
            for p in driver.placed
            if orders[p.order_id]["status"] != p.kind.status
        }
        if not wrong and not pending:
            return orders
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled: {wrong}; inbox: {pending}")
        await asyncio.sleep(0.5)


async def relayed(db: Database) -> int:
    """Callbacks that Temporal did not take at once and the relay delivered later."""
    async with db.sessions() as session:
        count: int = (
            await session.execute(text("SELECT count(*) FROM webhook_events WHERE attempts > 0"))
        ).scalar_one()
    return count


async def check_books(db: Database, placed: list[Placed], orders: dict[str, Json]) -> None:
    by_id = {p.order_id: p for p in placed}
    async with db.sessions() as session:
        payments = (
            await session.execute(text("SELECT order_id, amount_cents, status FROM payments"))
        ).all()
        refunds = (
            await session.execute(text("SELECT order_id, amount_cents, status FROM refunds"))
        ).all()
        stock = (await session.execute(text("SELECT sku, on_hand, locked FROM stock"))).all()
        undelivered = (
            await session.execute(
                text("SELECT count(*) FROM webhook_events WHERE next_attempt_at IS NOT NULL")
            )
        ).scalar_one()
    assert undelivered == 0

    # one payment per paid order, for its total; none for an unpaid one
    paid = Counter(row.order_id for row in payments)
    expected_paid = {p.order_id for p in placed if p.kind is not Kind.UNPAID}
    assert set(paid) == expected_paid
    assert set(paid.values()) == {1}
    assert all(row.amount_cents == by_id[row.order_id].total_cents for row in payments)

    # one refund per cancelled order, of all it paid; none anywhere else, none FAILED
    refunded = Counter(row.order_id for row in refunds)
    assert set(refunded) == {p.order_id for p in placed if p.kind is Kind.CANCELLED}
    assert set(refunded.values()) <= {1}
    for row in refunds:
        assert (row.status, row.amount_cents) == ("SUCCEEDED", by_id[row.order_id].total_cents)
    for p in placed:
        assert orders[p.order_id]["refunded_cents"] == (
            p.total_cents if p.kind is Kind.CANCELLED else 0
        )

    # stock: kept goods left, unpaid orders' locks held, nothing negative
    sold: Counter[str] = Counter()
    locked: Counter[str] = Counter()
    for p in placed:
        for sku, quantity in p.lines:
            if p.kind in (Kind.COMPLETED, Kind.GATEWAY):
                sold[sku] += quantity
            elif p.kind is Kind.UNPAID and not sku.endswith("-0"):  # -0 deducts on payment
                locked[sku] += quantity
    for row in stock:
        assert row.on_hand >= row.locked >= 0
        assert (row.sku, row.on_hand, row.locked) == (
            row.sku,
            STOCK - sold[row.sku],
            locked[row.sku],
        )


async def check_wallets(driver: Driver, admin: dict[str, str]) -> None:
    for p in driver.placed:
        if p.kind is Kind.GATEWAY:
            continue
        wallet = await driver.call("GET", f"/wallets/{p.buyer}", admin)
        spent = p.total_cents if p.kind is Kind.COMPLETED else 0
        assert wallet["balance_cents"] == TOP_UP_CENTS - spent, (p, wallet)


async def check_workflows(client: Client, placed: list[Placed], orders: dict[str, Json]) -> None:
    """Running: exactly the orders that should be (a completed order stays open for its
    after-sales window), each agreeing with the database; no orphan refund left running."""
    running = {
        w.id
        async for w in client.list_workflows("ExecutionStatus = 'Running'", page_size=1000)
        if w.id != ids.RECONCILE_WORKFLOW_ID
    }
    should = {ids.order_workflow_id(p.order_id) for p in placed if p.kind is not Kind.CANCELLED}
    assert running == should
    for p in placed:
        if p.kind is Kind.CANCELLED:
            continue
        handle = client.get_workflow_handle_for(
            OrderWorkflow.run, ids.order_workflow_id(p.order_id)
        )
        state = await handle.query(OrderWorkflow.current)
        assert isinstance(state, OrderState)
        assert state.version == orders[p.order_id]["version"]


@pytest.mark.parametrize("database", ["postgres", "sqlite"])
async def test_nothing_is_lost_when_processes_are_killed(
    database: str, tmp_path: Path, sqlite_template: Path, pg_template: str
) -> None:
    db_url, pg_name = await fresh_db_url(database, tmp_path, sqlite_template, pg_template)
    cluster = Cluster(tmp_path, db_url)
    db = Database(db_url)
    log: list[str] = []
    try:
        for name in ("temporal", "gateway", "worker", "api"):
            await cluster.start(name)
        async with (
            httpx.AsyncClient(base_url=cluster.api_url, timeout=60) as api,
            httpx.AsyncClient(timeout=60) as gateway,
        ):
            suffix = uuid.uuid4().hex[:6].upper()
            driver = Driver(api, gateway, [f"CHAOS-{suffix}-{i}" for i in range(3)])
            admin = driver.token("chaos-admin", Role.ADMIN)
            await driver.setup(driver.token("chaos-merchant", Role.MERCHANT), STOCK)

            began = time.monotonic()
            faults = asyncio.create_task(inject_faults(cluster, driver, log))
            started = await drive(driver, faults)
            orders = await eventually_settled(driver, admin)
            took = time.monotonic() - began

            await check_books(db, driver.placed, orders)
            await check_wallets(driver, admin)
            client = await Client.connect(
                cluster.temporal_address, data_converter=pydantic_data_converter
            )
            await check_workflows(client, driver.placed, orders)
        relayed_later = await relayed(db)
        summary = {
            "database": database,
            "orders": started,
            "kinds": dict(Counter(p.kind.value for p in driver.placed)),
            "faults": log,
            "calls_retried": driver.retries,
            "callbacks_relayed_after_a_failure": relayed_later,
            "seconds": round(took, 1),
        }
        print(f"\nchaos: {json.dumps(summary)}")
        assert started == len(driver.placed) >= ORDERS
        assert relayed_later >= driver.held > 0  # paid during the outage: through the inbox
        assert cluster.restarts["temporal"] == 1 and cluster.restarts["worker"] >= 2
    except BaseException:
        for name in cluster.procs:
            print(f"---- {name}.log ----\n{cluster.log_tail(name)}")
        raise
    finally:
        cluster.stop()
        await db.dispose()
        if pg_name is not None:
            await _pg_exec(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")
