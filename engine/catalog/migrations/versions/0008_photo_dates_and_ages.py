"""when each photo was taken, people's birth years, faces' apparent ages, references' eras

Revision ID: 0008
Revises: 0007

Adds to `photos` the date the album believes a photo was taken (`taken_year`, `taken_month`,
`taken_day`, `taken_precision`), where it came from (`taken_source`: exif, scan-exif, folder,
filename, user) and how sure it is (`taken_confidence`); to `people` an optional `birth_year`; to
`faces` the apparent age an age estimator gave (`apparent_age`, `age_model`); to `person_references`
the era a picked reference stands for (`era`). Photos already catalogued get their date from what the
catalog holds (the EXIF date and camera read at their scan, their folder and file names), by the same
rules as a scan (engine.photo_dates), since an unchanged photo is not read again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from engine.photo_dates import date_from_catalog

    # plain ADD COLUMN (nullable): never a copy-and-drop rebuild, whose drop would cascade (see 0005)
    op.add_column("photos", sa.Column("taken_year", sa.Integer(), nullable=True))
    op.add_column("photos", sa.Column("taken_month", sa.Integer(), nullable=True))
    op.add_column("photos", sa.Column("taken_day", sa.Integer(), nullable=True))
    op.add_column("photos", sa.Column("taken_precision", sa.String(length=16), nullable=True))
    op.add_column("photos", sa.Column("taken_source", sa.String(length=16), nullable=True))
    op.add_column("photos", sa.Column("taken_confidence", sa.Float(), nullable=True))
    op.add_column("people", sa.Column("birth_year", sa.Integer(), nullable=True))
    op.add_column("faces", sa.Column("apparent_age", sa.Float(), nullable=True))
    op.add_column("faces", sa.Column("age_model", sa.String(length=128), nullable=True))
    op.add_column("person_references", sa.Column("era", sa.String(length=32), nullable=True))

    connection = op.get_bind()
    photos = sa.table("photos", sa.column("id"), sa.column("taken_year"), sa.column("taken_month"),
                      sa.column("taken_day"), sa.column("taken_precision"), sa.column("taken_source"),
                      sa.column("taken_confidence"))
    rows = connection.execute(sa.text("SELECT id, path, date_taken, camera FROM photos")).all()
    for photo_id, path, date_taken, camera in rows:
        if isinstance(date_taken, str):  # SQLite returns the stored text
            from datetime import datetime

            try:
                date_taken = datetime.fromisoformat(date_taken)
            except ValueError:
                date_taken = None
        date = date_from_catalog(path, date_taken, camera)
        if date is None:
            continue
        connection.execute(sa.update(photos).where(photos.c.id == photo_id).values(
            taken_year=date.year, taken_month=date.month, taken_day=date.day, taken_precision=date.precision,
            taken_source=date.source, taken_confidence=date.confidence))


def downgrade() -> None:
    # the columns stay: on SQLite dropping one means rebuilding the table, whose drop would cascade;
    # revision 0007's code ignores them (all nullable)
    pass
