"""What the end-to-end tests share: the running stack, users with tokens, HTTP helpers.

Imported as `tests.e2e.harness` by the folder's conftest and by the tests (a plain module,
so the tests can name its types; conftest modules cannot be imported reliably).
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

from api.auth import Role, mint
from runtime.settings import Settings
from sandboxes.carrier import send_carrier_event
from sandboxes.signed import post_signed

T = TypeVar("T")
Json = dict[str, Any]

PROBLEM_JSON = "application/problem+json"
ADDRESS: Json = {
    "name": "Li Lei",
    "phone": "+86 138 0000 0000",
    "line1": "1 West Lake Road",
    "city": "Hangzhou",
    "country": "CN",
}
FREIGHT_CENTS = 500  # the session's freight rule: flat 5.00, never free, ONE_PACKAGE
# The dev server does not skip time: the KEPLER cancel window (30 min by default) is a few
# seconds in the e2e stack, so a test sees a package wait for it and then be bought, and
# stays fast.
SUPPLIER_CANCEL_WINDOW_SECONDS = 2
# the fast API's after-sales deadlines (seconds), as ORDERS_*_SECONDS would set them
FAST_DEADLINES = {
    "refund_response_seconds": 3,
    "return_ship_seconds": 3,
    "return_receive_seconds": 3,
    "escalate_seconds": 3,
}


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class User:
    id: str
    role: Role
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def expect_problem(response: httpx.Response, status: int, code: str) -> Json:
    """Assert an RFC 9457 problem answer with this status and machine-readable code."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: Json = response.json()
    assert body["code"] == code, body
    assert body["status"] == status, body
    assert body["title"] and body["detail"] and body["type"], body
    return body


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


