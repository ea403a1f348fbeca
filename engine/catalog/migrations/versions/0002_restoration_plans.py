"""restoration plans: what each restoration did per face, and identity tokens per person

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 10:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('identity_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('references_key', sa.String(length=64), nullable=False),
    sa.Column('pack_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('reference_face_ids', sa.JSON(), nullable=False),
    sa.Column('tokens', sa.LargeBinary(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('dim', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_identity_tokens_person_id_people'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identity_tokens')),
    sa.UniqueConstraint('person_id', 'references_key', 'pack_fingerprint', name=op.f('uq_identity_tokens_person_id_references_key_pack_fingerprint'))
    )
    op.create_index(op.f('ix_identity_tokens_person_id'), 'identity_tokens', ['person_id'], unique=False)
    op.create_table('restoration_faces',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('restoration_id', sa.Integer(), nullable=False),
    sa.Column('face_index', sa.Integer(), nullable=False),
    sa.Column('face_id', sa.Integer(), nullable=True),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('person_name', sa.String(length=256), nullable=True),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=True),
    sa.Column('box', sa.JSON(), nullable=False),
    sa.Column('similarity_restored', sa.Float(), nullable=True),
    sa.Column('similarity_unrestored', sa.Float(), nullable=True),
    sa.Column('verdict', sa.String(length=32), nullable=True),
    sa.Column('check_model', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['face_id'], ['faces.id'], name=op.f('fk_restoration_faces_face_id_faces'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_restoration_faces_person_id_people'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['restoration_id'], ['restorations.id'], name=op.f('fk_restoration_faces_restoration_id_restorations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_restoration_faces')),
    sa.UniqueConstraint('restoration_id', 'face_index', name=op.f('uq_restoration_faces_restoration_id_face_index'))
    )
    op.create_index(op.f('ix_restoration_faces_person_id'), 'restoration_faces', ['person_id'], unique=False)
    op.create_index(op.f('ix_restoration_faces_restoration_id'), 'restoration_faces', ['restoration_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_restoration_faces_restoration_id'), table_name='restoration_faces')
    op.drop_index(op.f('ix_restoration_faces_person_id'), table_name='restoration_faces')
    op.drop_table('restoration_faces')
    op.drop_index(op.f('ix_identity_tokens_person_id'), table_name='identity_tokens')
    op.drop_table('identity_tokens')
