"""one machine-or-confirmed person per face (enforced), faces marked once clustered

Revision ID: 0005
Revises: 0001

Two scans clustering at once could give a face two machine assignments. This revision repairs such
faces (a confirmed row wins; otherwise the oldest machine row stays), removes the people that the
repair leaves with no face, no name, no reference and no rejection, and then adds a partial unique
index so the database refuses a second one. It also adds `faces.clustered`: existing faces that are
in a person count as clustered; the others are tried once more by the next clustering.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = "0003"
branch_labels = None
depends_on = None

POSITIVE = "origin IN ('machine', 'confirmed')"


def upgrade() -> None:
    # keep, per face, the confirmed row (lowest id) if any, else the lowest-id machine row
    op.execute(f"""
        DELETE FROM assignments WHERE {POSITIVE} AND id NOT IN (
            SELECT COALESCE(
                (SELECT MIN(c.id) FROM assignments c WHERE c.face_id = a.face_id AND c.origin = 'confirmed'),
                (SELECT MIN(m.id) FROM assignments m WHERE m.face_id = a.face_id AND m.origin = 'machine'))
            FROM assignments a WHERE a.{POSITIVE} GROUP BY a.face_id)
    """)
    op.execute("""
        DELETE FROM people WHERE name IS NULL
            AND id NOT IN (SELECT person_id FROM assignments)
            AND id NOT IN (SELECT person_id FROM person_references)
    """)
    # Plain ADD COLUMN / CREATE INDEX, never a batch (copy-and-drop) table rebuild: dropping the old
    # faces table with foreign keys on would cascade-delete every assignment and reference.
    op.add_column('faces', sa.Column('clustered', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index(op.f('ix_faces_clustered'), 'faces', ['clustered'], unique=False)
    op.execute(f"UPDATE faces SET clustered = true WHERE id IN (SELECT face_id FROM assignments WHERE {POSITIVE})")
    op.create_index('uq_assignments_face_id_positive', 'assignments', ['face_id'], unique=True,
                    sqlite_where=sa.text(POSITIVE), postgresql_where=sa.text(POSITIVE))


def downgrade() -> None:
    op.drop_index('uq_assignments_face_id_positive', table_name='assignments')
    op.drop_index(op.f('ix_faces_clustered'), table_name='faces')
    # faces.clustered stays: on SQLite dropping it means rebuilding the table, whose drop would cascade
    # away the assignments; revision 0001's code ignores the extra column (it has a default).
