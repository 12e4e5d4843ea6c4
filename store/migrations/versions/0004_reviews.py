"""verified reviews, one per order and SKU

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from store.tables import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(length=140), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("buyer_id", sa.String(length=64), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(length=2000), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="review_rating_range"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "sku", name="uq_review_order_sku"),
    )
    op.create_index("ix_reviews_sku_created", "reviews", ["sku", "created_at", "id"])


def downgrade() -> None:
    op.drop_table("reviews")
