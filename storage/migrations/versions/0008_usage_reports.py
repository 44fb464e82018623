"""Usage as providers report it: cache writes, estimated counts, the provider's raw report

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_events") as batch:
        batch.add_column(
            sa.Column("cache_write_tokens", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("estimated", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("usage_report", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("usage_report")
        batch.drop_column("estimated")
        batch.drop_column("cache_write_tokens")
