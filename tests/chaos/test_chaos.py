"""Fault injection on the real processes: orders driven through their lifecycles by
retrying clients while the worker, the API and the Temporal server are killed with -9 (the
Temporal server for CHAOS_OUTAGE_SECONDS), the Temporal server is frozen (SIGSTOP, for
CHAOS_FREEZE_SECONDS) and, on PostgreSQL (a private server), the database is killed for
CHAOS_DB_OUTAGE_SECONDS; on PostgreSQL and on SQLite. Then the books must
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.payments import missing_captures
from api.auth import Role
from domain.models import OrderState
from gateways.payments import PaymentGatewayClient
from runtime.settings import DEV_SECRETS
from scripts.cluster import Cluster
from scripts.postgres import PrivatePostgres
from store.db import Database
from tests.chaos.conftest import migrated_private_postgres
from tests.chaos.driver import (
    FAR_PRICE_CENTS,
    TOP_UP_CENTS,
    Driver,
    Hold,
    Json,
    Kind,
    Placed,
    spread,
)
from tests.conftest import fresh_db_url
from workflows import ids
from workflows.order import OrderWorkflow

pytestmark = pytest.mark.chaos

ORDERS = int(os.environ.get("CHAOS_ORDERS", "24"))
OUTAGE_SECONDS = float(os.environ.get("CHAOS_OUTAGE_SECONDS", "4"))
# the API's deadline on Temporal is 5 s: a freeze longer than it is answered 503
FREEZE_SECONDS = float(os.environ.get("CHAOS_FREEZE_SECONDS", "6"))
DB_OUTAGE_SECONDS = float(os.environ.get("CHAOS_DB_OUTAGE_SECONDS", "3"))
REFUND_FAULT_SECONDS = float(os.environ.get("CHAOS_REFUND_FAULT_SECONDS", "8"))
REFUNDS_FAILING = "gateway refunds failing"
GATEWAY_RETRIES_OUTLAST = 10.0  # seconds before a database outage ends: the held payments
ANSWERED_WITHIN = 15.0  # a functional bound on each answer during an outage, not a speed
CONCURRENCY = int(os.environ.get("CHAOS_CONCURRENCY", "6"))
STOCK = 100_000
KINDS = list(Kind)


@dataclass
class Faults:
    """What the suite does to the processes, as a supervisor would see it: each fault
    logged with the lifecycles under way and how long it lasted, and its time window."""

    cluster: Cluster
    driver: Driver
    pg: PrivatePostgres | None  # the private server (PostgreSQL runs); None on SQLite
    log: list[str] = field(default_factory=list)
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)

    async def fault(
        self,
        name: str,
        begin: Callable[[], None],
        end: Callable[[], Awaitable[None]],
        seconds: float,
        pay_at: float = 0.0,
    ) -> None:
        """`begin`, the payments held for `name` made `pay_at` seconds in, `end` after
        `seconds`."""
        began, busy = time.monotonic(), self.driver.in_flight
        begin()
        await asyncio.sleep(pay_at)
        self.driver.release(name)
        await asyncio.sleep(seconds - pay_at)
        await end()
        took = time.monotonic() - began
        self.windows[name] = (began, time.monotonic())
        self.log.append(f"{name} with {busy} lifecycles under way, {took:.1f} s")

    async def killed(self, names: list[str], seconds: float) -> None:
        """kill -9, then started again as a supervisor would."""

        def kill() -> None:
            for name in names:
                self.cluster.kill(name)

        async def restart() -> None:
            for name in names:
                await self.cluster.restart(name)

        await self.fault(f"{'+'.join(names)} killed", kill, restart, seconds)

    async def frozen(self, seconds: float) -> None:
        """The Temporal server stopped (SIGSTOP): alive, its connections open, silent."""

        async def thaw() -> None:
            self.cluster.thaw("temporal")

        await self.fault("temporal frozen", lambda: self.cluster.freeze("temporal"), thaw, seconds)

    async def database_killed(self, pg: PrivatePostgres, seconds: float) -> None:
        """kill -9 of PostgreSQL; the held payments are made shortly before it is back, so
        the gateway's retries (about 25 s in all) outlast it."""
        pay_at = max(0.0, seconds - GATEWAY_RETRIES_OUTLAST)
        await self.fault("database killed", pg.kill, pg.start, seconds, pay_at)

    async def refunds_failing(self, seconds: float) -> None:
        """The gateway answers every refund 503 for `seconds`: refunds decided meanwhile are
        PENDING, the orders go on, and each lands on its next attempt after."""
        began, busy = time.monotonic(), self.driver.in_flight
        await self.driver.gateway_faults(fail_next_refunds=1000)
        await asyncio.sleep(seconds)
        await self.driver.gateway_faults(fail_next_refunds=0)
        self.windows[REFUNDS_FAILING] = (began, time.monotonic())
        took = time.monotonic() - began
        self.log.append(f"{REFUNDS_FAILING} with {busy} lifecycles under way, {took:.1f} s")

    async def inject(self) -> None:
        await asyncio.sleep(1.0)
        await self.killed(["worker"], 1.0)
        await asyncio.sleep(1.5)
        await self.killed(["api"], 0.5)
        await asyncio.sleep(1.5)
        await self.killed(["temporal"], OUTAGE_SECONDS)
        self.log += [f"{name} died during the outage" for name in await self.cluster.supervise()]
        await asyncio.sleep(2.0)
        await self.frozen(FREEZE_SECONDS)
        if self.pg is not None:
            await asyncio.sleep(2.0)
            await self.database_killed(self.pg, DB_OUTAGE_SECONDS)
        self.log += [f"{name} died during an outage" for name in await self.cluster.supervise()]
        await asyncio.sleep(2.0)
        await self.killed(["worker", "api"], 0.5)
        await asyncio.sleep(2.0)
        await self.refunds_failing(REFUND_FAULT_SECONDS)  # alone: its waits are its own

    def answered(self, fault: str, call: str = "") -> list[float]:
        """How long clients waited for the answers to the calls sent during `fault` (those
        whose method and path end start with `call`, e.g. "POST ship", "GET")."""
        t0, t1 = self.windows.get(fault, (0.0, -1.0))
        return [
            a.waited for a in self.driver.answers if t0 <= a.began <= t1 and a.call.startswith(call)
        ]

    def waits(self) -> dict[str, str]:
        out = {name: spread(self.answered(name)) for name in self.windows}
        for call in ("POST ship", "GET"):  # what the gateway's refunds must not hold up
            out[f"{REFUNDS_FAILING}: {call}"] = spread(self.answered(REFUNDS_FAILING, call))
        return out


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
        under_way = [
            o for o in orders.values() if any(r["status"] == "PENDING" for r in o["refunds"])
        ]
        if not wrong and not pending and not under_way:
            return orders
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled: {wrong}; inbox: {pending}; refunds: {under_way}")
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

    # one refund per cancelled order, of all it paid, and per part-refunded one, of its far
    # line (made through the gateway, failing for a while); none anywhere else, none FAILED
    owed = {p.order_id: refund_owed(p) for p in placed if refund_owed(p)}
    refunded = Counter(row.order_id for row in refunds)
    assert set(refunded) == set(owed)
    assert set(refunded.values()) <= {1}
    for row in refunds:
        assert (row.status, row.amount_cents) == ("SUCCEEDED", owed[row.order_id])
    for p in placed:
        assert orders[p.order_id]["refunded_cents"] == owed.get(p.order_id, 0)

    # stock: kept goods left, unpaid orders' locks held, nothing negative
    sold: Counter[str] = Counter()
    locked: Counter[str] = Counter()
    for p in placed:
        for sku, quantity in p.lines:
            kept = p.kind is Kind.PART_REFUNDED and not sku.endswith("-far")  # far: came back
            if p.kind in (Kind.COMPLETED, Kind.GATEWAY) or kept:
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


