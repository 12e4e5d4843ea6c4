"""Tables. Each CHECK is the last line of defence behind the code that keeps it true."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from domain.models import DEFAULT_SHOP


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, also on SQLite (which stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        when: datetime = value
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ShopRow(Base):
    """A storefront of the platform: its SKUs, orders and cases are its own; its freight rule
    lives here (no rule: free shipping, one package)."""

    __tablename__ = "shops"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    service_phone: Mapped[str | None] = mapped_column(String(32))  # default's: the setting's
    freight_flat_cents: Mapped[int | None] = mapped_column(BigInteger)
    freight_free_above_cents: Mapped[int | None] = mapped_column(BigInteger)
    freight_policy: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CheckoutRow(Base):
    """A cart across shops placed at once: one order per shop (拆单), all or none."""

    __tablename__ = "checkouts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    buyer_id: Mapped[str] = mapped_column(String(64))
    order_ids: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    __table_args__ = (Index("ix_checkouts_buyer_created", "buyer_id", "created_at"),)


class SkuRow(Base):
    __tablename__ = "skus"
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    shop_id: Mapped[str] = mapped_column(String(32), server_default=DEFAULT_SHOP, index=True)
    title: Mapped[str] = mapped_column(String(200))
    price_cents: Mapped[int] = mapped_column(BigInteger)
    product_type: Mapped[str] = mapped_column(String(16))
    stock_policy: Mapped[str] = mapped_column(String(32))
    limit_per_buyer: Mapped[int | None] = mapped_column(Integer)
    limit_window_days: Mapped[int | None] = mapped_column(Integer)
    payment_window_minutes: Mapped[int | None] = mapped_column(Integer)
    listed: Mapped[bool] = mapped_column(Boolean, default=True)
    __table_args__ = (CheckConstraint("price_cents >= 0", name="sku_price_nonneg"),)


class StockRow(Base):
    __tablename__ = "stock"
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    location: Mapped[str] = mapped_column(String(64), primary_key=True)
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    locked: Mapped[int] = mapped_column(Integer, default=0)
    __table_args__ = (
        CheckConstraint("locked >= 0", name="stock_locked_nonneg"),
        CheckConstraint("on_hand >= locked", name="stock_on_hand_covers_locked"),
    )


class StockHoldRow(Base):
    """Units an order holds at a location: HELD (locked), DEDUCTED, RELEASED or RESTORED."""

    __tablename__ = "stock_holds"
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    location: Mapped[str] = mapped_column(String(64), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    __table_args__ = (CheckConstraint("quantity > 0", name="hold_quantity_pos"),)


class PurchaseRecordRow(Base):
    """Units a buyer has bought of a SKU, counted by purchase limits while `active`."""

    __tablename__ = "purchase_records"
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    buyer_id: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    __table_args__ = (Index("ix_purchase_buyer_sku", "buyer_id", "sku", "created_at"),)


class LimitGuardRow(Base):
    """Locked FOR UPDATE so one buyer's simultaneous orders check a limit one at a time."""

    __tablename__ = "limit_guards"
    buyer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)


class WalletRow(Base):
    __tablename__ = "wallets"
    buyer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    balance_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    credit_limit_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    credit_used_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    __table_args__ = (
        CheckConstraint("balance_cents >= 0", name="wallet_balance_nonneg"),
        CheckConstraint("credit_used_cents >= 0", name="wallet_credit_used_nonneg"),
        CheckConstraint("credit_used_cents <= credit_limit_cents", name="wallet_credit_within"),
    )


class PaymentRow(Base):
    """Payments ledger: every payment ever received, kept or refunded."""

    __tablename__ = "payments"
    txn_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # CAPTURED | REFUNDED
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RefundRow(Base):
    """Refunds ledger: channel, amount, freight part and who bore it."""

    __tablename__ = "refunds"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    txn_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(16))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    goods_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    freight_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    borne_by: Mapped[str] = mapped_column(String(16))
    freight_borne_by: Mapped[str] = mapped_column(String(16), server_default="merchant")
    package_id: Mapped[str | None] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    failure: Mapped[str | None] = mapped_column(String(500))  # the channel's reason for FAILED
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    __table_args__ = (CheckConstraint("amount_cents > 0", name="refund_amount_pos"),)


class OrderRow(Base):
    """The latest snapshot of each order, for lists and reads long after Temporal forgets it."""

    __tablename__ = "orders"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    buyer_id: Mapped[str] = mapped_column(String(64))
    shop_id: Mapped[str] = mapped_column(String(32), server_default=DEFAULT_SHOP)
    checkout_id: Mapped[str | None] = mapped_column(String(64))  # placed with others
    skus: Mapped[str] = mapped_column(Text, server_default="")  # " A B ": its lines' SKUs
    status: Mapped[str] = mapped_column(String(32))
    close_reason: Mapped[str | None] = mapped_column(String(32))
    total_cents: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # what operators filter on (the console), copied from the snapshot when it is saved
    sub_statuses: Mapped[str] = mapped_column(String(100), server_default="")  # " A B "
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refund_failed: Mapped[bool] = mapped_column(Boolean, server_default=false())
    open_cases: Mapped[int] = mapped_column(Integer, server_default="0")
    order_error: Mapped[bool] = mapped_column(Boolean, server_default=false())  # ORDER_ERROR seen
    # when the workflow wrote this snapshot: (its run's start, its history length) as one
    # number; a later workflow task's write replaces an earlier, failed task's, never the reverse
    write_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    __table_args__ = (
        Index("ix_orders_buyer_created", "buyer_id", "created_at", "id"),
        Index("ix_orders_status_created", "status", "created_at", "id"),
        Index("ix_orders_created", "created_at", "id"),
        Index("ix_orders_status_paid", "status", "paid_at"),
        Index("ix_orders_shop_created", "shop_id", "created_at", "id"),
        Index("ix_orders_total", "total_cents", "id"),
        Index("ix_orders_paid", "paid_at", "id"),
    )


