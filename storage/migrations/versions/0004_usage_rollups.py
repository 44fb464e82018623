"""Usage rollups (daily per tenant, daily overall, monthly per tenant), backfilled from events

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 14:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_SUMS = (
    "calls",
    "failed",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "charged_tokens",
    "cost_micros",
    "latency_ms_sum",
)


def _sum_columns() -> list[sa.Column[int]]:
    return [sa.Column(name, sa.BigInteger(), nullable=False) for name in _SUMS]


def upgrade() -> None:
    op.create_table(
        "usage_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "assistant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("cost_currency", sa.String(length=3), nullable=False),
        *_sum_columns(),
        sa.PrimaryKeyConstraint(
            "day", "tenant_id", "assistant_id", "provider", "model", "cost_currency",
            name="pk_usage_daily",
        ),
    )
    op.create_index("ix_usage_daily_tenant_day", "usage_daily", ["tenant_id", "day"])
    op.create_table(
        "usage_daily_global",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column(
            "assistant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("cost_currency", sa.String(length=3), nullable=False),
        *_sum_columns(),
        sa.PrimaryKeyConstraint(
            "day", "assistant_id", "provider", "model", "cost_currency",
            name="pk_usage_daily_global",
        ),
    )
    op.create_table(
        "usage_monthly_tenant",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("cost_currency", sa.String(length=3), nullable=False),
        *_sum_columns(),
        sa.PrimaryKeyConstraint(
            "month", "tenant_id", "cost_currency", name="pk_usage_monthly_tenant"
        ),
    )
    op.create_table(
        "assistant_tenant_month",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column(
            "assistant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint(
            "month", "assistant_id", "tenant_id", name="pk_assistant_tenant_month"
        ),
    )
    op.create_index("ix_members_last_seen", "members", ["last_seen_at"])
    _backfill()


def _backfill() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    day = "date(created_at)" if sqlite else "CAST(created_at AT TIME ZONE 'UTC' AS DATE)"
    month = (
        "date(created_at, 'start of month')"
        if sqlite
        else "CAST(date_trunc('month', created_at AT TIME ZONE 'UTC') AS DATE)"
    )
    sums = """
        SUM(CASE WHEN status = 'settled' THEN 1 ELSE 0 END),
        SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END),
        SUM(input_tokens), SUM(cached_input_tokens), SUM(output_tokens),
        SUM(reasoning_tokens), SUM(charged_tokens), SUM(cost_micros),
        SUM(COALESCE(latency_ms, 0))
    """
    columns = ", ".join(_SUMS)
    done = "status IN ('settled', 'failed')"
    op.execute(
        f"""
        INSERT INTO usage_daily (day, tenant_id, assistant_id, provider, model, cost_currency,
                                 {columns})
        SELECT {day}, tenant_id, COALESCE(assistant_id, 0), provider, model, cost_currency, {sums}
        FROM usage_events WHERE {done}
        GROUP BY {day}, tenant_id, COALESCE(assistant_id, 0), provider, model, cost_currency
        """
    )
    op.execute(
        f"""
        INSERT INTO usage_daily_global (day, assistant_id, provider, model, cost_currency,
                                        {columns})
        SELECT {day}, COALESCE(assistant_id, 0), provider, model, cost_currency, {sums}
        FROM usage_events WHERE {done}
        GROUP BY {day}, COALESCE(assistant_id, 0), provider, model, cost_currency
        """
    )
    op.execute(
        f"""
        INSERT INTO assistant_tenant_month (month, assistant_id, tenant_id, last_day)
        SELECT {month}, COALESCE(assistant_id, 0), tenant_id, MAX({day})
        FROM usage_events WHERE {done}
        GROUP BY {month}, COALESCE(assistant_id, 0), tenant_id
        """
    )
    op.execute(
        f"""
        INSERT INTO usage_monthly_tenant (month, tenant_id, cost_currency, {columns})
        SELECT {month}, tenant_id, cost_currency, {sums}
        FROM usage_events WHERE {done}
        GROUP BY {month}, tenant_id, cost_currency
        """
    )


def downgrade() -> None:
    op.drop_index("ix_members_last_seen", table_name="members")
    op.drop_table("assistant_tenant_month")
    op.drop_table("usage_monthly_tenant")
    op.drop_table("usage_daily_global")
    op.drop_index("ix_usage_daily_tenant_day", table_name="usage_daily")
    op.drop_table("usage_daily")
