"""A durable outbox: messages to chats and e-mail addresses, delivered after commit

``outbox_messages`` holds each message to one recipient until a process delivers it (see
``handlers.outbox``). ``channel_bindings.address`` stores the chat a binding was made from, so
nothing has to decode a scope key to write to it; existing Telegram bindings get theirs from
their scope key here, once (``user:42`` is the private chat 42, ``chat:-100`` the group -100).
Slack workspace bindings keep none: a workspace is written to through its members' direct
messages.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = sa.DateTime(timezone=True)


def _address(channel: str, scope_key: str) -> dict[str, object] | None:
    if channel != "telegram":
        return None
    for prefix, private in (("user:", True), ("chat:", False)):
        if scope_key.startswith(prefix):
            chat = scope_key.removeprefix(prefix)
            return {
                "channel": "telegram",
                "chat_key": chat,
                "user_id": chat if private else "",
                "thread_key": "",
                "is_private": private,
            }
    return None


def upgrade() -> None:
    with op.batch_alter_table("channel_bindings") as batch:
        batch.add_column(sa.Column("address", sa.JSON(), nullable=True))
    bindings = sa.table(
        "channel_bindings",
        sa.column("id", _ID),
        sa.column("channel", sa.String()),
        sa.column("scope_key", sa.String()),
        sa.column("address", sa.JSON()),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(bindings.c.id, bindings.c.channel, bindings.c.scope_key)
    ).all()
    for row_id, channel, scope_key in rows:
        address = _address(channel, scope_key)
        if address is not None:
            connection.execute(
                bindings.update().where(bindings.c.id == row_id).values(address=address)
            )
    op.create_table(
        "outbox_messages",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("chat_key", sa.String(length=320), nullable=False),
        sa.Column("thread_key", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("is_private", sa.Boolean(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("buttons", sa.JSON(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("delivery_key", sa.String(length=400), nullable=False),
        sa.Column("cause_kind", sa.String(length=32), nullable=False),
        sa.Column("cause_ref", sa.String(length=200), nullable=False),
        sa.Column("tenant_id", _ID, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _WHEN, nullable=False),
        sa.Column("lease_owner", sa.String(length=120), nullable=True),
        sa.Column("lease_expires_at", _WHEN, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("sent_at", _WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_outbox_messages_tenant_id_tenants"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
        sa.UniqueConstraint("delivery_key", name=op.f("uq_outbox_messages_delivery_key")),
    )
    op.create_index(
        "ix_outbox_messages_due", "outbox_messages", ["status", "next_attempt_at"], unique=False
    )
    op.create_index(
        "ix_outbox_messages_cause", "outbox_messages", ["cause_kind", "cause_ref"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_messages_cause", table_name="outbox_messages")
    op.drop_index("ix_outbox_messages_due", table_name="outbox_messages")
    op.drop_table("outbox_messages")
    with op.batch_alter_table("channel_bindings") as batch:
        batch.drop_column("address")
