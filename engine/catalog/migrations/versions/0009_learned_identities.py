"""people learned from the album (engine.learn), and which identity each restored face used

Revision ID: 0009
Revises: 0008

Adds the `learned_identities` table (a fitted identity's tokens or a person adapter's file, with the
held-out check's figures, keyed by the pack, the faces and the references it was learned from) and
`restoration_faces.identity_used` ("references", "fitted v2", "adapter v1"; NULL for restorations
recorded before).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "learned_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pack_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("references_key", sa.String(length=64), nullable=False),
        sa.Column("faces_key", sa.String(length=64), nullable=False),
        sa.Column("fit_face_ids", sa.JSON(), nullable=False),
        sa.Column("held_out_face_ids", sa.JSON(), nullable=False),
        sa.Column("tokens", sa.LargeBinary(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("dim", sa.Integer(), nullable=True),
        sa.Column("adapter_file", sa.String(length=4096), nullable=True),
        sa.Column("adapter_sha256", sa.String(length=64), nullable=True),
        sa.Column("strength", sa.Float(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_learned_identities_person_id_people"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learned_identities")),
        sa.UniqueConstraint("person_id", "method", "version",
                            name=op.f("uq_learned_identities_person_id_method_version")),
    )
    op.create_index(op.f("ix_learned_identities_person_id"), "learned_identities", ["person_id"], unique=False)
    # plain ADD COLUMN (nullable): never a copy-and-drop rebuild, whose drop would cascade (see 0005)
    op.add_column("restoration_faces", sa.Column("identity_used", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # the column stays (dropping one rebuilds the table on SQLite, whose drop would cascade); 0008's
    # code ignores it
    op.drop_index(op.f("ix_learned_identities_person_id"), table_name="learned_identities")
    op.drop_table("learned_identities")