def refund_owed(p: Placed) -> int:
    if p.kind is Kind.CANCELLED:
        return p.total_cents
    return FAR_PRICE_CENTS if p.kind is Kind.PART_REFUNDED else 0


async def check_captures(db: Database, gateway_url: str, since: datetime) -> int:
    """Every capture at the gateway is in the payments ledger (whatever was down when it was
    made); the number of captures checked."""
    client = PaymentGatewayClient(gateway_url, DEV_SECRETS["gateway_api_key"])
    try:
        checked, missing = await missing_captures(db, client, since)
    finally:
        await client.aclose()
    assert missing == [], missing
    return checked


async def refunds_held(db: Database) -> list[float]:
    """For each refund agreed before shipment, how long after the agreement the gateway's
    answer landed (seconds): those agreed while the gateway failed refunds land after it."""
    async with db.sessions() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT order_id, type, at FROM order_events"
                    " WHERE type IN ('REFUND_AGREED', 'REFUND_SUCCEEDED')"
                )
            )
        ).all()

    def at(value: datetime | str) -> datetime:  # SQLite hands a raw query's time as text
        return value if isinstance(value, datetime) else datetime.fromisoformat(value)

    agreed = {r.order_id: at(r.at) for r in rows if r.type == "REFUND_AGREED"}
    return sorted(
        (at(r.at) - agreed[r.order_id]).total_seconds()
        for r in rows
        if r.type == "REFUND_SUCCEEDED" and r.order_id in agreed
    )


