"""after-sales cases and refunded units back on hand

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 21:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from store.tables import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stock_returns",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("ref", sa.String(length=80), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.CheckConstraint("quantity > 0", name="return_quantity_pos"),
        sa.PrimaryKeyConstraint("order_id", "ref", "sku", "location"),
    )
    op.create_table(
        "after_sales_cases",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("buyer_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_after_sales_cases_order_id", "after_sales_cases", ["order_id"])
    op.create_index("ix_cases_buyer_created", "after_sales_cases", ["buyer_id", "created_at", "id"])
    op.create_index("ix_cases_status_created", "after_sales_cases", ["status", "created_at", "id"])
    op.create_index("ix_cases_created", "after_sales_cases", ["created_at", "id"])


def downgrade() -> None:
    op.drop_table("after_sales_cases")
    op.drop_table("stock_returns")
