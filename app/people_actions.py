"""The People and References pages' actions, each one engine call in one catalog transaction.

Run in workers; every function takes the open catalog first. The user's word goes through
engine.people.corrections / engine.people.references, so the CLI and the app share one behaviour.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from app.catalog_views import ReferenceRow, _face_row
from engine.catalog.models import Face, Person, Photo
from engine.errors import NoFaceError, UsageError


def _person(session, person_id: int) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise UsageError(f"person {person_id} no longer exists (the list was out of date; it has been refreshed)")
    return person


def _faces(session, face_ids) -> list[Face]:
    return [session.get(Face, int(i)) for i in face_ids if session.get(Face, int(i)) is not None]


def rename(catalog, person_id: int, name: str) -> None:
    from engine.people import corrections

    with catalog.transaction() as session:
        corrections.rename(session, _person(session, person_id), name)


def merge(catalog, into_id: int, other_ids: list[int]) -> None:
    from engine.people import corrections

    with catalog.transaction() as session:
        into = _person(session, into_id)
        corrections.merge(session, into, [_person(session, i) for i in other_ids if i != into_id])


def split(catalog, person_id: int, face_ids: list[int], name: str | None = None) -> int:
    from engine.people import corrections

    with catalog.transaction() as session:
        return corrections.split(session, _person(session, person_id), _faces(session, face_ids), name).id


def reject(catalog, person_id: int, face_ids: list[int]) -> None:
    from engine.people import corrections

    with catalog.transaction() as session:
        corrections.reject(session, _person(session, person_id), _faces(session, face_ids))


def confirm(catalog, person_id: int, face_ids: list[int]) -> None:
    from engine.people import corrections

    with catalog.transaction() as session:
        corrections.confirm(session, _person(session, person_id), _faces(session, face_ids))


def new_person_from(catalog, face_ids: list[int], name: str | None = None) -> int:
    """Unknown faces → a new person (confirmed)."""
    from engine.people import corrections

    with catalog.transaction() as session:
        faces = _faces(session, face_ids)
        if not faces:
            raise UsageError("choose at least one face")
        person = corrections.new_person(session, faces[0].embedding_model, name)
        corrections.confirm(session, person, faces)
        return person.id


def hide(catalog, person_id: int, hidden: bool = True) -> None:
    from engine.people import corrections

    with catalog.transaction() as session:
        corrections.hide(session, _person(session, person_id), hidden)


def references(catalog, person_id: int) -> tuple[list[ReferenceRow], list[ReferenceRow]]:
    """(the person's references: picks or suggestions, every other candidate face of theirs)."""
    from engine.people import references as refs

    with catalog.transaction() as session:
        person = _person(session, person_id)
        chosen = refs.references(session, person)
        suggested = [] if any(c.picked_by_user for c in chosen) else chosen
        if not suggested:
            suggested = refs.suggest(session, person)
        picked = [c for c in chosen if c.picked_by_user]
        return ([ReferenceRow(_face_row(c.face, c.face.photo), True, c.reason, n) for n, c in enumerate(picked)],
                [ReferenceRow(_face_row(c.face, c.face.photo), False, c.reason, n) for n, c in enumerate(suggested)])


def set_references(catalog, person_id: int, face_ids: list[int]) -> None:
    from engine.people import references as refs

    with catalog.transaction() as session:
        refs.set_references(session, _person(session, person_id), _faces(session, face_ids))


def add_reference_file(catalog, person_id: int, path: Path, current_picks: list[int],
                       progress=None, cancel=None) -> int:
    """Any photo file as a reference: scanned into the catalog, its largest face confirmed as the person
    and added to the picks. Returns the face id."""
    from engine.catalog.scanner import scan
    from engine.people import corrections
    from engine.people import references as refs

    path = Path(path).resolve()
    scan(catalog, [path], progress=progress, cancel=cancel, cluster=False)
    with catalog.transaction() as session:
        person = _person(session, person_id)
        photo = session.scalar(select(Photo).where(Photo.path == str(path)))
        faces = [f for f in (photo.faces if photo else []) if f.embedding_model == person.embedding_model]
        if not faces:
            raise NoFaceError("no face was found in this photo, so it can't be a reference", path)
        face = max(faces, key=lambda f: (f.x2 - f.x1) * (f.y2 - f.y1))
        corrections.confirm(session, person, [face])
        picks = _faces(session, current_picks) + [face]
        refs.set_references(session, person, picks)
        return face.id
