"""Prometheus metrics.

* The worker: the Temporal SDK's own (runtime telemetry, served by the SDK on
  `ORDERS_METRICS_BIND`) and the business counters below, through the same meter, so one
  scrape has both.
* The API: requests per route, status and method, and their latency (`GET /metrics`).
"""

import asyncio
import time
from collections.abc import Mapping

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.common import MetricMeter

from domain.models import EventType, OrderEvent, Refund
from workflows import ids

DB_ROUND_TRIPS = ("orders_db_round_trips", "round trips to the database, by kind")


class BusinessMetrics:
    """Counted where the change is saved, once per transition (a retried save may count a
    transition twice: these are rates for dashboards, the database is the record)."""

    def __init__(self, meter: MetricMeter) -> None:
        self.events = meter.create_counter(*ids.EVENTS_METRIC)
        self.closed = meter.create_counter("orders_closed", "orders closed, by close reason")
        self.refunds = meter.create_counter("orders_refunds", "refunds made, by result")
        self.cases = meter.create_counter("orders_cases", "after-sales case changes, by status")
        self.trips = meter.create_counter(*DB_ROUND_TRIPS)

    def round_trip(self, kind: str) -> None:
        """One round trip to the database (`store.db.count_round_trips`)."""
        self.trips.add(1, {"kind": kind})

    def saved(self, event: OrderEvent) -> None:
        self.events.add(1, {"type": event.type})
        if event.type is EventType.CLOSED:
            self.closed.add(1, {"reason": str(event.data.get("reason", ""))})

    def placed(self) -> None:
        self.events.add(1, {"type": "PLACED"})

    def paid(self) -> None:
        self.events.add(1, {"type": "PAID"})

    def refund(self, refund: Refund, result: str) -> None:
        self.refunds.add(1, {"result": result, "channel": str(refund.channel)})

    def case(self, status: str) -> None:
        self.cases.add(1, {"status": status})


API_ROUND_TRIPS = Counter(*DB_ROUND_TRIPS, ["kind"])


def api_round_trip(kind: str) -> None:
    API_ROUND_TRIPS.labels(kind).inc()


REQUESTS = Counter(
    "orders_api_requests",
    "API requests, by method, route and status",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "orders_api_request_seconds",
    "API request latency, by method and route",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class RequestMetrics:
    """ASGI middleware: each request counted under its route's template (`/orders/{order_id}`,
    not the id), so the label set stays small."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route, method = _template(scope), _method(scope)
            LATENCY.labels(method, route).observe(time.perf_counter() - began)
            REQUESTS.labels(method, route, str(status)).inc()


# a label's values come from fixed sets: an invented method is OTHER, an unknown path is
# "unmatched", so no request can add label sets (memory) to the API
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method(scope: Mapping[str, object]) -> str:
    method = scope.get("method")
    return method if isinstance(method, str) and method in METHODS else "OTHER"


def _template(scope: Mapping[str, object]) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


async def metrics_endpoint(_: Request) -> Response:
    """The exposition, built in a thread: the event loop keeps serving meanwhile."""
    return Response(await asyncio.to_thread(generate_latest), media_type=CONTENT_TYPE_LATEST)
