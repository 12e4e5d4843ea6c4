"""exchange: units taken off hand for a replacement, once per (order, reference, SKU,
location).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-11 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stock_takes",
        sa.Column("order_id", sa.String(length=64), primary_key=True),
        sa.Column("ref", sa.String(length=80), primary_key=True),
        sa.Column("sku", sa.String(length=64), primary_key=True),
        sa.Column("location", sa.String(length=64), primary_key=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.CheckConstraint("quantity > 0", name="take_quantity_pos"),
    )


def downgrade() -> None:
    op.drop_table("stock_takes")
