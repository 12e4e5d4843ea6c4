"""what the core needs under faults: a failed refund's reason, an order's ORDER_ERROR flag,
the order a snapshot and its events were written in (workflow run start, then history
length), and event actor ids
as long as a supplier's order id

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 12:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("failure", sa.String(length=500), nullable=True))
    with op.batch_alter_table("orders") as batch:
        batch.add_column(
            sa.Column("order_error", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(
            sa.Column("write_seq", sa.BigInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("order_events") as batch:
        batch.add_column(
            sa.Column("write_seq", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.alter_column(
            "actor_id", existing_type=sa.String(length=64), type_=sa.String(length=128)
        )


def downgrade() -> None:
    with op.batch_alter_table("order_events") as batch:
        batch.alter_column(
            "actor_id", existing_type=sa.String(length=128), type_=sa.String(length=64)
        )
        batch.drop_column("write_seq")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("write_seq")
        batch.drop_column("order_error")
    with op.batch_alter_table("refunds") as batch:
        batch.drop_column("failure")
