"""the callback inbox: webhook_events keeps each callback until it reaches its workflow

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from store.tables import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    "order_id",
    "payload",
    "attempts",
    "next_attempt_at",
    "delivered_at",
    "outcome",
    "last_error",
)


def upgrade() -> None:
    with op.batch_alter_table("webhook_events") as batch:
        batch.add_column(sa.Column("order_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("payload", sa.Text(), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("next_attempt_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("delivered_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("outcome", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))
        batch.create_check_constraint("attempts_non_negative", "attempts >= 0")
        batch.create_index("ix_webhook_events_due", ["next_attempt_at"])
    # events received before the inbox were delivered while their sender waited
    op.execute("UPDATE webhook_events SET delivered_at = received_at, outcome = 'delivered'")


def downgrade() -> None:
    with op.batch_alter_table("webhook_events") as batch:
        batch.drop_index("ix_webhook_events_due")
        batch.drop_constraint("attempts_non_negative", type_="check")
        for column in COLUMNS:
            batch.drop_column(column)
