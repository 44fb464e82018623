"""Invoice line quantities may be decimal (1.5 hours): stored in thousandths

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 12:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invoice_lines") as batch:
        batch.alter_column("quantity", new_column_name="quantity_milli")
    op.execute("UPDATE invoice_lines SET quantity_milli = quantity_milli * 1000")


def downgrade() -> None:
    # A fractional quantity has no whole-number form: it is rounded up (billed lines stay).
    op.execute("UPDATE invoice_lines SET quantity_milli = (quantity_milli + 999) / 1000")
    with op.batch_alter_table("invoice_lines") as batch:
        batch.alter_column("quantity_milli", new_column_name="quantity")
