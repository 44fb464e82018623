"""Packs, plans, payments, subscriptions, applied Stripe effects, alerts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_DATETIME = sa.DateTime(timezone=True)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "packs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("price_micros", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _DATETIME, nullable=False),
        sa.Column("updated_at", _DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_packs")),
        sa.UniqueConstraint("slug", name=op.f("uq_packs_slug")),
    )
    op.create_table(
        "plans",
        sa.Column("id", _ID, nullable=False),
        sa.Column("slug", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("price_micros", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("tokens_included", sa.BigInteger(), nullable=False),
        sa.Column("markup_ppm", sa.BigInteger(), nullable=False),
        sa.Column("base_fee_micros", sa.BigInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _DATETIME, nullable=False),
        sa.Column("updated_at", _DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("slug", name=op.f("uq_plans_slug")),
    )
    op.create_table(
        "payments",
        sa.Column("id", _ID, nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("item", sa.String(length=64), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("stripe_session_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_payment_intent", sa.String(length=255), nullable=True),
        sa.Column("stripe_invoice_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_subscription_id", sa.String(length=255), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("reply_to", sa.JSON(), nullable=True),
        sa.Column("requested_by", sa.String(length=200), nullable=True),
        sa.Column("refunded_tokens", sa.BigInteger(), nullable=False),
        sa.Column("refunded_micros", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _DATETIME, nullable=False),
        sa.Column("paid_at", _DATETIME, nullable=True),
        sa.Column("closed_at", _DATETIME, nullable=True),
        _tenant_fk("payments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_payments_idempotency_key")),
        sa.UniqueConstraint("stripe_session_id", name=op.f("uq_payments_stripe_session_id")),
        sa.UniqueConstraint("stripe_invoice_id", name=op.f("uq_payments_stripe_invoice_id")),
    )
    with op.batch_alter_table("payments") as batch:
        batch.create_index("ix_payments_tenant_time", ["tenant_id", "created_at"], unique=False)
        batch.create_index(
            batch.f("ix_payments_stripe_payment_intent"), ["stripe_payment_intent"], unique=False
        )

    op.create_table(
        "subscriptions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.Column("plan", sa.String(length=16), nullable=False),
        sa.Column("stripe_subscription_id", sa.String(length=255), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reply_to", sa.JSON(), nullable=True),
        sa.Column("created_at", _DATETIME, nullable=False),
        sa.Column("updated_at", _DATETIME, nullable=False),
        sa.Column("canceled_at", _DATETIME, nullable=True),
        _tenant_fk("subscriptions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint(
            "stripe_subscription_id", name=op.f("uq_subscriptions_stripe_subscription_id")
        ),
    )
    with op.batch_alter_table("subscriptions") as batch:
        batch.create_index(batch.f("ix_subscriptions_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "stripe_effects",
        sa.Column("id", _ID, nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("created_at", _DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_effects")),
        sa.UniqueConstraint("key", name=op.f("uq_stripe_effects_key")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", _ID, nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", _DATETIME, nullable=False),
        sa.Column("notified_at", _DATETIME, nullable=True),
        _tenant_fk("alerts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    with op.batch_alter_table("alerts") as batch:
        batch.create_index("ix_alerts_time", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_index("ix_alerts_time")
    op.drop_table("alerts")
    op.drop_table("stripe_effects")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_index(batch.f("ix_subscriptions_tenant_id"))
    op.drop_table("subscriptions")
    with op.batch_alter_table("payments") as batch:
        batch.drop_index(batch.f("ix_payments_stripe_payment_intent"))
        batch.drop_index("ix_payments_tenant_time")
    op.drop_table("payments")
    op.drop_table("plans")
    op.drop_table("packs")
