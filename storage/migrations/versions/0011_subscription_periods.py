"""Subscriptions the tenant manages: the paid period's end and a cancellation at that end

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column(
                "cancel_at_period_end", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("cancel_at_period_end")
        batch.drop_column("current_period_end")
