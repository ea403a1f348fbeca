"""The user's corrections to people: confirm, reject, merge, split, rename, hide.

Each is a small function on an open session (the caller commits). They write the user's decisions
as assignment rows the clustering treats as hard rules: a confirmed face is never moved by the
machine; a rejection ("not this person") is never removed by the machine, so the face never goes
back there — not after a re-scan, not after the photo moves.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine.catalog.locks import hold_write_lock
from engine.catalog.models import Assignment, AssignmentOrigin, Face, Person, Photo, Reference
from engine.errors import UsageError
from engine.text import noun_for, plural

log = logging.getLogger(__name__)

POSITIVE = (AssignmentOrigin.machine, AssignmentOrigin.confirmed)


def find_person(session: Session, ref: str | int) -> Person:
    """A person by id ("12") or by name (exact, then case-insensitive)."""
    text_ref = str(ref).strip()
    if text_ref.isdigit():
        person = session.get(Person, int(text_ref))
        if person is not None:
            return person
    matches = session.scalars(select(Person).where(Person.name == text_ref)).all()
    if not matches:
        matches = [p for p in session.scalars(select(Person).where(Person.name.is_not(None)))
                   if p.name.casefold() == text_ref.casefold()]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UsageError(f"{len(matches)} people are called {text_ref!r}; use the id "
                         f"({', '.join(str(p.id) for p in matches)})")
    raise UsageError(f"no person {text_ref!r} in the catalog (see `faceme people list`)")


def person_by_id(session: Session, person_id: int) -> Person:
    """The person with this id; a clear error when they are gone (e.g. merged since a view was drawn)."""
    person = session.get(Person, int(person_id))
    if person is None:
        raise UsageError(f"person {person_id} no longer exists (merged or removed since the list was read)")
    return person


def faces_by_id(session: Session, face_ids: Iterable[int]) -> list[Face]:
    """The faces with these ids that still exist, in the given order (a re-scan may have removed some)."""
    faces = (session.get(Face, int(i)) for i in face_ids)
    return [f for f in faces if f is not None]


def person_of(session: Session, face: Face) -> Person | None:
    assignment = session.scalar(select(Assignment).where(Assignment.face_id == face.id,
                                                         Assignment.origin.in_(POSITIVE)))
    return assignment.person if assignment else None


def find_faces(session: Session, ref: str, person: Person | None = None) -> list[Face]:
    """Faces by reference: a face id ("#12" or "12"), or a photo path (all its faces; with `person`,
    the photo's faces in that person when it has any), or "PATH#N" (the photo's N-th face, by size)."""
    text_ref = ref.strip()
    if text_ref.lstrip("#").isdigit() and not os.path.exists(text_ref):
        face = session.get(Face, int(text_ref.lstrip("#")))
        if face is None:
            raise UsageError(f"no face #{text_ref.lstrip('#')} in the catalog")
        return [face]
    path, _, index = text_ref.rpartition("#") if "#" in text_ref else (text_ref, "", "")
    if index and not index.isdigit():
        path, index = text_ref, ""
    photo = session.scalar(select(Photo).where(Photo.path == os.path.abspath(path)))
    if photo is None:
        raise UsageError(f"{path} is not in the catalog (scan its folder first: faceme scan FOLDER)")
    faces = sorted(photo.faces, key=lambda f: (f.x2 - f.x1) * (f.y2 - f.y1), reverse=True)
    if not faces:
        raise UsageError(f"{path}: no face was found in this photo")
    if index:
        n = int(index)
        if not 1 <= n <= len(faces):
            raise UsageError(f"{path} has {plural(len(faces), 'face')}; #{n} does not exist")
        return [faces[n - 1]]
    if person is not None:
        mine = [f for f in faces if (p := person_of(session, f)) is not None and p.id == person.id]
        if mine:
            return mine
    return faces


def _face_list(session: Session, refs: Iterable[str | int | Face], person: Person | None = None) -> list[Face]:
    faces: list[Face] = []
    for ref in refs:
        if isinstance(ref, Face):
            faces.append(ref)
        elif isinstance(ref, int):
            face = session.get(Face, ref)
            if face is None:
                raise UsageError(f"no face #{ref} in the catalog")
            faces.append(face)
        else:
            faces.extend(find_faces(session, ref, person))
    return list({f.id: f for f in faces}.values())


def _check_model(person: Person, faces: Sequence[Face]) -> None:
    for face in faces:
        if face.embedding_model != person.embedding_model:
            raise UsageError(f"face #{face.id} was analysed with {face.embedding_model}, "
                             f"{person.label} with {person.embedding_model}; they can't be compared")


def _clear_positive(session: Session, face: Face) -> None:
    session.execute(delete(Assignment).where(Assignment.face_id == face.id, Assignment.origin.in_(POSITIVE)))


def confirm(session: Session, person: Person, faces: Iterable[str | int | Face]) -> list[Face]:
    """These faces are this person: moved there if needed, and never moved by the machine again."""
    hold_write_lock(session)  # what we read stays true until we write (a clustering may be running)
    faces = _face_list(session, faces, person)
    _check_model(person, faces)
    for face in faces:
        _clear_positive(session, face)
        session.execute(delete(Assignment).where(Assignment.face_id == face.id,
                                                 Assignment.person_id == person.id))
        session.add(Assignment(face_id=face.id, person_id=person.id, origin=AssignmentOrigin.confirmed))
    session.flush()
    return faces


def reject(session: Session, person: Person, faces: Iterable[str | int | Face]) -> list[Face]:
    """These faces are not this person: taken out (to the unknown bucket) and kept out for good."""
    hold_write_lock(session)  # what we read stays true until we write (a clustering may be running)
    faces = _face_list(session, faces, person)
    for face in faces:
        session.execute(delete(Assignment).where(Assignment.face_id == face.id,
                                                 Assignment.person_id == person.id))
        session.add(Assignment(face_id=face.id, person_id=person.id, origin=AssignmentOrigin.rejected))
        session.execute(delete(Reference).where(Reference.face_id == face.id, Reference.person_id == person.id))
        face.clustered = False  # the next clustering may find it a better person
    session.flush()
    return faces


def rename(session: Session, person: Person, name: str) -> Person:
    name = name.strip()
    if not name:
        raise UsageError("a person's name can't be empty")
    person.name = name
    session.flush()
    return person


def namesakes(session: Session, person: Person) -> list[Person]:
    """The other people with the same name (names may repeat: two Sams; or one person split in two, whom the
    user may want to merge)."""
    if not person.name:
        return []
    return list(session.scalars(select(Person).where(Person.name == person.name, Person.id != person.id)
                                .order_by(Person.id)))


def hide(session: Session, person: Person, hidden: bool = True) -> Person:
    """Hidden people (strangers in the background) stay out of lists; their faces keep grouping there."""
    person.hidden = hidden
    session.flush()
    return person


def merge(session: Session, into: Person, others: Iterable[Person]) -> Person:
    """Fold `others` into `into`: their faces (confirmed stay confirmed), rejections and references."""
    hold_write_lock(session)  # what we read stays true until we write (a clustering may be running)
    for other in others:
        if other.id == into.id:
            continue
        if other.embedding_model != into.embedding_model:
            raise UsageError(f"{other.label} and {into.label} were grouped by different face models ({other.embedding_model}, "
                             f"{into.embedding_model}), left by an older version; move the whole album to one model "
                             "with `faceme catalog reanalyse --model dlib|antelopev2|buffalo_l`, then merge them")
        into_faces = {a.face_id: a for a in session.scalars(select(Assignment).where(Assignment.person_id == into.id))}
        for assignment in session.scalars(select(Assignment).where(Assignment.person_id == other.id)).all():
            existing = into_faces.get(assignment.face_id)
            if existing is None:
                assignment.person_id = into.id
                continue
            # both had a row for this face: the user's positive word beats a rejection, which beats
            # a machine guess
            rank = {AssignmentOrigin.confirmed: 2, AssignmentOrigin.rejected: 1, AssignmentOrigin.machine: 0}
            origin = assignment.origin
            session.delete(assignment)
            session.flush()  # first: the face may have only one positive row at any moment
            if rank[origin] > rank[existing.origin]:
                existing.origin = origin
        existing_refs = {r.face_id for r in into.references}
        for reference in session.scalars(select(Reference).where(Reference.person_id == other.id)).all():
            if reference.face_id in existing_refs:
                session.delete(reference)
            else:
                reference.person_id = into.id
        if not into.name and other.name:
            into.name = other.name
        session.flush()
        session.expire(other)
        session.delete(other)
    session.flush()
    session.expire(into)
    return into


def split(session: Session, person: Person, faces: Iterable[str | int | Face], name: str | None = None) -> Person:
    """Move the chosen faces out of `person` into a new person (confirmed there, rejected from the old one)."""
    hold_write_lock(session)  # what we read stays true until we write (a clustering may be running)
    faces = _face_list(session, faces, person)
    members = {a.face_id for a in session.scalars(select(Assignment).where(
        Assignment.person_id == person.id, Assignment.origin.in_(POSITIVE)))}
    outside = [f.id for f in faces if f.id not in members]
    if outside:
        raise UsageError(f"{noun_for(len(outside), 'face')} {', '.join('#' + str(i) for i in outside)} "
                         f"{'is' if len(outside) == 1 else 'are'} not in {person.label}")
    if not faces:
        raise UsageError("choose at least one face to split off")
    new_person = Person(name=name.strip() if name else None, embedding_model=person.embedding_model)
    session.add(new_person)
    session.flush()
    for face in faces:
        _clear_positive(session, face)
        session.add(Assignment(face_id=face.id, person_id=person.id, origin=AssignmentOrigin.rejected))
        session.add(Assignment(face_id=face.id, person_id=new_person.id, origin=AssignmentOrigin.confirmed))
        session.execute(delete(Reference).where(Reference.face_id == face.id, Reference.person_id == person.id))
    session.flush()
    return new_person


def new_person(session: Session, model: str, name: str | None = None) -> Person:
    person = Person(name=name, embedding_model=model)
    session.add(person)
    session.flush()
    return person
