"""The album's plan for one photo: its catalog faces with their people exactly as the user left them.

    confirmed or machine-assigned to a person with references  -> restored with that person's identity
      (when the face's time is known — its photo's date, its apparent age — with the person's references
      nearest in age to it, engine.people.references.references_for_face; else their references)
    assigned to a person without references, hidden, or rejected -> the `unmatched` rule (blind / skip)
    in no person                                                 -> the `unmatched` rule
    found only by the restore detector (not in the catalog)      -> the `unmatched` rule, reported as such

A face rejected from a person ("not this person") is never restored with that person's identity, even
if an assignment to them remained. When the restore detector's faces are given (`refine`), each
catalog face takes the geometry of the detected face it overlaps most (intersection over union ≥
`PAIR_IOU`); its person never changes. A catalog face the detector misses keeps the catalog's geometry,
so a photo the scan says has faces is never skipped for "no face found".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.catalog.models import Assignment, AssignmentOrigin, Face as FaceRow, Person, Photo
from engine.errors import UsageError
from engine.faces.types import Face, pair_by_overlap
from engine.people.references import references_for_face
from engine.restore.options import RestoreOptions
from engine.restore.plan import (CatalogReference, Identity, PlannedFace, RestorationPlan, limit_faces, too_small,
                                 unmatched)


def person_identity(session: Session, person: Person) -> Identity | None:
    """The identity of an album person: their references (the user's picks, else the stored suggestions,
    else fresh ones) among the faces that are still theirs, or None when they have none."""
    from engine.people.references import references, suggest

    # a reference whose face has since moved to someone else (or been rejected) is not this person's
    members = set(session.scalars(select(Assignment.face_id).where(
        Assignment.person_id == person.id,
        Assignment.origin.in_((AssignmentOrigin.machine, AssignmentOrigin.confirmed)))))
    chosen = [c for c in references(session, person, refresh=False) if c.face.id in members]
    if not chosen:  # no references yet, or the picked ones went elsewhere: the album's suggestions
        chosen = [c for c in suggest(session, person) if c.face.id in members]
    if not chosen:
        return None
    faces = tuple(CatalogReference(c.face.id, Path(c.face.photo.path),
                                   c.face.photo.content_hash, tuple(float(v) for v in c.face.box))
                  for c in chosen)
    return Identity(f"person:{person.id}", person.label, person.id, faces=faces)


def _catalog_face(row: FaceRow) -> Face:
    return Face(box=tuple(float(v) for v in row.box), score=float(row.score),
                landmarks=np.asarray(row.landmarks, np.float32).reshape(5, 2),
                embedding=row.vector.copy(), embedding_model=row.embedding_model)


def album_people(session: Session, face_ids: Sequence[int]) -> dict[int, tuple[Person | None, bool, set[int]]]:
    """{face id: (its person — confirmed or machine-assigned — or None, whether the user confirmed it,
    ids of the people it is not)}."""
    out: dict[int, tuple[Person | None, bool, set[int]]] = {i: (None, False, set()) for i in face_ids}
    rows = session.execute(select(Assignment).where(Assignment.face_id.in_(list(face_ids)))).scalars()
    for a in rows:
        person, confirmed, rejected = out[a.face_id]
        if a.origin == AssignmentOrigin.rejected:
            rejected.add(a.person_id)
        elif person is None or a.origin == AssignmentOrigin.confirmed:
            person, confirmed = a.person, a.origin == AssignmentOrigin.confirmed
        out[a.face_id] = (person, confirmed, rejected)
    return out


def plan_from_album(session: Session, photo_id: int, options: RestoreOptions,
                    refine: Sequence[Face] | None = None) -> RestorationPlan:
    """The plan of the catalogued photo `photo_id` (see the module's rules).

    `refine`: faces the restore detector found in the photo (geometry only)."""
    photo = session.get(Photo, photo_id)
    if photo is None:
        raise UsageError(f"photo {photo_id} is not in the catalog (removed since it was listed)")
    rows = sorted(photo.faces, key=lambda f: (f.x1, f.y1))
    people = album_people(session, [r.id for r in rows])
    found = list(refine or [])
    pairs = pair_by_overlap([r.box for r in rows], [f.box for f in found])
    identities: dict[str, Identity] = {}
    planned: list[PlannedFace] = []
    for i, row in enumerate(rows):
        face = found[pairs[i]] if i in pairs else _catalog_face(row)
        note = "" if refine is None or i in pairs else \
            " (the restore detector did not find this face; the album's outline is used)"
        person, confirmed, rejected = people[row.id]
        small = too_small(face, options)
        if small:
            planned.append(PlannedFace(face, "skipped", small + note,
                                       person.id if person else None, person.label if person else None,
                                       catalog_face_id=row.id))
            continue
        if person is None:
            action, reason = unmatched("in no person of the album", options)
            planned.append(PlannedFace(face, action, reason + note, catalog_face_id=row.id))
            continue
        if person.id in rejected:  # an assignment left over beside "not this person": the user wins
            action, reason = unmatched(f"you said this is not {person.label}", options)
            planned.append(PlannedFace(face, action, reason + note, catalog_face_id=row.id))
            continue
        if person.hidden:
            action, reason = unmatched(f"{person.label} is hidden", options)
            planned.append(PlannedFace(face, action, reason + note, person.id, person.label, catalog_face_id=row.id))
            continue
        how = "confirmed by you" if confirmed else "grouped by the album"
        by_age = references_for_face(session, person, row)
        if by_age is not None and by_age.choices:  # a time is known: the references nearest in age
            key = f"person:{person.id}@{by_age.label}"
            identities.setdefault(key, Identity(key, person.label, person.id, faces=tuple(
                CatalogReference(c.face.id, Path(c.face.photo.path), c.face.photo.content_hash,
                                 tuple(float(v) for v in c.face.box)) for c in by_age.choices)))
            planned.append(PlannedFace(face, "restored", f"{person.label} ({how}); {by_age.note}" + note, person.id,
                                       person.label, key, catalog_face_id=row.id))
            continue
        key = f"person:{person.id}"
        if key not in identities:
            identity = person_identity(session, person)
            if identity is not None:
                identities[key] = identity
        if key not in identities:
            action, reason = unmatched(f"{person.label} has no reference photos", options)
            planned.append(PlannedFace(face, action, reason + note, person.id, person.label, catalog_face_id=row.id))
            continue
        planned.append(PlannedFace(face, "restored", f"{person.label} ({how})" + note, person.id, person.label,
                                   key, catalog_face_id=row.id))
    paired = set(pairs.values())
    for j, face in enumerate(found):
        if j in paired:
            continue
        why = "not in the album (found only by the restore detector)"
        small = too_small(face, options)
        if small:
            planned.append(PlannedFace(face, "skipped", f"{small}; {why}"))
            continue
        action, reason = unmatched(why, options)
        planned.append(PlannedFace(face, action, reason))
    return RestorationPlan(limit_faces(planned, options), identities, photo.path)


def known_identities(session: Session) -> list[Identity]:
    """Every visible person who has references, as identities (by id; names may repeat)."""
    identities = []
    for person in session.scalars(select(Person).where(Person.hidden.is_(False)).order_by(Person.id)):
        identity = person_identity(session, person)
        if identity is not None:
            identities.append(identity)
    return identities


def album_photo_id(session: Session, path: str | Path) -> int | None:
    """The id of the catalogued, readable photo at `path` (None: a photo outside the album)."""
    from engine.catalog.models import PhotoStatus

    for candidate in dict.fromkeys((str(path), str(Path(path).absolute()))):
        photo = session.scalar(select(Photo).where(Photo.path == candidate))
        if photo is not None and photo.status == PhotoStatus.ok:
            return photo.id
    return None
