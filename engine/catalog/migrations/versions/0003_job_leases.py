"""job leases: which process runs a batch job (pid, host, token, heartbeat); each batch item's output hash

Revision ID: 0003
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batch_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_pid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("owner_host", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("owner_token", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("owner_heartbeat", sa.DateTime(), nullable=True))
    with op.batch_alter_table("batch_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("output_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batch_items", schema=None) as batch_op:
        batch_op.drop_column("output_sha256")
    with op.batch_alter_table("batch_jobs", schema=None) as batch_op:
        batch_op.drop_column("owner_heartbeat")
        batch_op.drop_column("owner_token")
        batch_op.drop_column("owner_host")
        batch_op.drop_column("owner_pid")
