"""Tenant billing details: address, country, VAT ID, language (the invoice's buyer)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 11:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("address", sa.Text(), nullable=True))
        batch.add_column(sa.Column("country", sa.String(2), nullable=True))
        batch.add_column(sa.Column("vat_id", sa.String(16), nullable=True))
        batch.add_column(sa.Column("language", sa.String(2), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("language")
        batch.drop_column("vat_id")
        batch.drop_column("country")
        batch.drop_column("address")