class OrderEventRow(Base):
    __tablename__ = "order_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64))
    event_key: Mapped[str] = mapped_column(String(160))  # makes a retried write a no-op
    version: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(48))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(128))  # a supplier order id is up to 128
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    write_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")  # as on orders
    __table_args__ = (UniqueConstraint("order_id", "event_key", name="uq_event_key"),)


class PackageIndexRow(Base):
    """Finds the order and package for a carrier's (carrier, tracking number)."""

    __tablename__ = "package_index"
    package_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    carrier: Mapped[str | None] = mapped_column(String(32))
    tracking_no: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(24))
    __table_args__ = (UniqueConstraint("carrier", "tracking_no", name="uq_tracking"),)


class WebhookEventRow(Base):
    """The callback inbox: one row per sender event, written before the sender is answered;
    the relay delivers it to its workflow until it lands (`next_attempt_at` is NULL once
    it has)."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_due", "next_attempt_at"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
    )
    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    order_id: Mapped[str | None] = mapped_column(String(64), default=None)
    payload: Mapped[str | None] = mapped_column(Text, default=None)  # the notice, as JSON
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)


class WebhookConflictRow(Base):
    """A callback whose `event_id` was already received with another payload: refused (409
    EVENT_ID_REUSED) and kept here for operators, once per distinct payload."""

    __tablename__ = "webhook_event_conflicts"
    __table_args__ = (
        UniqueConstraint("source", "event_id", "payload_sha256", name="uq_webhook_conflict"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(128))
    order_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    payload_sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class PaymentIntentRow(Base):
    """A payment intent opened at the gateway for an order: what is closed (or found paid)
    before an unpaid order ends."""

    __tablename__ = "payment_intents"
    intent_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)  # or a checkout's id
    channel: Mapped[str] = mapped_column(String(16))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    # a checkout's intent: each order's share of the amount, {order id: cents}
    shares: Mapped[dict[str, int] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class _UnitsOnce:
    """Units moved for an order under a reference, one row per (order, reference, SKU,
    location), so a retried write moves them once."""

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ref: Mapped[str] = mapped_column(String(80), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    location: Mapped[str] = mapped_column(String(64), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)


class StockReturnRow(_UnitsOnce, Base):
    """Refunded units put back on hand (a refund request, a case)."""

    __tablename__ = "stock_returns"
    __table_args__ = (CheckConstraint("quantity > 0", name="return_quantity_pos"),)


class StockTakeRow(_UnitsOnce, Base):
    """Units taken off hand beyond what the order bought (an exchange's replacement)."""

    __tablename__ = "stock_takes"
    __table_args__ = (CheckConstraint("quantity > 0", name="take_quantity_pos"),)


class CaseRow(Base):
    """The latest snapshot of each after-sales case (its timeline included), for lists."""

    __tablename__ = "after_sales_cases"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    buyer_id: Mapped[str] = mapped_column(String(64))
    shop_id: Mapped[str] = mapped_column(String(32), server_default=DEFAULT_SHOP)
    status: Mapped[str] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the after-sales queue's order
    __table_args__ = (
        Index("ix_cases_status_deadline", "status", "deadline"),
        Index("ix_cases_buyer_created", "buyer_id", "created_at", "id"),
        Index("ix_cases_status_created", "status", "created_at", "id"),
        Index("ix_cases_created", "created_at", "id"),
        Index("ix_cases_shop_created", "shop_id", "created_at", "id"),
    )


class ReviewRow(Base):
    """A verified review: one per (order, SKU), written with the order's REVIEWED event."""

    __tablename__ = "reviews"
    id: Mapped[str] = mapped_column(String(140), primary_key=True)  # "<order id>:<sku>"
    order_id: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(String(64))
    buyer_id: Mapped[str] = mapped_column(String(64))
    rating: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    __table_args__ = (
        UniqueConstraint("order_id", "sku", name="uq_review_order_sku"),
        CheckConstraint("rating BETWEEN 1 AND 5", name="review_rating_range"),
        Index("ix_reviews_sku_created", "sku", "created_at", "id"),
    )


class TopUpRow(Base):
    """A top-up made under an Idempotency-Key: the same key again credits nothing more."""

    __tablename__ = "wallet_top_ups"
    buyer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CaseImageRow(Base):
    """An evidence image as one case holds it: what counts against its buyer's quota until
    the image is purged (the blob itself is shared by every case that holds the same bytes)."""

    __tablename__ = "case_images"
    case_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    buyer_id: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    __table_args__ = (
        Index("ix_case_images_buyer", "buyer_id", "purged_at"),
        Index("ix_case_images_sha256", "sha256"),
    )


class ConsoleSessionRow(Base):
    """A console sign-in: the cookie holds an opaque token, this row its sha256. Signing out
    or an admin's revocation ends it; so do idleness and its token's own expiry."""

    __tablename__ = "console_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    role: Mapped[str] = mapped_column(String(16))
    shop_id: Mapped[str | None] = mapped_column(String(32))  # a merchant's
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the signing-in token's expiry
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
