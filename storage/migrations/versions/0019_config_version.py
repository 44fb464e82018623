"""Configuration version: one row bumped by triggers on every change processes cache

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 16:40:00

Processes cache tenants, members, channel bindings and platform admin roles
(``storage.config_cache``) and read ``config_version.version`` in each turn's claim; triggers
bump it in the transaction of any write to what is cached, whoever makes it (commands, the
shell, webhooks, another process). Columns the turns themselves write (balances, reservations,
activity times, library numbers) are left out, as are new members (a miss loads them). A later
migration that rebuilds one of these tables with ``batch_alter_table`` on SQLite drops its
triggers and must create them again (``create_triggers``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

BUMP = "UPDATE config_version SET version = version + 1 WHERE id = 1"
TENANT_COLUMNS = (
    "slug, name, email, status, plan, monthly_token_quota, trial_ends_at, billing_currency, "
    "vat_rate_ppm, address, country, vat_id, language"
)
MEMBER_COLUMNS = "tenant_id, channel, external_id, blocked_at, language"
#: (trigger name, table, event): every event that changes what is cached.
TRIGGERS = (
    ("tenants_update", "tenants", f"UPDATE OF {TENANT_COLUMNS}"),
    ("tenants_delete", "tenants", "DELETE"),
    ("bindings_insert", "channel_bindings", "INSERT"),
    ("bindings_update", "channel_bindings", "UPDATE"),
    ("bindings_delete", "channel_bindings", "DELETE"),
    ("members_update", "members", f"UPDATE OF {MEMBER_COLUMNS}"),
    ("members_delete", "members", "DELETE"),
    ("admins_insert", "platform_admins", "INSERT"),
    ("admins_update", "platform_admins", "UPDATE"),
    ("admins_delete", "platform_admins", "DELETE"),
)


def create_triggers() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name, table, when in TRIGGERS:
            op.execute(
                f"CREATE TRIGGER config_bump_{name} AFTER {when} ON {table} "
                f"BEGIN {BUMP}; END"
            )
        return
    op.execute(
        "CREATE FUNCTION config_version_bump() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
    )
    for name, table, when in TRIGGERS:
        op.execute(
            f"CREATE TRIGGER config_bump_{name} AFTER {when} ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION config_version_bump()"
        )


def upgrade() -> None:
    op.create_table(
        "config_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO config_version (id, version) VALUES (1, 0)")
    create_triggers()


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, table, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER config_bump_{name}" + ("" if sqlite else f" ON {table}"))
    if not sqlite:
        op.execute("DROP FUNCTION config_version_bump()")
    op.drop_table("config_version")
