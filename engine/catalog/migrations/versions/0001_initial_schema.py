"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 05:11:29.551116
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('batch_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('out_dir', sa.String(length=4096), nullable=False),
    sa.Column('roots', sa.JSON(), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('running', 'done', 'cancelled', name='job_status', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batch_jobs'))
    )
    op.create_table('people',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=True),
    sa.Column('hidden', sa.Boolean(), nullable=False),
    sa.Column('embedding_model', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_people'))
    )
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_people_embedding_model'), ['embedding_model'], unique=False)

    op.create_table('photos',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=4096), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('mtime_ns', sa.BigInteger(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('status', sa.Enum('ok', 'missing', 'unreadable', name='photo_status', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('date_taken', sa.DateTime(), nullable=True),
    sa.Column('orientation', sa.Integer(), nullable=True),
    sa.Column('camera', sa.String(length=256), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('thumbnail', sa.String(length=4096), nullable=True),
    sa.Column('analysed_with', sa.String(length=128), nullable=True),
    sa.Column('scanned_at', sa.DateTime(), nullable=False),
    sa.Column('missing_since', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_photos')),
    sa.UniqueConstraint('path', name=op.f('uq_photos_path'))
    )
    with op.batch_alter_table('photos', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_photos_content_hash'), ['content_hash'], unique=False)

    op.create_table('batch_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('photo_id', sa.Integer(), nullable=False),
    sa.Column('relative_output', sa.String(length=4096), nullable=False),
    sa.Column('status', sa.Enum('pending', 'done', 'skipped', 'failed', name='item_status', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['batch_jobs.id'], name=op.f('fk_batch_items_job_id_batch_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['photo_id'], ['photos.id'], name=op.f('fk_batch_items_photo_id_photos'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batch_items')),
    sa.UniqueConstraint('job_id', 'photo_id', name=op.f('uq_batch_items_job_id_photo_id'))
    )
    with op.batch_alter_table('batch_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batch_items_job_id'), ['job_id'], unique=False)

    op.create_table('faces',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('photo_id', sa.Integer(), nullable=False),
    sa.Column('x1', sa.Float(), nullable=False),
    sa.Column('y1', sa.Float(), nullable=False),
    sa.Column('x2', sa.Float(), nullable=False),
    sa.Column('y2', sa.Float(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('landmarks', sa.JSON(), nullable=False),
    sa.Column('quality', sa.Float(), nullable=False),
    sa.Column('sharpness', sa.Float(), nullable=False),
    sa.Column('frontalness', sa.Float(), nullable=False),
    sa.Column('yaw', sa.Float(), nullable=False),
    sa.Column('embedding', sa.LargeBinary(), nullable=False),
    sa.Column('embedding_model', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['photo_id'], ['photos.id'], name=op.f('fk_faces_photo_id_photos'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_faces'))
    )
    with op.batch_alter_table('faces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_faces_embedding_model'), ['embedding_model'], unique=False)
        batch_op.create_index(batch_op.f('ix_faces_photo_id'), ['photo_id'], unique=False)

    op.create_table('restorations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('photo_id', sa.Integer(), nullable=True),
    sa.Column('output_path', sa.String(length=4096), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('model_versions', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['photo_id'], ['photos.id'], name=op.f('fk_restorations_photo_id_photos'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_restorations'))
    )
    with op.batch_alter_table('restorations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_restorations_photo_id'), ['photo_id'], unique=False)

    op.create_table('assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('face_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('origin', sa.Enum('machine', 'confirmed', 'rejected', name='assignment_origin', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['face_id'], ['faces.id'], name=op.f('fk_assignments_face_id_faces'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_assignments_person_id_people'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignments')),
    sa.UniqueConstraint('face_id', 'person_id', name=op.f('uq_assignments_face_id_person_id'))
    )
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assignments_face_id'), ['face_id'], unique=False)
        batch_op.create_index('ix_assignments_person_id_origin', ['person_id', 'origin'], unique=False)

    op.create_table('person_references',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('face_id', sa.Integer(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('picked_by_user', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['face_id'], ['faces.id'], name=op.f('fk_person_references_face_id_faces'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_person_references_person_id_people'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_person_references')),
    sa.UniqueConstraint('person_id', 'face_id', name=op.f('uq_person_references_person_id_face_id'))
    )
    with op.batch_alter_table('person_references', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_person_references_face_id'), ['face_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_person_references_person_id'), ['person_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('person_references', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_person_references_person_id'))
        batch_op.drop_index(batch_op.f('ix_person_references_face_id'))

    op.drop_table('person_references')
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_index('ix_assignments_person_id_origin')
        batch_op.drop_index(batch_op.f('ix_assignments_face_id'))

    op.drop_table('assignments')
    with op.batch_alter_table('restorations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_restorations_photo_id'))

    op.drop_table('restorations')
    with op.batch_alter_table('faces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_faces_photo_id'))
        batch_op.drop_index(batch_op.f('ix_faces_embedding_model'))

    op.drop_table('faces')
    with op.batch_alter_table('batch_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batch_items_job_id'))

    op.drop_table('batch_items')
    with op.batch_alter_table('photos', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_photos_content_hash'))

    op.drop_table('photos')
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_people_embedding_model'))

    op.drop_table('people')
    op.drop_table('batch_jobs')
