"""Buyers and a merchant driving orders through their lifecycles over HTTP, as real clients
do: every call retried through refused connections and 503s with the same Idempotency-Key,
and an action that an earlier, unanswered attempt may have done checked against the order.
"""

import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from api.auth import Role, mint
from runtime.settings import DEV_SECRETS

Json = dict[str, Any]
RETRYABLE = {502, 503, 504}
TOP_UP_CENTS = 10_000_000
FAR_PRICE_CENTS = 1_500


class Kind(StrEnum):
    """What a lifecycle does, and so where its order must end up."""

    COMPLETED = "COMPLETED"  # paid from the wallet, shipped, received
    GATEWAY = "GATEWAY"  # paid on the sandbox's pay page: its callback must land
    CANCELLED = "CANCELLED"  # paid from the wallet, then cancelled: the money comes back
    UNPAID = "UNPAID"  # placed only: its stock stays locked
    # paid on the pay page, one of its two packages refunded through the gateway before it
    # ships, the other shipped and received
    PART_REFUNDED = "PART_REFUNDED"

    @property
    def status(self) -> str:
        return {
            Kind.COMPLETED: "COMPLETED",
            Kind.GATEWAY: "PENDING_SHIPMENT",
            Kind.CANCELLED: "CLOSED",
            Kind.UNPAID: "PENDING_PAYMENT",
            Kind.PART_REFUNDED: "COMPLETED",
        }[self]


@dataclass
class Hold:
    """Gateway payments held until a fault (of this name) begins, so that their callbacks
    meet it."""

    fault: str
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    held: int = 0
    capacity: int = 3
    first_answers: list[int] = field(default_factory=list)  # the webhook's, at the gateway


@dataclass
class Answer:
    """One HTTP attempt of a client: when it began (monotonic), how long it waited, and the
    status (0: no answer, the connection failed)."""

    began: float
    waited: float
    status: int
    call: str = ""  # the method and the path's last part: "POST ship", "GET <order id>"


def spread(waits: list[float]) -> str:
    """p50 · p99 · max of some waits, in seconds."""
    if not waits:
        return "no calls"
    p99 = statistics.quantiles(waits, n=100, method="inclusive")[98] if len(waits) > 1 else waits[0]
    return f"p50 {statistics.median(waits):.2f} s · p99 {p99:.2f} s · max {max(waits):.2f} s"


@dataclass
class Placed:
    kind: Kind
    buyer: str
    order_id: str
    total_cents: int
    lines: list[tuple[str, int]]


