"""The data that crosses boundaries: catalog, orders, packages, payments, refunds.

Money is integer cents; times are timezone-aware UTC datetimes.
"""

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_serializer,
)

Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
ShopId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
DEFAULT_SHOP = "default"  # the shop that holds everything made before shops
Location = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
MAX_LINE_QUANTITY = 999
MAX_LINES = 50
MAX_AMOUNT_CENTS = 10**12  # no amount that enters may be larger (SPEC §10)


class ProductType(StrEnum):
    SELF = "SELF"  # self-operated, shipped from our own warehouse
    KEPLER = "KEPLER"  # bought from a Kepler-style supplier API after payment
    DROPSHIP = "DROPSHIP"  # the vendor ships
    VIRTUAL = "VIRTUAL"  # no logistics


class StockPolicy(StrEnum):
    LOCK_ON_ORDER = "LOCK_ON_ORDER"  # JD 下单锁库存
    DEDUCT_ON_PAYMENT = "DEDUCT_ON_PAYMENT"  # Tmall 付款减库存


SANE_YEARS = range(1970, 9999)  # any real time falls in these; each converts to UTC safely


def sane_time(at: datetime) -> datetime:
    """A time from outside (a partner, a filter) in UTC, or ValueError."""
    if at.tzinfo is None:
        raise ValueError("give a zone (Z or +08:00)")
    if at.year not in SANE_YEARS:
        raise ValueError(f"a time from {SANE_YEARS[0]} to {SANE_YEARS[-1]}")
    return at.astimezone(UTC)


Instant = Annotated[AwareDatetime, AfterValidator(sane_time)]  # a time a partner sends
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339(raw: object) -> object:
    """A time given as text must be written as one (a number is not a Unix time here)."""
    if isinstance(raw, str) and not RFC3339.match(raw):
        raise ValueError("an RFC 3339 time with a zone, e.g. 2026-11-30T08:00:00+08:00")
    return raw


# a time in a query string, written as RFC 3339 text (its zone and years are checked where it
# is read, naming the parameter)
QueryTime = Annotated[datetime, BeforeValidator(_rfc3339)]


