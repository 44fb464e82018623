"""Languages: a member's chosen language

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Set by /language (en, fr, de); None: the chat client's language, else the tenant's.
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("language", sa.String(2), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.drop_column("language")
