"""Leases, sent alerts, the tenant of each audit entry, indexes for alerts and assistant stats

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 09:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_DATETIME = sa.DateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=120), nullable=False),
        sa.Column("expires_at", _DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )
    op.create_table(
        "sent_alerts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=250), nullable=False),
        sa.Column("sent_at", _DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sent_alerts"),
        sa.UniqueConstraint("day", "kind", "tenant", "subject", name="uq_sent_alerts_key"),
    )
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("tenant_id", _ID, nullable=True))
        batch.create_foreign_key(
            "fk_audit_log_tenant_id_tenants", "tenants", ["tenant_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_audit_log_tenant", ["tenant_id", "id"], unique=False)
    op.create_index(
        "ix_usage_events_assistant_time",
        "usage_events",
        ["assistant_id", "created_at", "status", "latency_ms"],
    )
    op.create_index("ix_usage_events_created", "usage_events", ["created_at"])
    op.create_index("ix_ledger_entries_kind", "ledger_entries", ["kind", "tenant_id", "id"])
    _backfill_audit_tenants()


def _backfill_audit_tenants() -> None:
    """Give earlier audit entries their tenant, read from how each action named it."""
    bind = op.get_bind()
    tenants = {slug: tid for tid, slug in bind.execute(sa.text("SELECT id, slug FROM tenants"))}
    if not tenants:
        return
    audit = sa.table(
        "audit_log",
        sa.column("id", _ID),
        sa.column("action", sa.String()),
        sa.column("target", sa.String()),
        sa.column("after", sa.JSON()),
        sa.column("tenant_id", _ID),
    )
    rows = bind.execute(sa.select(audit.c.id, audit.c.action, audit.c.target, audit.c.after))
    for row_id, action, target, after in rows.all():
        slug = _tenant_named(str(action), target, after)
        if slug in tenants:
            bind.execute(
                sa.update(audit).where(audit.c.id == row_id).values(tenant_id=tenants[slug])
            )


def _tenant_named(action: str, target: str | None, after: Any) -> str | None:
    group = action.partition(".")[0]
    if group in ("tenant", "tokens"):
        return target
    if group == "library" and target:
        return target.partition("#")[0]
    if group == "assistant" and target and "@" in target:
        return target.rpartition("@")[2]
    if group == "chat" and isinstance(after, dict):
        return str(after.get("tenant") or "") or None
    return None


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_kind", table_name="ledger_entries")
    op.drop_index("ix_usage_events_created", table_name="usage_events")
    op.drop_index("ix_usage_events_assistant_time", table_name="usage_events")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_index("ix_audit_log_tenant")
        batch.drop_constraint("fk_audit_log_tenant_id_tenants", type_="foreignkey")
        batch.drop_column("tenant_id")
    op.drop_table("sent_alerts")
    op.drop_table("leases")
