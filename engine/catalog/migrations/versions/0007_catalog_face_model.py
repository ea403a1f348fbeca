"""the catalog's face model: one per catalog (catalog_settings "face_model")

Revision ID: 0007
Revises: 0006

Records, for a catalog that has faces, the embedding model most of them come from; scans then use it
and refuse another (engine.catalog.face_model).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_catalog_settings")),
    )
    op.execute("""
        INSERT INTO catalog_settings (key, value)
        SELECT 'face_model', embedding_model FROM faces
        GROUP BY embedding_model ORDER BY COUNT(*) DESC LIMIT 1
    """)


def downgrade() -> None:
    op.drop_table("catalog_settings")
