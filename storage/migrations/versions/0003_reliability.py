"""Claims with a state and a lease, per-tenant library numbers, overdraft tokens

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 13:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("processed_updates") as batch:
        batch.add_column(
            sa.Column("state", sa.String(length=16), nullable=False, server_default="done")
        )
        batch.add_column(sa.Column("holder", sa.String(length=120), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", _DATETIME, nullable=True))
        batch.add_column(sa.Column("reply_to", sa.JSON(), nullable=True))
        batch.create_index(
            "ix_processed_updates_state", ["state", "lease_expires_at"], unique=False
        )

    with op.batch_alter_table("usage_events") as batch:
        batch.add_column(
            sa.Column("overdraft_tokens", sa.BigInteger(), nullable=False, server_default="0")
        )

    with op.batch_alter_table("tenants") as batch:
        batch.add_column(
            sa.Column("library_seq", sa.BigInteger(), nullable=False, server_default="0")
        )

    # Number the existing items 1, 2, 3... per tenant in creation order, then make it required.
    with op.batch_alter_table("content_items") as batch:
        batch.add_column(sa.Column("number", sa.BigInteger(), nullable=True))
    op.execute(
        """
        UPDATE content_items SET number = (
            SELECT COUNT(*) FROM content_items AS earlier
            WHERE earlier.tenant_id = content_items.tenant_id AND earlier.id <= content_items.id
        )
        """
    )
    op.execute(
        """
        UPDATE tenants SET library_seq = COALESCE(
            (SELECT MAX(number) FROM content_items WHERE content_items.tenant_id = tenants.id), 0
        )
        """
    )
    with op.batch_alter_table("content_items") as batch:
        batch.alter_column("number", existing_type=sa.BigInteger(), nullable=False)
        batch.create_unique_constraint("uq_content_items_tenant_number", ["tenant_id", "number"])


def downgrade() -> None:
    with op.batch_alter_table("content_items") as batch:
        batch.drop_constraint("uq_content_items_tenant_number", type_="unique")
        batch.drop_column("number")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("library_seq")
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("overdraft_tokens")
    with op.batch_alter_table("processed_updates") as batch:
        batch.drop_index("ix_processed_updates_state")
        batch.drop_column("reply_to")
        batch.drop_column("lease_expires_at")
        batch.drop_column("holder")
        batch.drop_column("state")
