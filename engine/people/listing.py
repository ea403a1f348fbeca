"""People as plain data, read through the session given: `people_listing` for `faceme people list
--json`; `people_cards`, `reference_rows` and `known_people` (small dataclasses) for the GUI's People,
References and Restore views."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.catalog.models import Assignment, AssignmentOrigin, Face, Person, Photo, PhotoStatus, Reference


def _box(face: Face) -> list[float]:
    return [round(face.x1, 1), round(face.y1, 1), round(face.x2, 1), round(face.y2, 1)]


def people_listing(session: Session, include_hidden: bool = False, model: str | None = None,
                   with_ids: bool = False) -> dict:
    """{"people": [{"id", "name", "faces": [{"photo", "box", "confirmed"}]}], "unassigned": [{"photo", "box"}]}

    Only faces of photos present on disk at the last scan (not missing, not unreadable). People are
    ordered by their number of faces, largest first. `with_ids` adds each face's "face_id" (the id the
    CLI's people commands take as PHOTO#N's alternative; `faceme people list` and its --json carry it).
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


# --- the GUI's views: small typed rows, no ORM objects (safe to hand to another thread) -----------

@dataclass(frozen=True)
class FaceRow:
    """One face as a view shows it: where it is and how good a reference it would make."""

    id: int
    photo_id: int
    photo: Path
    thumbnail: Path | None
    box: tuple[float, float, float, float]
    image_size: tuple[int, int] | None  # (width, height) of the oriented photo
    quality: float
    confirmed: bool


@dataclass
class PersonCard:
    """A person with their faces (best first), or the unknown bucket (`id` None: faces in nobody)."""

    id: int | None
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


@dataclass(frozen=True)
class KnownPerson:
    """A visible person with references, as restoration needs them: reference photo paths and boxes."""

    id: int
    name: str  # unique among the people returned together (a repeated label gets the id appended)
    references: list[tuple[Path, tuple[float, float, float, float]]]


def face_row(face: Face, photo: Photo, confirmed: bool = False) -> FaceRow:
    size = (photo.width, photo.height) if photo.width and photo.height else None
    return FaceRow(face.id, photo.id, Path(photo.path), Path(photo.thumbnail) if photo.thumbnail else None,
                   face.box, size, float(face.quality or 0.0), confirmed)


def people_cards(session: Session, include_hidden: bool = False,
                 faces_per_person: int | None = None) -> list[PersonCard]:
    """People with faces (most faces first, then by name) and, last, the unknown bucket of faces in no
    person. Faces of photos missing from disk are left out; a rejected face is not in that person.
    `faces_per_person` limits each card's `faces` (the count and cover still cover all of them)."""
    people = {p.id: p for p in session.scalars(select(Person))}
    members: dict[int, list[tuple[Face, Photo, bool]]] = defaultdict(list)
    assigned: set[int] = set()
    query = (select(Assignment.person_id, Assignment.origin, Face, Photo)
             .join(Face, Assignment.face_id == Face.id).join(Photo, Face.photo_id == Photo.id)
             .where(Assignment.origin != AssignmentOrigin.rejected, Photo.status != PhotoStatus.missing))
    for person_id, origin, face, photo in session.execute(query):
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
        faces = [face_row(f, p, c) for f, p, c in rows]
        cards.append(PersonCard(pid, person.label, bool(person.hidden), len(faces), faces[0],
                                faces if faces_per_person is None else faces[:faces_per_person],
                                refs.get(pid, 0), picked.get(pid, 0)))
    cards.sort(key=lambda c: (-c.face_count, c.name))
    if unknown:
        faces = [face_row(f, p) for f, p in sorted(unknown, key=lambda m: -(m[0].quality or 0.0))]
        cards.append(PersonCard(None, "Unknown", False, len(faces), faces[0],
                                faces if faces_per_person is None else faces[:faces_per_person]))
    return cards


def reference_rows(session: Session, person: Person) -> tuple[list[ReferenceRow], list[ReferenceRow]]:
    """(the user's picks, the suggestions) for the References view.

    Without picks the suggestions are the person's references (recomputed and stored, see
    engine.people.references.references); with picks they are fresh suggestions to choose more from.
    """
    from engine.people.references import references, suggest

    chosen = references(session, person)
    picked = [c for c in chosen if c.picked_by_user]
    suggested = suggest(session, person) if picked else chosen
    return ([ReferenceRow(face_row(c.face, c.face.photo), True, c.reason, n) for n, c in enumerate(picked)],
            [ReferenceRow(face_row(c.face, c.face.photo), False, c.reason, n) for n, c in enumerate(suggested)])


def known_people(session: Session) -> list[KnownPerson]:
    """Every visible person who has references (the user's picks, else the stored suggestions, else
    fresh ones, not stored), by id; names are made unique for engine.restore."""
    from engine.people.references import references, suggest

    people: list[KnownPerson] = []
    used: set[str] = set()
    for person in session.scalars(select(Person).where(Person.hidden.is_(False)).order_by(Person.id)):
        chosen = references(session, person, refresh=False) or suggest(session, person)
        if not chosen:
            continue
        name = person.label if person.label not in used else f"{person.label} ({person.id})"
        used.add(name)
        people.append(KnownPerson(person.id, name, [(Path(c.face.photo.path), c.face.box) for c in chosen]))
    return people
