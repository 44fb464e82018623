"""Update claims remember the saved answer until it is delivered; assistants join the cache

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 19:45:00

A turn's answer is committed before its final message is sent. A claim is now left
``answered`` with the answer's message id in that commit and marked ``done`` once the message is
out, so a process that dies in between leaves an answer to deliver (on redelivery of the update,
or by the interrupted-turns sweep through the outbox) rather than a turn marked done that its
user never saw. ``state`` is a plain string column: the new value needs no schema change.

The assistants a tenant may use (assistants, their prompt versions, the tenant's overrides)
join what processes cache by ``config_version`` (``storage.config_cache``): triggers as in
0019 bump it on every change to those tables (a later migration rebuilding one of them with
``batch_alter_table`` on SQLite must create its triggers again).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


#: (trigger name, table, event), bumping ``config_version`` as 0019's triggers do.
TRIGGERS = tuple(
    (f"{short}_{event.lower()}", table, event)
    for short, table in (
        ("assistants", "assistants"),
        ("prompts", "assistant_prompt_versions"),
        ("overrides", "tenant_assistants"),
    )
    for event in ("INSERT", "UPDATE", "DELETE")
)
BUMP = "UPDATE config_version SET version = version + 1 WHERE id = 1"


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, table, when in TRIGGERS:
        if sqlite:
            op.execute(
                f"CREATE TRIGGER config_bump_{name} AFTER {when} ON {table} BEGIN {BUMP}; END"
            )
        else:  # 0019's function
            op.execute(
                f"CREATE TRIGGER config_bump_{name} AFTER {when} ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION config_version_bump()"
            )
    # A plain ADD COLUMN (no batch rebuild): SQLite supports it, and nothing else changes.
    op.add_column(
        "processed_updates",
        sa.Column(
            "answer_message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
    )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, table, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER config_bump_{name}" + ("" if sqlite else f" ON {table}"))
    with op.batch_alter_table("processed_updates") as batch:
        batch.drop_column("answer_message_id")