async def eventually(
    fetch: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    what: str,
    timeout: float = 10.0,
) -> T:
    """Re-fetch until `done` holds, for effects that land asynchronously (partner callbacks
    turned into signals, the visibility store). Bounded: fails after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await fetch()
        if done(value):
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"still waiting for {what} after {timeout} s; last: {value!r}")
        await asyncio.sleep(0.05)


@dataclass
class Stack:
    """The API, the payment and supplier sandboxes and the Temporal dev server, all on real
    ports."""

    base_url: str
    gateway_url: str
    supplier_url: str
    settings: Settings
    temporal: Client
    http: httpx.AsyncClient
    fast_http: httpx.AsyncClient  # the API with FAST_DEADLINES
    merchant: User = field(init=False)
    admin: User = field(init=False)

    def __post_init__(self) -> None:
        self.merchant = self.user(uid("merchant"), Role.MERCHANT)
        self.admin = self.user(uid("admin"), Role.ADMIN)

    # ---- users ----------------------------------------------------------------------------

    def user(self, sub: str, role: Role, ttl_seconds: int = 3600, shop: str | None = None) -> User:
        token = mint(self.settings.jwt_secret, sub, role, ttl_seconds, shop=shop)
        return User(sub, role, token)

    async def shop(self, service_phone: str = "400-800-1234") -> tuple[str, User]:
        """A new shop (opened by an admin) and its merchant."""
        shop_id = uid("shop")
        body = {"id": shop_id, "name": f"Shop {shop_id}", "service_phone": service_phone}
        ok(await self.http.post("/admin/shops", json=body, headers=self.admin.headers), 201)
        return shop_id, self.user(uid("merchant"), Role.MERCHANT, shop=shop_id)

    def buyer(self) -> User:
        return self.user(uid("buyer"), Role.BUYER)

    # ---- catalog and wallets --------------------------------------------------------------

    async def put_sku(
        self,
        stock: dict[str, int],
        *,
        price_cents: int = 1000,
        policy: str = "LOCK_ON_ORDER",
        product_type: str = "SELF",
        limit_per_buyer: int | None = None,
        listed: bool = True,
        merchant: User | None = None,
    ) -> str:
        """A new SKU with its stock, made by `merchant` (its shop's; else the shop default's)."""
        merchant = merchant or self.merchant
        sku = uid("E2E").upper()
        body: Json = {
            "title": f"Test item {sku}",
            "price_cents": price_cents,
            "product_type": product_type,
            "stock_policy": policy,
            "listed": listed,
        }
        if limit_per_buyer is not None:
            body |= {"limit_per_buyer": limit_per_buyer, "limit_window_days": 30}
        ok(await self.http.put(f"/skus/{sku}", json=body, headers=merchant.headers))
        for location, on_hand in stock.items():
            row = ok(
                await self.http.put(
                    f"/skus/{sku}/stock/{location}",
                    json={"on_hand": on_hand},
                    headers=merchant.headers,
                )
            )
            assert row == {
                "location": location,
                "on_hand": on_hand,
                "locked": 0,
                "available": on_hand,
            }
        return sku

    async def sku(self, sku: str) -> Json:
        data: Json = ok(await self.http.get(f"/skus/{sku}", headers=self.admin.headers))
        return data

    async def stock(self, sku: str) -> dict[str, tuple[int, int]]:
        """{location: (on_hand, locked)} as the catalog shows it."""
        data = await self.sku(sku)
        for row in data["stock"]:
            assert row["available"] == row["on_hand"] - row["locked"] >= 0, row
        assert data["available"] == sum(r["available"] for r in data["stock"]), data
        return {r["location"]: (r["on_hand"], r["locked"]) for r in data["stock"]}

    async def top_up(self, buyer: User, cents: int) -> Json:
        data: Json = ok(
            await self.http.post(
                f"/wallets/{buyer.id}/top-up",
                json={"amount_cents": cents},
                headers=self.admin.headers,
            )
        )
        return data

    async def wallet(self, buyer: User) -> Json:
        data: Json = ok(await self.http.get(f"/wallets/{buyer.id}", headers=buyer.headers))
        return data

    # ---- orders ---------------------------------------------------------------------------

    async def place(
        self, buyer: User, lines: list[tuple[str, int]], key: str | None = None
    ) -> httpx.Response:
        headers = dict(buyer.headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.http.post(
            "/orders",
            json={"lines": [{"sku": s, "quantity": q} for s, q in lines], "address": ADDRESS},
            headers=headers,
        )

    async def placed(self, buyer: User, lines: list[tuple[str, int]]) -> Json:
        data: Json = ok(await self.place(buyer, lines), 201)
        assert data["status"] == "PENDING_PAYMENT", data
        return data

    async def order(self, user: User, order_id: str) -> Json:
        data: Json = ok(await self.http.get(f"/orders/{order_id}", headers=user.headers))
        return data

    async def events(self, user: User, order_id: str) -> list[Json]:
        data: list[Json] = ok(
            await self.http.get(f"/orders/{order_id}/events", headers=user.headers)
        )
        return data

    async def act(self, user: User, path: str, body: Json | None = None) -> httpx.Response:
        return await self.http.post(path, json=body, headers=user.headers)

    async def paid(self, buyer: User, lines: list[tuple[str, int]]) -> Json:
        """A placed order paid from the buyer's (topped-up) balance."""
        order = await self.placed(buyer, lines)
        await self.top_up(buyer, order["total_cents"])
        data: Json = ok(await self.act(buyer, f"/orders/{order['id']}/pay", {"channel": "balance"}))
        assert data["status"] == "PENDING_SHIPMENT", data
        return data

    async def ship(self, order: Json, package_index: int = 0, merchant: User | None = None) -> Json:
        package = order["packages"][package_index]
        data: Json = ok(
            await self.act(
                merchant or self.merchant,
                f"/orders/{order['id']}/packages/{package['id']}/ship",
                {"carrier": "SF", "tracking_no": uid("SF")},
            )
        )
        return data

    async def history_length(self, order_id: str) -> int:
        """The order's history length once its workflow is at rest (the database may show a
        step a moment before the workflow task that saved it completes): bounded."""
        handle = self.temporal.get_workflow_handle(f"order-{order_id}")
        length = (await handle.describe()).history_length
        for _ in range(50):
            await asyncio.sleep(0.2)
            again = (await handle.describe()).history_length
            if again == length:
                return length
            length = again
        raise AssertionError(f"order {order_id}'s history never came to rest")

    async def signals(self, order_id: str) -> list[str]:
        """The names of the signals the order's workflow has received, in order."""
        handle = self.temporal.get_workflow_handle(f"order-{order_id}")
        return [
            e.workflow_execution_signaled_event_attributes.signal_name
            async for e in handle.fetch_history_events()
            if e.HasField("workflow_execution_signaled_event_attributes")
        ]

    async def current_details(self, order_id: str) -> str:
        return await self.workflow_details(f"order-{order_id}")

    async def workflow_details(self, workflow_id: str) -> str:
        """What the Web UI shows as the workflow's current details (the SDK's built-in
        metadata query, answered by the worker)."""
        handle = self.temporal.get_workflow_handle(workflow_id)
        meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        details: str = meta.current_details
        return details

    async def wait_order(
        self, user: User, order_id: str, done: Callable[[Json], bool], what: str
    ) -> Json:
        return await eventually(lambda: self.order(user, order_id), done, what=what)

    async def wait_events(
        self, user: User, order_id: str, done: Callable[[list[Json]], bool], what: str
    ) -> list[Json]:
        return await eventually(lambda: self.events(user, order_id), done, what=what)

    # ---- the payment sandbox --------------------------------------------------------------

    async def gateway(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the sandbox gateway as our backend does (API key), or its public pay page."""
        headers = {"Authorization": f"Bearer {self.settings.gateway_api_key}"}
        return await self.http.request(
            method, f"{self.gateway_url}{path}", headers=headers, **kwargs
        )

    # ---- partner callbacks ------------------------------------------------------------------

    async def carrier_event(self, package: Json, event: str) -> httpx.Response:
        """The carrier's signed callback about a shipped package."""
        return await send_carrier_event(
            f"{self.base_url}/webhooks/carriers",
            self.settings.carrier_webhook_secret,
            carrier=package["carrier"],
            tracking_no=package["tracking_no"],
            event=event,
        )

    async def supplier_callback(
        self,
        package_id: str,
        state: str,
        *,
        supplier_order_id: str = "ko_e2e",
        event_id: str | None = None,
        secret: str | None = None,
        at: datetime | None = None,
    ) -> httpx.Response:
        """A signed supplier callback as the supplier would send it (default: our secret,
        now)."""
        payload = {
            "event_id": event_id or uid("evt"),
            "supplier_order_id": supplier_order_id,
            "package_id": package_id,
            "state": state,
            "at": (at or datetime.now(UTC)).isoformat(),
        }
        return await post_signed(
            f"{self.base_url}/webhooks/suppliers/kepler",
            payload,
            self.settings.supplier_webhook_secret if secret is None else secret,
            client=self.http,
        )

    # ---- the supplier sandbox -------------------------------------------------------------

    async def supplier(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the supplier sandbox's API with our key (as the worker does)."""
        headers = {"Authorization": f"Bearer {self.settings.supplier_api_key}"}
        return await self.http.request(
            method, f"{self.supplier_url}{path}", headers=headers, **kwargs
        )

    async def supplier_orders(self, package_id: str) -> list[Json]:
        """The supplier's orders whose external reference is this package."""
        params = {"external_ref": package_id}
        data: list[Json] = ok(await self.supplier("GET", "/v1/orders", params=params))
        return data

    async def supplier_calls(self) -> list[Json]:
        data: list[Json] = ok(await self.supplier("GET", "/v1/_calls"))
        return data

    async def supplier_advance(self, supplier_order_id: str, state: str) -> Json:
        """Move the supplier's order on; the sandbox sends its signed callback to the API."""
        data: Json = ok(
            await self.supplier(
                "POST", f"/v1/orders/{supplier_order_id}/advance", json={"state": state}
            )
        )
        return data

    async def supplier_faults(self, **faults: object) -> Json:
        data: Json = ok(await self.supplier("POST", "/v1/_faults", json=faults))
        return data


def refunds_answered(order: dict[str, Any]) -> bool:
    """The order has refunds and the channel has answered each (none PENDING): refunds are
    made outside the order's lock and land a moment after the step that decided them."""
    return bool(order["refunds"]) and all(r["status"] != "PENDING" for r in order["refunds"])
