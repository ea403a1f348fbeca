"""People as plain data, for `faceme people list --json` and the GUI's people view."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.catalog.models import Assignment, AssignmentOrigin, Face, Person, Photo, PhotoStatus


def _box(face: Face) -> list[float]:
    return [round(face.x1, 1), round(face.y1, 1), round(face.x2, 1), round(face.y2, 1)]


def people_listing(session: Session, include_hidden: bool = False, model: str | None = None,
                   with_ids: bool = False) -> dict:
    """{"people": [{"id", "name", "faces": [{"photo", "box", "confirmed"}]}], "unassigned": [{"photo", "box"}]}

    Only faces of photos present on disk at the last scan (not missing, not unreadable). People are
    ordered by their number of faces, largest first. `with_ids` adds each face's "face_id" (for the
    text listing; the JSON contract does not carry it).
    """
    faces_query = (select(Face, Photo.path).join(Photo, Photo.id == Face.photo_id)
                   .where(Photo.status == PhotoStatus.ok).order_by(Photo.path, Face.x1))
    if model:
        faces_query = faces_query.where(Face.embedding_model == model)
    faces = session.execute(faces_query).all()
    placement = {face_id: (person_id, origin) for face_id, person_id, origin in session.execute(
        select(Assignment.face_id, Assignment.person_id, Assignment.origin)
        .where(Assignment.origin.in_((AssignmentOrigin.machine, AssignmentOrigin.confirmed))))}
    people = {p.id: p for p in session.scalars(select(Person))}
    members: dict[int, list[dict]] = defaultdict(list)
    unassigned = []
    for face, path in faces:
        entry = {"photo": path, "box": _box(face)}
        if with_ids:
            entry["face_id"] = face.id
        placed = placement.get(face.id)
        if placed is None:
            unassigned.append(entry)
            continue
        person_id, origin = placed
        members[person_id].append({**entry, "confirmed": origin == AssignmentOrigin.confirmed})
    listed = []
    for person_id, entries in members.items():
        person = people[person_id]
        if person.hidden and not include_hidden:
            continue
        record = {"id": person.id, "name": person.name, "faces": entries}
        if include_hidden:
            record["hidden"] = person.hidden
        listed.append(record)
    listed.sort(key=lambda p: (-len(p["faces"]), p["id"]))
    return {"people": listed, "unassigned": unassigned}
