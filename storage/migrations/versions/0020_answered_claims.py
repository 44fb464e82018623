"""Update claims remember the saved answer until it is delivered

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 19:45:00

A turn's answer is committed before its final message is sent. A claim is now left
``answered`` with the answer's message id in that commit and marked ``done`` once the message is
out, so a process that dies in between leaves an answer to deliver (on redelivery of the update,
or by the interrupted-turns sweep through the outbox) rather than a turn marked done that its
user never saw. ``state`` is a plain string column: the new value needs no schema change.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch rebuild): SQLite supports it, and nothing else changes.
    op.add_column(
        "processed_updates",
        sa.Column(
            "answer_message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("processed_updates") as batch:
        batch.drop_column("answer_message_id")
