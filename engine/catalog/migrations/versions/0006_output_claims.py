"""output claims: one batch item per output file; outputs' sizes and pending per-face records

Revision ID: 0006
Revises: 0005

Job output folders were compared as written, so one folder spelled two ways (a link) ran as two jobs
over the same files. This revision stores every job's output folder resolved, adds `output_claims`
(one row per output file: the batch item that may write it) filled from the existing items (the
newest item of a photo keeps a path; a path two photos share stays with the first, and the second
claims a name of its own when it next runs), and adds `batch_items.output_size` and
`batch_items.output_faces`.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from engine.catalog.outputs import claim_key

    op.add_column("batch_items", sa.Column("output_size", sa.BigInteger(), nullable=True))
    op.add_column("batch_items", sa.Column("output_faces", sa.JSON(), nullable=True))
    op.create_table(
        "output_claims",
        sa.Column("path", sa.String(length=4096), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["batch_items.id"], name=op.f("fk_output_claims_item_id_batch_items"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("path", name=op.f("pk_output_claims")),
    )
    op.create_index(op.f("ix_output_claims_item_id"), "output_claims", ["item_id"], unique=False)

    connection = op.get_bind()
    for job_id, out_dir in connection.execute(sa.text("SELECT id, out_dir FROM batch_jobs")).all():
        resolved = os.path.realpath(out_dir)
        if resolved != out_dir:
            connection.execute(sa.text("UPDATE batch_jobs SET out_dir = :out WHERE id = :id"),
                               {"out": resolved, "id": job_id})
    holders: dict[str, tuple[int, int]] = {}  # claim key -> (item id, photo id)
    rows = connection.execute(sa.text(
        "SELECT i.id, i.photo_id, j.out_dir, i.relative_output FROM batch_items i "
        "JOIN batch_jobs j ON i.job_id = j.id ORDER BY i.id")).all()
    for item_id, photo_id, out_dir, relative in rows:
        key = claim_key(os.path.join(out_dir, relative))
        held = holders.get(key)
        if held is None or held[1] == photo_id:
            holders[key] = (item_id, photo_id)
    now = sa.func.current_timestamp()
    for key, (item_id, _) in holders.items():
        connection.execute(sa.insert(sa.table("output_claims", sa.column("path"), sa.column("item_id"),
                                              sa.column("claimed_at")))
                           .values(path=key, item_id=item_id, claimed_at=now))


def downgrade() -> None:
    op.drop_index(op.f("ix_output_claims_item_id"), table_name="output_claims")
    op.drop_table("output_claims")
    with op.batch_alter_table("batch_items", schema=None) as batch_op:
        batch_op.drop_column("output_faces")
        batch_op.drop_column("output_size")
