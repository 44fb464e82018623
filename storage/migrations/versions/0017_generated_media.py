"""Generated media: per-image and per-character prices

``model_prices`` may price a model per image and per million characters (calls that report no
tokens: DALL·E, tts-1); library items record their file's size; assistants carry their image
size and quality and their voice.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_prices") as batch:
        batch.add_column(sa.Column("per_image_micros", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("per_mchar_micros", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("content_items") as batch:
        batch.add_column(sa.Column("size_bytes", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("assistants") as batch:
        batch.add_column(sa.Column("image_size", sa.String(16), nullable=True))
        batch.add_column(sa.Column("image_quality", sa.String(16), nullable=True))
        batch.add_column(sa.Column("voice", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assistants") as batch:
        batch.drop_column("voice")
        batch.drop_column("image_quality")
        batch.drop_column("image_size")
    with op.batch_alter_table("content_items") as batch:
        batch.drop_column("size_bytes")
    with op.batch_alter_table("model_prices") as batch:
        batch.drop_column("per_mchar_micros")
        batch.drop_column("per_image_micros")
