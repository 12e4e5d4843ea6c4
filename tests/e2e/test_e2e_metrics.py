"""Metrics from the real processes: the worker's (the Temporal SDK's own and the business
counters, on one endpoint) and the API's per route."""

import json
import re
import uuid
from pathlib import Path

import httpx
import pytest

from api.auth import Role, mint
from runtime.settings import DEV_SECRETS
from scripts.cluster import Cluster, free_port
from tests.conftest import _pg_exec, fresh_db_url
from tests.e2e.harness import ADDRESS, ok

pytestmark = pytest.mark.e2e


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus text exposition, 0 if absent."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels_part = line[len(name) + 1 : line.rindex("}")]  # a route may hold braces
        found = dict(re.findall(r'(\w+)="([^"]*)"', labels_part))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_the_worker_and_the_api_expose_their_metrics(
    tmp_path: Path, sqlite_template: Path, pg_template: str
) -> None:
    url, name = await fresh_db_url("postgres", tmp_path, sqlite_template, pg_template)
    port = free_port()
    cluster = Cluster(tmp_path, url, extra_env={"ORDERS_METRICS_BIND": f"127.0.0.1:{port}"})
    secret = DEV_SECRETS["jwt_secret"]
    merchant = {"Authorization": f"Bearer {mint(secret, 'm-metrics', Role.MERCHANT)}"}
    admin = {"Authorization": f"Bearer {mint(secret, 'a-metrics', Role.ADMIN)}"}
    buyer_id = f"b-{uuid.uuid4().hex[:6]}"
    buyer = {"Authorization": f"Bearer {mint(secret, buyer_id, Role.BUYER)}"}
    try:
        for process in ("temporal", "worker", "api"):
            await cluster.start(process)
        async with httpx.AsyncClient(base_url=cluster.api_url, timeout=30) as http:
            sku = {
                "title": "t",
                "price_cents": 1000,
                "product_type": "SELF",
                "stock_policy": "LOCK_ON_ORDER",
            }
            ok(await http.put("/skus/MET-1", json=sku, headers=merchant))
            ok(await http.put("/skus/MET-1/stock/WH-A", json={"on_hand": 5}, headers=merchant))
            ok(
                await http.post(
                    f"/wallets/{buyer_id}/top-up", json={"amount_cents": 10_000}, headers=admin
                )
            )
            body = {"lines": [{"sku": "MET-1", "quantity": 1}], "address": ADDRESS}
            order = ok(await http.post("/orders", json=body, headers=buyer), 201)
            ok(
                await http.post(
                    f"/orders/{order['id']}/pay", json={"channel": "balance"}, headers=buyer
                )
            )
            ok(await http.post(f"/orders/{order['id']}/cancel", json={}, headers=buyer))
            await http.get("/orders/nope", headers=buyer)  # a 404

            api = (await http.get("/metrics")).text
            worker = (await httpx.AsyncClient().get(f"http://127.0.0.1:{port}/metrics")).text

        route = {"method": "POST", "route": "/orders"}
        assert sample(api, "orders_api_requests_total", **route, status="201") == 1
        assert (
            sample(api, "orders_api_requests_total", route="/orders/{order_id}", status="404") == 1
        )
        assert sample(api, "orders_api_request_seconds_count", **route) == 1
        assert 'order_id="' not in api  # routes by template: the label set stays small

        for kind in ("PLACED", "PAID", "CLOSED"):
            assert sample(worker, "orders_events", type=kind) == 1, worker
        assert sample(worker, "orders_closed", reason="BUYER_CANCELLED") == 1
        assert sample(worker, "orders_refunds", result="SUCCEEDED", channel="balance") == 1
        assert "temporal_workflow_task_execution_latency" in worker  # the SDK's own

        # and the API's log is JSON lines
        records = [json.loads(x) for x in (tmp_path / "api.log").read_text().splitlines() if x]
        assert records and {r["process"] for r in records} == {"api"}
        assert any(r["msg"].startswith("Application startup complete") for r in records)
    finally:
        cluster.stop()
        if name is not None:
            await _pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
