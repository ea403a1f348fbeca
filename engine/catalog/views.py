"""The catalog's photos as plain rows for a photo grid (the GUI's Library page): no ORM objects, so a
worker thread can hand them to the view."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.catalog.models import Face, Photo, PhotoStatus
from engine.catalog.scanner import is_inside


@dataclass(frozen=True)
class PhotoRow:
    id: int
    path: Path
    thumbnail: Path | None
    width: int | None  # after EXIF orientation; None before the photo could be read
    height: int | None
    status: str  # "ok" | "unreadable" (missing photos are not listed)
    error: str | None
    faces: int


def photo_rows(session: Session, roots: Sequence[str | Path] = ()) -> list[PhotoRow]:
    """Photos under the album folders `roots` (every photo when empty) that are on disk, by path, each
    with its number of faces."""
    folders = [os.path.abspath(os.fspath(r)) for r in roots]
    counts = dict(session.execute(select(Face.photo_id, func.count(Face.id)).group_by(Face.photo_id)).all())
    rows = session.execute(select(Photo.id, Photo.path, Photo.thumbnail, Photo.width, Photo.height, Photo.status,
                                  Photo.error).where(Photo.status != PhotoStatus.missing)
                           .order_by(Photo.path)).all()
    return [PhotoRow(pid, Path(path), Path(thumb) if thumb else None, w, h, PhotoStatus(status).value, error,
                     counts.get(pid, 0))
            for pid, path, thumb, w, h, status, error in rows if not folders or any(is_inside(path, f) for f in folders)]