async def check_wallets(driver: Driver, admin: dict[str, str]) -> None:
    for p in driver.placed:
        if p.kind in (Kind.GATEWAY, Kind.PART_REFUNDED):
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


async def database_for(
    kind: str, tmp_path: Path, sqlite_template: Path
) -> tuple[str, PrivatePostgres | None]:
    """PostgreSQL: a private server, which the suite kills; SQLite: a fresh file."""
    if kind == "sqlite":
        url, _ = await fresh_db_url(kind, tmp_path, sqlite_template, None)
        return url, None
    pg = await migrated_private_postgres()
    return pg.url(), pg


@pytest.mark.parametrize("database", ["postgres", "sqlite"])
async def test_nothing_is_lost_when_processes_are_killed(
    database: str, tmp_path: Path, sqlite_template: Path
) -> None:
    db_url, pg = await database_for(database, tmp_path, sqlite_template)
    cluster = Cluster(tmp_path, db_url)
    db = Database(db_url)
    try:
        for name in ("temporal", "gateway", "worker", "api"):
            await cluster.start(name)
        # a kept-alive connection is dropped by the client before the servers' own 5 s
        # keep-alive ends: else a request held past it can meet the server closing it
        # ("Server disconnected without sending a response", seen once in a full run)
        brief = httpx.Limits(keepalive_expiry=1.0)
        async with (
            httpx.AsyncClient(base_url=cluster.api_url, timeout=60, limits=brief) as api,
            httpx.AsyncClient(base_url=cluster.gateway_url, timeout=60, limits=brief) as gateway,
        ):
            suffix = uuid.uuid4().hex[:6].upper()
            holds = [Hold("temporal killed"), Hold("temporal frozen")]
            holds += [Hold("database killed")] if pg is not None else []
            driver = Driver(api, gateway, [f"CHAOS-{suffix}-{i}" for i in range(3)], holds=holds)
            admin = driver.token("chaos-admin", Role.ADMIN)
            await driver.setup(driver.token("chaos-merchant", Role.MERCHANT), STOCK)

            began, since = time.monotonic(), datetime.now(UTC) - timedelta(minutes=1)
            faults = Faults(cluster, driver, pg)
            started = await drive(driver, asyncio.create_task(faults.inject()))
            orders = await eventually_settled(driver, admin)
            took = time.monotonic() - began

            await check_books(db, driver.placed, orders)
            captures = await check_captures(db, cluster.gateway_url, since)
            held = await refunds_held(db)
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
            "faults": faults.log,
            "waits": faults.waits(),
            "captures_in_the_ledger": captures,
            "refunds_answered_after_the_gateway_recovered": sum(w > 1.0 for w in held),
            "refund_answer_waits": spread(held),
            "calls_retried": driver.retries,
            "callbacks_relayed_after_a_failure": relayed_later,
            "seconds": round(took, 1),
        }
        print(f"\nchaos: {json.dumps(summary, ensure_ascii=False)}")
        assert started == len(driver.placed) >= ORDERS
        gateway_paid = [p for p in driver.placed if p.kind in (Kind.GATEWAY, Kind.PART_REFUNDED)]
        assert captures == len(gateway_paid)
        assert len(held) == sum(p.kind is Kind.PART_REFUNDED for p in driver.placed)
        # paid while Temporal was away: answered 2xx at once, then through the inbox
        queued = driver.held("temporal killed", "temporal frozen")
        assert relayed_later >= queued > 0
        # paid while the database was away: refused with a 503, so the gateway retried
        for hold in holds:
            assert (
                hold.first_answers == [503 if hold.fault == "database killed" else 200] * hold.held
            )
        # every call sent while Temporal was frozen or the database away answered in seconds
        for fault in ("temporal frozen", "database killed", REFUNDS_FAILING):
            assert max(faults.answered(fault), default=0.0) < ANSWERED_WITHIN, fault
        assert cluster.restarts["temporal"] == 1 and cluster.restarts["worker"] >= 2
    except BaseException:
        for name in cluster.procs:
            print(f"---- {name}.log ----\n{cluster.log_tail(name)}")
        if pg is not None:
            print(f"---- postgres.log ----\n{pg.log_tail()}")
        raise
    finally:
        cluster.stop()
        await db.dispose()
        if pg is not None:
            pg.stop()