def printable(text: str) -> str:
    """Text people type, without NUL or other control characters (PostgreSQL cannot hold a
    NUL; the others only hide what a text says)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError("no NUL or control characters")
    return text


Text = Annotated[str, AfterValidator(printable)]
Cents = Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT_CENTS)]  # `false` or "100" is not money


def money(cents: int) -> str:
    """Integer cents as yuan, as people read it: ¥1,234.50."""
    sign = "-" if cents < 0 else ""
    return f"{sign}¥{abs(cents) // 100:,}.{abs(cents) % 100:02d}"


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"  # 待付款: placed, not paid
    PENDING_SHIPMENT = "PENDING_SHIPMENT"  # 待发货: paid, not every live package shipped
    SHIPPED = "SHIPPED"  # 已发货: every live package shipped
    COMPLETED = "COMPLETED"  # 已完成: every live package received
    CLOSED = "CLOSED"  # 已关闭: ended without completing; see close_reason


class SubStatus(StrEnum):
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"  # 部分发货
    REFUNDING = "REFUNDING"  # 退款中
    AWAITING_REVIEW = "AWAITING_REVIEW"  # 待评价


class CloseReason(StrEnum):
    PAYMENT_TIMEOUT = "PAYMENT_TIMEOUT"
    BUYER_CANCELLED = "BUYER_CANCELLED"
    SELLER_CLOSED = "SELLER_CLOSED"
    OUT_OF_STOCK_AT_PAYMENT = "OUT_OF_STOCK_AT_PAYMENT"
    FULLY_REFUNDED = "FULLY_REFUNDED"
    PLACEMENT_REJECTED = "PLACEMENT_REJECTED"
    OPERATOR_CANCELLED = "OPERATOR_CANCELLED"  # "Request Cancellation" in the Temporal Web UI
    WORKFLOW_LOST = "WORKFLOW_LOST"  # reconciliation found its workflow terminated or gone


class PackageStatus(StrEnum):
    PENDING = "PENDING"
    AWAITING_SUPPLIER = "AWAITING_SUPPLIER"
    PURCHASED = "PURCHASED"
    SHIPPED = "SHIPPED"  # 待收货
    DELIVERED = "DELIVERED"  # carrier sign-off, before the buyer's receipt
    RECEIVED = "RECEIVED"  # 已收货
    REJECTED = "REJECTED"  # 已拒收
    CANCELLED = "CANCELLED"  # intercepted and refunded


class PaymentChannel(StrEnum):
    BALANCE = "balance"
    CREDIT = "credit"  # 额度
    ALIPAY = "alipay"
    WECHAT = "wechat"


WALLET_CHANNELS = frozenset({PaymentChannel.BALANCE, PaymentChannel.CREDIT})
GATEWAY_CHANNELS = frozenset({PaymentChannel.ALIPAY, PaymentChannel.WECHAT})


class FreightPolicy(StrEnum):
    ONE_PACKAGE = "ONE_PACKAGE"  # Dangdang: all freight on one package
    SPLIT = "SPLIT"  # pro-rata to goods value, whole cents


class Reason(StrEnum):
    """Why a line of a reorder cannot be bought (in full) now."""

    UNKNOWN_SKU = "UNKNOWN_SKU"
    DELISTED = "DELISTED"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    OUT_OF_STOCK = "OUT_OF_STOCK"


class Unavailable(BaseModel):
    """A line that cannot be bought in full: `placed` units of `requested` were (0: none)."""

    sku: str
    reason: Reason
    requested: int
    placed: int = 0


class ActorKind(StrEnum):
    BUYER = "buyer"
    MERCHANT = "merchant"
    ADMIN = "admin"
    PLATFORM = "platform"  # a member of staff as a buyer is shown them
    OPERATOR = "operator"  # in the Temporal Web UI
    SYSTEM = "system"  # the order's own timers, reconciliation
    GATEWAY = "gateway"
    CARRIER = "carrier"
    SUPPLIER = "supplier"


class Actor(BaseModel):
    """Who caused a transition: a user, a partner, or the order's own timer; a merchant
    with the shop it acts for."""

    model_config = ConfigDict(frozen=True)
    kind: ActorKind
    id: str = ""
    shop: str | None = None  # a merchant's; left out of the JSON when there is none

    @model_serializer(mode="wrap")
    def _without_no_shop(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("shop") is None:
            data.pop("shop", None)
        return data

    def may_see(self, buyer_id: str, shop_id: str) -> bool:
        """A buyer sees their own orders and cases, a merchant its shop's (a merchant's token
        without a shop acts for `default`), everyone else all."""
        if self.kind is ActorKind.BUYER:
            return self.id == buyer_id
        if self.kind is ActorKind.MERCHANT:
            return (self.shop or DEFAULT_SHOP) == shop_id
        return True


SYSTEM = Actor(kind="system", id="timer")
OPERATOR_UI = Actor(kind="operator", id="temporal-web-ui")
RECONCILER = Actor(kind="system", id="reconciler")
# who a buyer is shown for a member of staff: the role, never the person's id
STAFF_AS_SEEN_BY_BUYERS = {"merchant": "merchant", "admin": "platform", "operator": "platform"}


def as_seen_by_buyers(actor: Actor) -> Actor:
    role = STAFF_AS_SEEN_BY_BUYERS.get(actor.kind)
    return Actor(kind=role, id=role) if role else actor


class FreightRule(BaseModel):
    flat_cents: StrictInt = Field(0, ge=0, le=10_000_000)
    free_above_cents: Cents | None = None
    policy: FreightPolicy = FreightPolicy.ONE_PACKAGE


class Shop(BaseModel):
    """A storefront of the platform (多商户): its SKUs, orders and cases are its own."""

    id: ShopId
    name: Text = Field(min_length=1, max_length=100)
    service_phone: str = Field(min_length=3, max_length=32, pattern=r"^\+?[0-9 -]+$")


class SkuInfo(BaseModel):
    sku: Sku
    shop_id: ShopId = DEFAULT_SHOP  # fixed when the SKU is first made
    title: Text = Field(min_length=1, max_length=200)
    price_cents: StrictInt = Field(ge=0, le=100_000_000)
    product_type: ProductType
    stock_policy: StockPolicy
    limit_per_buyer: StrictInt | None = Field(None, ge=1, le=MAX_LINE_QUANTITY)
    limit_window_days: StrictInt | None = Field(None, ge=1, le=3650)
    payment_window_minutes: StrictInt | None = Field(None, ge=1, le=24 * 60)
    listed: StrictBool = True


class Address(BaseModel):
    name: Text = Field(min_length=1, max_length=100)
    phone: str = Field(min_length=3, max_length=32, pattern=r"^\+?[0-9 -]+$")
    line1: Text = Field(min_length=1, max_length=300)
    city: Text = Field(min_length=1, max_length=100)
    country: str = Field(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")


class LineRequest(BaseModel):
    sku: Sku
    quantity: StrictInt = Field(ge=1, le=MAX_LINE_QUANTITY)  # `true` or "1" is not a number


class OrderLine(BaseModel):
    sku: str
    title: str
    product_type: ProductType
    stock_policy: StockPolicy
    quantity: int
    unit_price_cents: int
    refunded_quantity: int = 0


class Allocation(BaseModel):
    """Units of one SKU taken from one location (a lock, or a deduction)."""

    model_config = ConfigDict(frozen=True)
    sku: str
    location: str
    quantity: int


class PackageLine(BaseModel):
    sku: str
    quantity: int
    refunded_quantity: int = 0  # after shipment: units refunded by an after-sales case


class Package(BaseModel):
    id: str
    location: str
    product_type: ProductType
    status: PackageStatus = PackageStatus.PENDING
    lines: list[PackageLine]
    goods_cents: int
    freight_cents: int = 0
    carrier: str | None = None
    tracking_no: str | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    received_at: datetime | None = None
    auto_confirm_at: datetime | None = None
    purchase_at: datetime | None = None  # KEPLER: bought from the supplier when the window ends
    supplier_order_id: str | None = None
    rejected_at: datetime | None = None
    cancelled_at: datetime | None = None
    restocked: bool = False  # rejected goods back on hand at their location
    replacement_for: str | None = None  # an exchange's replacement: the case it ships for


class Payment(BaseModel):
    channel: PaymentChannel
    txn_id: str
    amount_cents: int
    paid_at: datetime


class RefundStatus(StrEnum):
    PENDING = "PENDING"  # decided and recorded; the channel has not answered yet
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # the channel refused for good (`failure` says why): an admin retries


class Refund(BaseModel):
    id: str
    txn_id: str
    channel: PaymentChannel
    amount_cents: int
    goods_cents: int = 0
    freight_cents: int = 0
    borne_by: str = "merchant"  # who bears the goods part: merchant | platform
    freight_borne_by: str = "merchant"  # who bears the freight part
    package_id: str | None = None
    reason: str
    status: RefundStatus = RefundStatus.SUCCEEDED
    failure: str | None = None  # the channel's reason, when it refused for good
    created_at: datetime


class OrderTimings(BaseModel):
    """Durations in seconds, fixed per order when it starts (SPEC §11)."""

    payment_window_seconds: int = 86_400
    supplier_cancel_window_seconds: int = 1_800
    auto_confirm_seconds: int = 864_000
    receipt_extension_seconds: int = 259_200
    after_sales_window_seconds: int = 1_296_000
    refund_response_seconds: int = 172_800  # merchant answers a refund or a case (and the
    # buyer a proposal) within this
    return_ship_seconds: int = 604_800  # buyer ships a return
    return_receive_seconds: int = 864_000  # merchant confirms the return arrived
    escalate_seconds: int = 604_800  # buyer may escalate a refusal
    reship_seconds: int = 172_800  # an exchange: merchant ships the replacement (else refund)


class RefundRequestStatus(StrEnum):
    REQUESTED = "REQUESTED"  # waiting for the merchant (agreed automatically at respond_by)
    REFUSED = "REFUSED"
    REFUNDED = "REFUNDED"  # lines left their packages, stock and money went back
    FAILED = "FAILED"  # agreed, but the channel refused the money back: an admin retries


class Take(BaseModel):
    """Units of one SKU a refund takes from one package."""

    model_config = ConfigDict(frozen=True)
    package_id: str
    sku: str
    quantity: int


class RefundRequest(BaseModel):
    """A refund of chosen lines before shipment (SPEC §6.1)."""

    id: str
    order_id: str
    lines: list[LineRequest]
    takes: list[Take]  # which package each unit leaves: those packages cannot ship meanwhile
    goods_cents: int
    freight_cents: int
    amount_cents: int
    status: RefundRequestStatus = RefundRequestStatus.REQUESTED
    respond_by: datetime
    reason: str = ""
    refuse_reason: str = ""
    refund_id: str | None = None
    created_at: datetime
    decided_at: datetime | None = None


class CaseType(StrEnum):
    REFUND_ONLY = "REFUND_ONLY"  # 仅退款: the buyer keeps the goods
    RETURN_AND_REFUND = "RETURN_AND_REFUND"  # 退货退款: the goods come back first
    EXCHANGE = "EXCHANGE"  # 换货: the goods come back, a replacement goes out; no money moves


class CaseClaim(BaseModel):
    """What the order knows of an after-sales case: the shipped units it holds."""

    id: str
    type: CaseType
    takes: list[Take]
    open: bool = True
    refund_id: str | None = None
    restocked: bool = False  # an exchange's returned units are back on hand


class OrderState(BaseModel):
    """The whole order: the workflow's state, the database snapshot and the API's view."""

    id: str
    buyer_id: str
    shop_id: str = DEFAULT_SHOP  # every order belongs to one shop; older ones to `default`
    checkout_id: str | None = None  # placed with other shops' orders in one checkout
    status: OrderStatus = OrderStatus.PENDING_PAYMENT
    sub_statuses: list[SubStatus] = []
    close_reason: CloseReason | None = None
    lines: list[OrderLine]
    address: Address
    goods_cents: int
    freight_cents: int
    total_cents: int
    paid_cents: int = 0
    refunded_cents: int = 0
    payment: Payment | None = None
    payment_deadline: datetime
    low_stock: bool = False
    freight_policy: FreightPolicy = FreightPolicy.ONE_PACKAGE
    allocations: list[Allocation] = []
    packages: list[Package] = []
    refunds: list[Refund] = []
    refund_requests: list[RefundRequest] = []
    cases: list[CaseClaim] = []
    receipt_extended: bool = False
    reorder_of: str | None = None  # bought again from this order (再次购买)
    unavailable: list[Unavailable] = []  # what of that order could not be bought again
    reviewed: bool = False
    completed_at: datetime | None = None
    closed_at: datetime | None = None
    timings: OrderTimings = OrderTimings()
    version: int = 1
    created_at: datetime
    updated_at: datetime


class EventType(StrEnum):
    """What an order's event log says happened (its rows and the API carry these names)."""

    PLACED = "PLACED"
    PAID = "PAID"
    SUPPLIER_PURCHASED = "SUPPLIER_PURCHASED"
    PACKAGE_SHIPPED = "PACKAGE_SHIPPED"
    PACKAGE_DELIVERED = "PACKAGE_DELIVERED"
    PACKAGE_REJECTED = "PACKAGE_REJECTED"
    PACKAGES_CANCELLED = "PACKAGES_CANCELLED"
    RETURN_RECEIVED = "RETURN_RECEIVED"
    RECEIPT_CONFIRMED = "RECEIPT_CONFIRMED"
    RECEIPT_EXTENDED = "RECEIPT_EXTENDED"
    REVIEWED = "REVIEWED"
    CLOSED = "CLOSED"
    CANCEL_REFUSED = "CANCEL_REFUSED"
    REFUND_REQUESTED = "REFUND_REQUESTED"
    REFUND_REFUSED = "REFUND_REFUSED"
    REFUND_AGREED = "REFUND_AGREED"
    REFUNDED = "REFUNDED"
    REFUND_SUCCEEDED = "REFUND_SUCCEEDED"
    REFUND_FAILED = "REFUND_FAILED"
    REFUND_RETRIED = "REFUND_RETRIED"
    REFUND_WITHDRAWN = "REFUND_WITHDRAWN"
    CASE_OPENED = "CASE_OPENED"
    CASE_REFUNDED = "CASE_REFUNDED"
    CASE_CLOSED = "CASE_CLOSED"
    CASE_GOODS_RETURNED = "CASE_GOODS_RETURNED"  # an exchange's returned units back on hand
    REPLACEMENT_SHIPPED = "REPLACEMENT_SHIPPED"  # an exchange's replacement package went out
    CASE_EXCHANGED = "CASE_EXCHANGED"  # the buyer has the replacement: the case is over
    PAYMENT_ANOMALY = "PAYMENT_ANOMALY"  # another order's transaction: recorded, not applied
    LATE_PAYMENT_REFUNDED = "LATE_PAYMENT_REFUNDED"  # paid after the order's workflow ended
    LATE_PAYMENT_REFUND_FAILED = "LATE_PAYMENT_REFUND_FAILED"
    ORDER_ERROR = "ORDER_ERROR"  # a step the order could not take, for good


class OrderEvent(BaseModel):
    """One row of the order's event log: who did what, when, at which version."""

    order_id: str
    version: int
    type: EventType
    actor: Actor
    at: datetime
    data: dict[str, Any] = {}
