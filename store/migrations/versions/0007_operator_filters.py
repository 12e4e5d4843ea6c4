"""what operators filter on: an order's sub-statuses, payment time, failed refund and open
cases; a case's deadline (the after-sales queue), filled in from the stored snapshots

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from domain.after_sales import AfterSalesCase
from domain.models import OrderState
from store.orders import facets
from store.tables import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(
            sa.Column("sub_statuses", sa.String(length=100), server_default="", nullable=False)
        )
        batch.add_column(sa.Column("paid_at", UTCDateTime(), nullable=True))
        batch.add_column(
            sa.Column("refund_failed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("open_cases", sa.Integer(), server_default="0", nullable=False))
        batch.create_index("ix_orders_status_paid", ["status", "paid_at"])
    with op.batch_alter_table("after_sales_cases") as batch:
        batch.add_column(sa.Column("deadline", UTCDateTime(), nullable=True))
        batch.create_index("ix_cases_status_deadline", ["status", "deadline"])
    _backfill()


def _backfill() -> None:
    conn = op.get_bind()
    orders = sa.table(
        "orders",
        sa.column("id", sa.String),
        sa.column("snapshot", sa.JSON),
        sa.column("sub_statuses", sa.String),
        sa.column("paid_at", UTCDateTime()),
        sa.column("refund_failed", sa.Boolean),
        sa.column("open_cases", sa.Integer),
    )
    last = ""
    while rows := conn.execute(
        sa.select(orders.c.id, orders.c.snapshot)
        .where(orders.c.id > last)
        .order_by(orders.c.id)
        .limit(BATCH)
    ).all():
        for order_id, snapshot in rows:
            values = facets(OrderState.model_validate(snapshot))
            conn.execute(orders.update().where(orders.c.id == order_id).values(**values))
        last = rows[-1][0]
    cases = sa.table(
        "after_sales_cases",
        sa.column("id", sa.String),
        sa.column("snapshot", sa.JSON),
        sa.column("deadline", UTCDateTime()),
    )
    for case_id, snapshot in conn.execute(sa.select(cases.c.id, cases.c.snapshot)).all():
        deadline = AfterSalesCase.model_validate(snapshot).deadline
        conn.execute(cases.update().where(cases.c.id == case_id).values(deadline=deadline))


def downgrade() -> None:
    with op.batch_alter_table("after_sales_cases") as batch:
        batch.drop_index("ix_cases_status_deadline")
        batch.drop_column("deadline")
    with op.batch_alter_table("orders") as batch:
        batch.drop_index("ix_orders_status_paid")
        for column in ("open_cases", "refund_failed", "paid_at", "sub_statuses"):
            batch.drop_column(column)
