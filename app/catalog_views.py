"""Read-only views of the catalog that the pages display: small dataclasses, filled in workers.

Writes (rename, merge, split, reject, references, batch jobs) go through engine.people / engine.catalog
operations (see `people_actions`); this module only reads what the views show.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from engine.catalog.models import (Assignment, AssignmentOrigin, Face, Person, Photo, PhotoStatus, Reference)


@dataclass(frozen=True)
class PhotoRow:
    id: int
    path: Path
    thumbnail: Path | None
    width: int | None
    height: int | None
    status: str
    error: str | None
    faces: int


@dataclass(frozen=True)
class FaceRow:
    id: int
    photo_id: int
    photo: Path
    thumbnail: Path | None
    box: tuple[float, float, float, float]
    image_size: tuple[int, int] | None
    quality: float
    confirmed: bool


@dataclass
class PersonCard:
    id: int | None  # None: the unknown bucket
    name: str
    hidden: bool
    face_count: int
    cover: FaceRow | None
    faces: list[FaceRow] = field(default_factory=list)
    reference_count: int = 0
    picked_count: int = 0

    @property
    def is_unknown(self) -> bool:
        return self.id is None


@dataclass(frozen=True)
class ReferenceRow:
    face: FaceRow
    picked_by_user: bool
    reason: str
    rank: int


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def list_photos(catalog, roots: list[str]) -> list[PhotoRow]:
    """Photos under the album folders (all photos when `roots` is empty), by path."""
    roots = [os.path.abspath(r) for r in roots]
    with catalog.session() as session:
        counts = dict(session.execute(select(Face.photo_id, func.count(Face.id)).group_by(Face.photo_id)).all())
        rows = session.execute(select(Photo.id, Photo.path, Photo.thumbnail, Photo.width, Photo.height, Photo.status,
                                      Photo.error).order_by(Photo.path)).all()
    result = []
    for pid, path, thumb, w, h, status, error in rows:
        if roots and not _under(path, roots):
            continue
        status_value = status.value if hasattr(status, "value") else str(status)
        if status_value == PhotoStatus.missing.value:
            continue
        result.append(PhotoRow(pid, Path(path), Path(thumb) if thumb else None, w, h, status_value, error,
                               counts.get(pid, 0)))
    return result


def _face_row(face: Face, photo: Photo, confirmed: bool = False) -> FaceRow:
    size = (photo.width, photo.height) if photo.width and photo.height else None
    return FaceRow(face.id, photo.id, Path(photo.path), Path(photo.thumbnail) if photo.thumbnail else None,
                   face.box, size, float(face.quality or 0.0), confirmed)


def list_people(catalog, include_hidden: bool = False, faces_per_person: int | None = None) -> list[PersonCard]:
    """People (largest first) and, last, the unknown bucket of faces in no person."""
    with catalog.session() as session:
        people = {p.id: p for p in session.scalars(select(Person))}
        members: dict[int, list[tuple[Face, Photo, bool]]] = defaultdict(list)
        assigned: set[int] = set()
        query = (select(Assignment.person_id, Assignment.origin, Face, Photo)
                 .join(Face, Assignment.face_id == Face.id).join(Photo, Face.photo_id == Photo.id)
                 .where(Assignment.origin != AssignmentOrigin.rejected))
        for person_id, origin, face, photo in session.execute(query):
            if photo.status == PhotoStatus.missing:
                continue
            members[person_id].append((face, photo, origin == AssignmentOrigin.confirmed))
            assigned.add(face.id)
        refs = dict(session.execute(select(Reference.person_id, func.count(Reference.id))
                                    .group_by(Reference.person_id)).all())
        picked = dict(session.execute(select(Reference.person_id, func.count(Reference.id))
                                      .where(Reference.picked_by_user.is_(True)).group_by(Reference.person_id)).all())
        unknown = [(face, photo) for face, photo in session.execute(
            select(Face, Photo).join(Photo, Face.photo_id == Photo.id).where(Photo.status != PhotoStatus.missing))
            if face.id not in assigned]
    cards = []
    for pid, person in people.items():
        if person.hidden and not include_hidden:
            continue
        rows = sorted(members.get(pid, []), key=lambda m: -(m[0].quality or 0.0))
        if not rows:
            continue
        faces = [_face_row(f, p, c) for f, p, c in rows]
        cards.append(PersonCard(pid, person.label, bool(person.hidden), len(faces), faces[0],
                                faces if faces_per_person is None else faces[:faces_per_person], refs.get(pid, 0),
                                picked.get(pid, 0)))
    cards.sort(key=lambda c: (-c.face_count, c.name))
    if unknown:
        faces = [_face_row(f, p) for f, p in sorted(unknown, key=lambda m: -(m[0].quality or 0.0))]
        cards.append(PersonCard(None, "Unknown", False, len(faces), faces[0], faces))
    return cards


def list_references(catalog, person_id: int) -> list[ReferenceRow]:
    with catalog.session() as session:
        rows = session.execute(select(Reference, Face, Photo).join(Face, Reference.face_id == Face.id)
                               .join(Photo, Face.photo_id == Photo.id).where(Reference.person_id == person_id)
                               .order_by(Reference.picked_by_user.desc(), Reference.rank)).all()
        return [ReferenceRow(_face_row(face, photo), bool(ref.picked_by_user), ref.reason or "", ref.rank)
                for ref, face, photo in rows]
