"""Telegram Stars: prices in Stars, payments by Telegram charge id

Packs and plans gain a price in Stars; payments and subscriptions name their provider
(``stripe`` or ``telegram_stars``) and, for Stars, the Telegram charge id (unique: a charge is
credited once) and the paying user; ``operator_texts`` holds ``/paysupport`` and ``/terms``.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("packs", "plans"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("stars", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("payments") as batch:
        batch.add_column(
            sa.Column("provider", sa.String(length=16), server_default="stripe", nullable=False)
        )
        batch.add_column(sa.Column("telegram_charge_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("telegram_user_id", sa.String(length=32), nullable=True))
        batch.create_unique_constraint(
            op.f("uq_payments_telegram_charge_id"), ["telegram_charge_id"]
        )
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(
            sa.Column("provider", sa.String(length=16), server_default="stripe", nullable=False)
        )
        batch.add_column(sa.Column("telegram_user_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("telegram_charge_id", sa.String(length=255), nullable=True))
    op.create_table(
        "operator_texts",
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_operator_texts")),
    )


def downgrade() -> None:
    op.drop_table("operator_texts")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("telegram_charge_id")
        batch.drop_column("telegram_user_id")
        batch.drop_column("provider")
    with op.batch_alter_table("payments") as batch:
        batch.drop_constraint(op.f("uq_payments_telegram_charge_id"), type_="unique")
        batch.drop_column("telegram_user_id")
        batch.drop_column("telegram_charge_id")
        batch.drop_column("provider")
    for table in ("plans", "packs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("stars")
