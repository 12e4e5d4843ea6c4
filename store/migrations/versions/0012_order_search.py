"""order search: each order's SKUs (" A B ") for `q`, an index on tracking numbers, and
indexes for sorting by total and by payment time.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("skus", sa.Text(), nullable=False, server_default=""))
    op.create_index("ix_orders_total", "orders", ["total_cents", "id"])
    op.create_index("ix_orders_paid", "orders", ["paid_at", "id"])
    op.create_index("ix_package_index_tracking_no", "package_index", ["tracking_no"])
    # the orders placed before: their SKUs from their snapshots, a thousand at a time
    orders = sa.table(
        "orders", sa.column("id", sa.String), sa.column("snapshot", sa.JSON), sa.column("skus")
    )
    conn = op.get_bind()
    after = ""
    while True:
        rows = conn.execute(
            sa.select(orders.c.id, orders.c.snapshot)
            .where(orders.c.id > after)
            .order_by(orders.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        for order_id, snapshot in rows:
            skus = sorted({line["sku"] for line in (snapshot or {}).get("lines", [])})
            conn.execute(
                orders.update()
                .where(orders.c.id == order_id)
                .values(skus="".join(f" {s}" for s in skus) + " ")
            )
        after = rows[-1][0]


def downgrade() -> None:
    op.drop_index("ix_package_index_tracking_no", "package_index")
    op.drop_index("ix_orders_paid", "orders")
    op.drop_index("ix_orders_total", "orders")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("skus")
