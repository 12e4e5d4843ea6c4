"""shops: every SKU, order, case and merchant console session belongs to one; the freight
rule becomes the shop's. Everything made before belongs to the shop `default`, which takes
over the platform's freight rule. Checkouts: one order per shop of a cart, placed together.
Carrier codes upper-case in the package index.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from store.tables import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shops",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("service_phone", sa.String(length=32), nullable=True),
        sa.Column("freight_flat_cents", sa.BigInteger(), nullable=True),
        sa.Column("freight_free_above_cents", sa.BigInteger(), nullable=True),
        sa.Column("freight_policy", sa.String(length=16), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.execute(
        "INSERT INTO shops (id, name, service_phone, freight_flat_cents,"
        " freight_free_above_cents, freight_policy, created_at) "
        "SELECT 'default', 'Default shop', NULL, r.flat_cents, r.free_above_cents, r.policy,"
        " CURRENT_TIMESTAMP FROM (SELECT 1 AS one) x"
        " LEFT JOIN freight_rule r ON r.id = 1"
    )
    op.drop_table("freight_rule")
    for table in ("skus", "orders", "after_sales_cases"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("shop_id", sa.String(length=32), nullable=False, server_default="default")
            )
    op.create_index("ix_skus_shop_id", "skus", ["shop_id"])
    op.create_index("ix_orders_shop_created", "orders", ["shop_id", "created_at", "id"])
    op.create_index("ix_cases_shop_created", "after_sales_cases", ["shop_id", "created_at", "id"])
    with op.batch_alter_table("console_sessions") as batch:
        batch.add_column(sa.Column("shop_id", sa.String(length=32), nullable=True))
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("checkout_id", sa.String(length=64), nullable=True))
    op.create_table(
        "checkouts",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("buyer_id", sa.String(length=64), nullable=False),
        sa.Column("order_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_checkouts_buyer_created", "checkouts", ["buyer_id", "created_at"])
    with op.batch_alter_table("payment_intents") as batch:
        batch.add_column(sa.Column("shares", sa.JSON(), nullable=True))
    # carrier codes are upper-case from now on, whatever case a ship or a callback used
    op.execute("UPDATE package_index SET carrier = UPPER(carrier) WHERE carrier IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("payment_intents") as batch:
        batch.drop_column("shares")
    op.drop_index("ix_checkouts_buyer_created", "checkouts")
    op.drop_table("checkouts")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("checkout_id")
    with op.batch_alter_table("console_sessions") as batch:
        batch.drop_column("shop_id")
    op.drop_index("ix_cases_shop_created", "after_sales_cases")
    op.drop_index("ix_orders_shop_created", "orders")
    op.drop_index("ix_skus_shop_id", "skus")
    for table in ("skus", "orders", "after_sales_cases"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("shop_id")
    op.create_table(
        "freight_rule",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("flat_cents", sa.BigInteger(), nullable=False),
        sa.Column("free_above_cents", sa.BigInteger(), nullable=True),
        sa.Column("policy", sa.String(length=16), nullable=False),
    )
    op.execute(
        "INSERT INTO freight_rule (id, flat_cents, free_above_cents, policy) "
        "SELECT 1, freight_flat_cents, freight_free_above_cents, freight_policy FROM shops "
        "WHERE id = 'default' AND freight_flat_cents IS NOT NULL"
    )
    op.drop_table("shops")