@dataclass
class Driver:
    api: httpx.AsyncClient
    gateway: httpx.AsyncClient
    skus: list[str]
    patience: float = 240.0  # how long a client keeps retrying one call
    placed: list[Placed] = field(default_factory=list)
    retries: int = 0  # calls that needed more than one attempt
    in_flight: int = 0  # lifecycles under way
    # the first few gateway payments wait for a fault (in order): their callbacks meet it
    holds: list[Hold] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)  # every attempt of every call
    secret: str = DEV_SECRETS["jwt_secret"]
    far_sku: str = ""  # stocked at WH-B only: an order with it and another SKU has 2 packages

    def release(self, fault: str) -> None:
        """The payments held for `fault` are made now."""
        for hold in self.holds:
            if hold.fault == fault:
                hold.gate.set()

    def held(self, *faults: str) -> int:
        return sum(h.held for h in self.holds if h.fault in faults)

    async def _hold(self) -> Hold | None:
        hold = next((h for h in self.holds if h.held < h.capacity and not h.gate.is_set()), None)
        if hold is not None:
            hold.held += 1
            await hold.gate.wait()
        return hold

    def token(self, sub: str, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint(self.secret, sub, role, 86_400)}"}

    async def call(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Json | None = None,
        *,
        done: Callable[[Json], bool] | None = None,
        order_id: str = "",
        behind: str = "",
    ) -> Json:
        """One call until it is answered; a 409 after an unanswered attempt is success if
        the order shows that attempt landed (`done`). A 409 saying `behind` is asked again:
        the workflow, its worker just killed, has not yet replayed up to what the database
        already shows (a local activity's write survives its workflow task)."""
        deadline = time.monotonic() + self.patience
        attempt = 0
        while True:
            attempt += 1
            answer: httpx.Response | None
            began = time.monotonic()
            try:
                answer = await self.api.request(method, path, json=body, headers=headers)
            except httpx.TransportError:
                answer = None
            status = answer.status_code if answer is not None else 0
            call = f"{method} {path.rsplit('/', 1)[-1]}"
            self.answers.append(Answer(began, time.monotonic() - began, status, call))
            if answer is not None:
                if answer.status_code < 300:
                    self.retries += attempt > 1
                    data: Json = answer.json()
                    return data
                if answer.status_code == 409 and attempt > 1 and done is not None:
                    order = await self.call("GET", f"/orders/{order_id}", headers)
                    if done(order):
                        self.retries += 1
                        return order
                if answer.status_code == 409 and behind and behind in answer.text:
                    self.retries += 1
                elif answer.status_code not in RETRYABLE:
                    raise AssertionError(f"{method} {path}: {answer.status_code} {answer.text}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{method} {path} unanswered for {self.patience} s")
            await asyncio.sleep(min(0.05 * 2**attempt, 2.0) * random.uniform(0.5, 1.0))

    async def setup(self, merchant: dict[str, str], stock: int) -> None:
        await self.call(
            "PUT",
            "/freight-rule",
            merchant,
            {"flat_cents": 500, "free_above_cents": None, "policy": "ONE_PACKAGE"},
        )
        for i, sku in enumerate(self.skus):
            policy = "DEDUCT_ON_PAYMENT" if i == 0 else "LOCK_ON_ORDER"
            await self.call(
                "PUT",
                f"/skus/{sku}",
                merchant,
                {
                    "title": sku,
                    "price_cents": 1000 + 100 * i,
                    "product_type": "SELF",
                    "stock_policy": policy,
                },
            )
            await self.call("PUT", f"/skus/{sku}/stock/WH-A", merchant, {"on_hand": stock})
        self.far_sku = f"{self.skus[0].rsplit('-', 1)[0]}-far"
        await self.call(
            "PUT",
            f"/skus/{self.far_sku}",
            merchant,
            {
                "title": self.far_sku,
                "price_cents": FAR_PRICE_CENTS,
                "product_type": "SELF",
                "stock_policy": "LOCK_ON_ORDER",
            },
        )
        await self.call("PUT", f"/skus/{self.far_sku}/stock/WH-B", merchant, {"on_hand": stock})

    async def gateway_faults(self, **faults: int) -> None:
        """The sandbox gateway's fault switch (its own API key)."""
        key = DEV_SECRETS["gateway_api_key"]
        answer = await self.gateway.post(
            "/v1/_faults", json=faults, headers={"Authorization": f"Bearer {key}"}
        )
        assert answer.status_code == 200, answer.text

    async def lifecycle(self, kind: Kind, admin: dict[str, str], merchant: dict[str, str]) -> None:
        self.in_flight += 1
        try:
            await self._lifecycle(kind, admin, merchant)
        finally:
            self.in_flight -= 1

    async def _lifecycle(self, kind: Kind, admin: dict[str, str], merchant: dict[str, str]) -> None:
        buyer_id = f"chaos-{uuid.uuid4().hex[:10]}"
        buyer = self.token(buyer_id, Role.BUYER)
        lines = [(sku, random.randint(1, 3)) for sku in random.sample(self.skus, 2)]
        if kind is Kind.PART_REFUNDED:
            lines = [(self.skus[1], 1), (self.far_sku, 1)]
        if kind not in (Kind.GATEWAY, Kind.PART_REFUNDED):
            await self.call(
                "POST",
                f"/wallets/{buyer_id}/top-up",
                admin | {"Idempotency-Key": f"{buyer_id}-top-up"},
                {"amount_cents": TOP_UP_CENTS},
            )
        order = await self.call(
            "POST",
            "/orders",
            buyer | {"Idempotency-Key": f"{buyer_id}-order"},
            {
                "lines": [{"sku": s, "quantity": q} for s, q in lines],
                "address": {
                    "name": "Chaos",
                    "phone": "13800000000",
                    "line1": "1 Fault Road",
                    "city": "Shanghai",
                    "country": "CN",
                },
            },
        )
        oid = order["id"]
        self.placed.append(Placed(kind, buyer_id, oid, order["total_cents"], lines))
        path = f"/orders/{oid}"
        if kind is Kind.UNPAID:
            return
        if kind is Kind.GATEWAY:
            intent = await self.call(
                "POST", f"{path}/payment-intents", buyer, {"channel": "alipay"}
            )
            hold = await self._hold()
            paid = await self.gateway.post(intent["pay_url"])  # the gateway is not faulted
            assert paid.status_code == 200, paid.text
            if hold is not None:
                hold.first_answers.append(paid.json()["status_code"])
            return
        if kind is Kind.PART_REFUNDED:
            await self._part_refunded(path, buyer, merchant)
            return
        paid_ = await self.call(
            "POST",
            f"{path}/pay",
            buyer,
            {"channel": "balance"},
            done=lambda o: o["payment"] is not None,
            order_id=oid,
        )
        if kind is Kind.CANCELLED:
            await self.call(
                "POST",
                f"{path}/cancel",
                buyer,
                {"reason": "changed my mind"},
                done=lambda o: o["status"] == "CLOSED",
                order_id=oid,
            )
            return
        package = paid_["packages"][0]["id"]
        await self.call(
            "POST",
            f"{path}/packages/{package}/ship",
            merchant,
            {"carrier": "SF", "tracking_no": f"SF{uuid.uuid4().hex[:12]}"},
            done=lambda o: o["packages"][0]["shipped_at"] is not None,
            order_id=oid,
        )
        await self.call(
            "POST",
            f"{path}/confirm-receipt",
            buyer,
            {},
            done=lambda o: o["status"] == "COMPLETED",
            order_id=oid,
        )

    async def _part_refunded(
        self, path: str, buyer: dict[str, str], merchant: dict[str, str]
    ) -> None:
        """Paid on the pay page; the far line refunded (through the gateway) before it ships;
        the other package shipped and received meanwhile, whatever the gateway does."""
        intent = await self.call("POST", f"{path}/payment-intents", buyer, {"channel": "alipay"})
        paid = await self.gateway.post(intent["pay_url"])
        assert paid.status_code == 200, paid.text
        order = await self.call("GET", path, buyer)
        while order["payment"] is None:  # the callback is on its way (bounded by patience)
            await asyncio.sleep(0.2)
            order = await self.call("GET", path, buyer)
        request = await self.call(
            "POST",
            f"{path}/refunds",
            buyer | {"Idempotency-Key": f"{order['id']}-refund"},
            {"lines": [{"sku": self.far_sku, "quantity": 1}], "reason": "changed my mind"},
            behind="order is PENDING_PAYMENT",  # the payment is in the database already
        )
        await self.call(
            "POST",
            f"{path}/refunds/{request['id']}/agree",
            merchant,
            {},
            done=lambda o: o["refund_requests"][0]["status"] != "REQUESTED",
            order_id=order["id"],
        )
        near = next(p for p in order["packages"] if p["location"] == "WH-A")["id"]
        await self.call(
            "POST",
            f"{path}/packages/{near}/ship",
            merchant,
            {"carrier": "SF", "tracking_no": f"SF{uuid.uuid4().hex[:12]}"},
            done=lambda o: any(p["shipped_at"] for p in o["packages"]),
            order_id=order["id"],
        )
        await self.call(
            "POST",
            f"{path}/confirm-receipt",
            buyer,
            {},
            done=lambda o: o["status"] == "COMPLETED",
            order_id=order["id"],
        )
