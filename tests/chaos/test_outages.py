"""Outages the API must answer in seconds, on the real processes (`scripts.cluster`) over a
private PostgreSQL server: the Temporal server frozen (SIGSTOP: alive, its connections open,
answering nothing) and the database killed. Actions are a 503 with Retry-After, reads of
stored orders need only the database, and a partner's callback is recorded and lands."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from runtime.settings import DEV_SECRETS
from scripts.cluster import Cluster
from scripts.postgres import PrivatePostgres
from tests.chaos.conftest import migrated_private_postgres
from tests.chaos.driver import spread
from tests.conftest import test_settings as settings_for_tests
from tests.e2e.harness import Json, Stack, User, eventually, expect_problem, ok

pytestmark = pytest.mark.chaos

DEADLINE_SECONDS = 5.0  # ORDERS_TEMPORAL_RPC_TIMEOUT_SECONDS, its default
ANSWERED_WITHIN = 15.0  # a functional bound on every answer during an outage, not a speed
RETRY_AFTER = "5"
ACTIONS = 12  # actions sent at once while Temporal is frozen


@dataclass
class Outages:
    cluster: Cluster
    pg: PrivatePostgres
    shop: Stack


@pytest.fixture(scope="module")
async def outages(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Outages]:
    pg = await migrated_private_postgres()
    cluster = Cluster(tmp_path_factory.mktemp("outages"), pg.url())
    settings = settings_for_tests(**DEV_SECRETS)  # the secrets the cluster's processes use
    try:
        for name in ("temporal", "gateway", "worker", "api"):
            await cluster.start(name)
        temporal = await Client.connect(
            cluster.temporal_address, data_converter=pydantic_data_converter
        )
        async with httpx.AsyncClient(base_url=cluster.api_url, timeout=60) as http:
            yield Outages(
                cluster,
                pg,
                Stack(
                    base_url=cluster.api_url,
                    gateway_url=cluster.gateway_url,
                    supplier_url="",
                    settings=settings,
                    temporal=temporal,
                    http=http,
                    fast_http=http,
                ),
            )
    except BaseException:
        for name in cluster.procs:
            print(f"---- {name}.log ----\n{cluster.log_tail(name)}")
        print(f"---- postgres.log ----\n{pg.log_tail()}")
        raise
    finally:
        cluster.stop()
        pg.stop()


async def timed(call: Awaitable[httpx.Response]) -> tuple[float, httpx.Response]:
    began = time.monotonic()
    answer = await call
    return time.monotonic() - began, answer


def unavailable(answer: httpx.Response, code: str) -> None:
    expect_problem(answer, 503, code)
    assert answer.headers["Retry-After"] == RETRY_AFTER


async def unpaid_orders(shop: Stack, count: int) -> list[tuple[User, Json]]:
    sku = await shop.put_sku({"WH-A": 1000}, price_cents=1200)
    placed = []
    for _ in range(count):
        buyer = shop.buyer()
        order = await shop.placed(buyer, [(sku, 1)])
        await shop.top_up(buyer, order["total_cents"])
        placed.append((buyer, order))
    return placed


async def intent(shop: Stack, buyer: User, order: Json) -> Json:
    body = {"channel": "alipay"}
    data: Json = ok(await shop.act(buyer, f"/orders/{order['id']}/payment-intents", body), 201)
    return data


async def paid_in_the_end(shop: Stack, buyer: User, order: Json) -> None:
    """Paying again after an outage: paid now, or already paid by the unanswered attempt."""
    again = await shop.act(buyer, f"/orders/{order['id']}/pay", {"channel": "balance"})
    if again.status_code == 409:
        assert (await shop.order(buyer, order["id"]))["payment"] is not None, again.text
    else:
        assert ok(again)["status"] == "PENDING_SHIPMENT"


async def test_a_frozen_temporal_is_answered_in_seconds(outages: Outages) -> None:
    shop, cluster = outages.shop, outages.cluster
    unpaid = await unpaid_orders(shop, ACTIONS + 1)
    by_gateway_buyer, by_gateway = unpaid.pop()
    pay_url = (await intent(shop, by_gateway_buyer, by_gateway))["pay_url"]
    stored_buyer, stored = unpaid[0]

    cluster.freeze("temporal")
    try:
        answers = await asyncio.gather(
            *(
                timed(shop.act(buyer, f"/orders/{order['id']}/pay", {"channel": "balance"}))
                for buyer, order in unpaid
            ),
            timed(shop.http.get(f"/orders/{stored['id']}", headers=stored_buyer.headers)),
            timed(shop.http.post(pay_url)),  # the gateway calls the webhook back, signed
        )
        pending = ok(await shop.http.get("/admin/callbacks/pending", headers=shop.admin.headers))
        ready = await shop.http.get("/readyz")
    finally:
        cluster.thaw("temporal")

    *actions, (_, read), (callback_wait, callback) = answers
    for waited, answer in actions:
        unavailable(answer, "TEMPORAL_UNAVAILABLE")
        assert waited < ANSWERED_WITHIN
    assert ok(read) == stored  # from the database, Temporal notwithstanding
    paid = ok(callback)
    assert (paid["delivered"], paid["status_code"]) == (True, 200), paid  # recorded: 2xx
    assert callback_wait < ANSWERED_WITHIN
    queued = [e for e in pending["items"] if e["order_id"] == by_gateway["id"]]
    assert [(e["event_id"], e["attempts"] >= 1) for e in queued] == [(paid["event_ids"][0], True)]
    assert (ready.status_code, ready.json()["database"]) == (503, "ok")
    waits = [waited for waited, _ in actions]
    print(f"\nfrozen Temporal, {len(waits)} actions answered 503 in {spread(waits)}")

    # thawed: the queued payment lands through the relay, and the actions can be sent again
    settled = await eventually(
        lambda: shop.order(by_gateway_buyer, by_gateway["id"]),
        lambda o: o["status"] != "PENDING_PAYMENT",
        what="the queued payment",
        timeout=60,
    )
    assert settled["status"] == "PENDING_SHIPMENT"
    assert settled["payment"]["txn_id"] == paid["txn_id"]
    for buyer, order in unpaid:
        await paid_in_the_end(shop, buyer, order)


async def test_a_database_outage_is_a_503(outages: Outages) -> None:
    shop, pg = outages.shop, outages.pg
    placed = await unpaid_orders(shop, 3)
    [(buyer, order), (by_gateway_buyer, by_gateway), (payer, paying)] = placed
    pay_url = (await intent(shop, by_gateway_buyer, by_gateway))["pay_url"]
    cart = [(line["sku"], 1) for line in order["lines"]]
    read_order = f"/orders/{order['id']}"

    pg.kill()
    try:
        (
            (read_wait, read),
            (place_wait, place),
            (_, ready),
            (callback_wait, callback),
            (pay_wait, pay),
        ) = await asyncio.gather(
            timed(shop.http.get(read_order, headers=buyer.headers)),
            timed(shop.place(buyer, cart, key="placed-during-a-database-outage")),
            timed(shop.http.get("/readyz")),
            timed(shop.http.post(pay_url)),  # the webhook's first answer: 503
            # reaches the workflow, whose write waits for the database: past the deadline
            timed(shop.act(payer, f"/orders/{paying['id']}/pay", {"channel": "balance"})),
        )
    finally:
        await pg.start()

    unavailable(read, "DATABASE_UNAVAILABLE")
    unavailable(place, "DATABASE_UNAVAILABLE")
    unavailable(pay, "TEMPORAL_UNAVAILABLE")
    assert ready.status_code == 503
    assert ready.json()["database"].startswith("unavailable")
    assert ready.json()["temporal"] == "ok"
    paid = ok(callback)
    assert (paid["delivered"], paid["status_code"]) == (False, 503), paid  # the gateway retries
    waits = [read_wait, place_wait, callback_wait, pay_wait]
    assert max(waits) < ANSWERED_WITHIN
    print(f"\ndatabase down, answered 503 in {spread(waits)}")

    # the database is back: the same calls work, and the gateway's retry lands
    assert ok(await shop.http.get(read_order, headers=buyer.headers)) == order
    assert ok(await shop.http.get("/readyz"))["database"] == "ok"
    again = ok(await shop.place(buyer, cart, key="placed-during-a-database-outage"), 201)
    assert again["status"] == "PENDING_PAYMENT"
    settled = await eventually(
        lambda: shop.order(by_gateway_buyer, by_gateway["id"]),
        lambda o: o["status"] != "PENDING_PAYMENT",
        what="the gateway's retried callback",
        timeout=60,
    )
    assert settled["payment"]["txn_id"] == paid["txn_id"]
    # the action cut off at the deadline completes once the database is back
    await eventually(
        lambda: shop.order(payer, paying["id"]),
        lambda o: o["status"] == "PENDING_SHIPMENT",
        what="the payment sent during the outage",
        timeout=60,
    )
