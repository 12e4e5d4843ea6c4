"""the public edge: each case's evidence images (a buyer's quota, and their purge), and the
console's server-side sessions

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from store.tables import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "case_images",
        sa.Column("case_id", sa.String(length=64), primary_key=True),
        sa.Column("sha256", sa.String(length=64), primary_key=True),
        sa.Column("buyer_id", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("stored_at", UTCDateTime(), nullable=False),
        sa.Column("purged_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_case_images_buyer", "case_images", ["buyer_id", "purged_at"])
    op.create_index("ix_case_images_sha256", "case_images", ["sha256"])
    # images of cases opened before this revision: recorded, so they count and can be purged
    op.execute(
        "INSERT INTO case_images (case_id, sha256, buyer_id, size_bytes, stored_at) "
        "SELECT DISTINCT c.id, j.value, c.buyer_id, 0, c.created_at "
        + (
            "FROM after_sales_cases c, json_each(c.snapshot, '$.images') j"
            if op.get_bind().dialect.name == "sqlite"
            else "FROM after_sales_cases c, json_array_elements_text(c.snapshot -> 'images') j"
        )
    )
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_console_sessions_user_id", "console_sessions", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_user_id", "console_sessions")
    op.drop_table("console_sessions")
    op.drop_index("ix_case_images_sha256", "case_images")
    op.drop_index("ix_case_images_buyer", "case_images")
    op.drop_table("case_images")
