"""The production topology in small: the schema migrated and the search attributes registered
by their commands, two worker processes and two API processes started from the entry
points, on PostgreSQL, and orders driven through them to the end."""

import asyncio
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from api.auth import Role, mint
from runtime.settings import DEV_SECRETS
from scripts.cluster import BIN, Cluster
from tests.conftest import PG_URL, _pg_exec
from tests.e2e.harness import ADDRESS, eventually, ok

pytestmark = pytest.mark.e2e


def command(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (args, done.returncode, done.stderr[-2000:])
    return done.stdout


async def _pollers(client: Client) -> set[str]:
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name="orders"),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return {p.identity for p in described.pollers}


async def test_two_workers_and_two_api_processes_from_the_entry_points(tmp_path: Path) -> None:
    name = f"orders_prod_{uuid.uuid4().hex[:8]}"
    await _pg_exec(f"CREATE DATABASE {name}")  # empty: orders-migrate makes the schema
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    cluster = Cluster(tmp_path, url, api_processes=2)
    secret = DEV_SECRETS["jwt_secret"]
    merchant = {"Authorization": f"Bearer {mint(secret, 'm-prod', Role.MERCHANT)}"}
    admin = {"Authorization": f"Bearer {mint(secret, 'a-prod', Role.ADMIN)}"}
    try:
        await asyncio.to_thread(command, str(BIN / "orders-migrate"), env=cluster.env())
        await cluster.start("temporal")
        registered = await asyncio.to_thread(
            command, str(BIN / "orders-register-search-attributes"), env=cluster.env()
        )
        assert "already registered" in registered  # the dev server was started with them
        await cluster.start("worker", as_name="worker-1")
        await cluster.start("worker", as_name="worker-2")
        await cluster.start("api")
        client = await Client.connect(cluster.temporal_address)
        pollers = await eventually(  # both workers up and polling before orders flow
            lambda: _pollers(client),
            lambda found: len(found) >= 2,
            what="two workers polling",
            timeout=60,
        )
        assert len(pollers) == 2

        async with httpx.AsyncClient(base_url=cluster.api_url, timeout=60) as http:
            sku = {
                "title": "t",
                "price_cents": 1000,
                "product_type": "SELF",
                "stock_policy": "LOCK_ON_ORDER",
            }
            ok(await http.put("/skus/PROD-1", json=sku, headers=merchant))
            ok(await http.put("/skus/PROD-1/stock/WH-A", json={"on_hand": 50}, headers=merchant))

            async def lifecycle(n: int) -> str:
                buyer_id = f"b-prod-{n}"
                buyer = {"Authorization": f"Bearer {mint(secret, buyer_id, Role.BUYER)}"}
                top_up = {"amount_cents": 100_000}
                ok(await http.post(f"/wallets/{buyer_id}/top-up", json=top_up, headers=admin))
                body = {"lines": [{"sku": "PROD-1", "quantity": 1}], "address": ADDRESS}
                order = ok(await http.post("/orders", json=body, headers=buyer), 201)
                path = f"/orders/{order['id']}"
                paid = ok(
                    await http.post(f"{path}/pay", json={"channel": "balance"}, headers=buyer)
                )
                package = paid["packages"][0]["id"]
                ship = {"carrier": "SF", "tracking_no": f"SFPROD{n}"}
                ok(await http.post(f"{path}/packages/{package}/ship", json=ship, headers=merchant))
                done = ok(await http.post(f"{path}/confirm-receipt", json={}, headers=buyer))
                status: str = done["status"]
                return status

            statuses = await asyncio.gather(*(lifecycle(n) for n in range(12)))
            assert statuses == ["COMPLETED"] * 12
            assert ok(await http.get("/readyz"))["status"] == "ok"

        assert all(p.poll() is None for p in cluster.procs.values())  # nothing died
    finally:
        cluster.stop()
        await _pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
