"""what no captured payment may be lost for: the payment intents opened for each order (closed
or found paid before an unpaid order ends), and callbacks that reused an event id with
another payload

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from store.tables import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payment_intents",
        sa.Column("intent_id", sa.String(length=128), primary_key=True),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_payment_intents_order_id", "payment_intents", ["order_id"])
    op.create_table(
        "webhook_event_conflicts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("source", "event_id", "payload_sha256", name="uq_webhook_conflict"),
    )
    op.create_index(
        "ix_webhook_event_conflicts_received_at", "webhook_event_conflicts", ["received_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_event_conflicts_received_at", "webhook_event_conflicts")
    op.drop_table("webhook_event_conflicts")
    op.drop_index("ix_payment_intents_order_id", "payment_intents")
    op.drop_table("payment_intents")
