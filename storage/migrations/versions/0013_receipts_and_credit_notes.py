"""Every sale invoiced once, and credit notes in their own sequence

Invoices gain a ``kind`` (``invoice`` or ``credit_note``) and the invoice a credit note credits;
credit notes are numbered from their own per-year counter.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 11:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "credit_note_counters",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_credit_note_counters")),
    )
    with op.batch_alter_table("invoices") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), server_default="invoice", nullable=False)
        )
        batch.add_column(sa.Column("credits_invoice_id", _ID, nullable=True))
        batch.create_foreign_key(
            op.f("fk_invoices_credits_invoice_id_invoices"),
            "invoices",
            ["credits_invoice_id"],
            ["id"],
            ondelete="RESTRICT",
        )
        batch.create_index(op.f("ix_invoices_credits_invoice_id"), ["credits_invoice_id"])


def downgrade() -> None:
    with op.batch_alter_table("invoices") as batch:
        batch.drop_index(op.f("ix_invoices_credits_invoice_id"))
        batch.drop_constraint(op.f("fk_invoices_credits_invoice_id_invoices"), type_="foreignkey")
        batch.drop_column("credits_invoice_id")
        batch.drop_column("kind")
    op.drop_table("credit_note_counters")
