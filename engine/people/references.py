"""Reference photos per person: suggested by quality and pose diversity, overridden by the user's picks.

Suggestion is greedy: the best face by quality (engine.people.quality: size, sharpness, frontalness)
comes first; each next pick maximises quality × a diversity bonus for a pose (yaw) unlike the ones
already chosen, and never takes a second face from the same photo content. Confirmed faces are
preferred over machine-assigned ones (a small bonus), since a wrong reference puts the wrong identity
into a restoration. Each suggestion keeps its reason in words ("sharpest frontal face; large face,
sharp"). When the user has picked references, those are the references, and suggestions are not
stored for that person.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine.catalog.models import Assignment, AssignmentOrigin, Face, Person, Photo, PhotoStatus, Reference
from engine.errors import NoFaceError, UsageError

DEFAULT_COUNT = 4
#: faces smaller than this (larger side, pixels) make poor references and are not suggested
MIN_REFERENCE_SIZE = 64
CONFIRMED_BONUS = 0.1
#: how much a new pose (|Δyaw| in eye-distance units, saturating at 0.3) adds to a face's standing
DIVERSITY_WEIGHT = 0.5


@dataclass(frozen=True)
class ReferenceChoice:
    face: Face
    reason: str
    picked_by_user: bool


def _describe(face: Face) -> list[str]:
    from engine.people.quality import FaceQuality

    size = max(face.x2 - face.x1, face.y2 - face.y1)
    q = FaceQuality(size=min(size / 256.0, 1.0), sharpness=face.sharpness, frontalness=face.frontalness,
                    yaw=face.yaw, score=face.quality)
    return [f"{size:.0f} px"] + q.reasons


def _candidates(session: Session, person: Person) -> list[tuple[Face, bool, str]]:
    rows = session.execute(
        select(Face, Assignment.origin, Photo.content_hash)
        .join(Assignment, Assignment.face_id == Face.id)
        .join(Photo, Photo.id == Face.photo_id)
        .where(Assignment.person_id == person.id,
               Assignment.origin.in_((AssignmentOrigin.machine, AssignmentOrigin.confirmed)),
               Photo.status == PhotoStatus.ok)
    ).all()
    return [(face, origin == AssignmentOrigin.confirmed, digest or str(face.photo_id)) for face, origin, digest in rows]


def suggest(session: Session, person: Person, count: int = DEFAULT_COUNT) -> list[ReferenceChoice]:
    """Up to `count` suggested reference faces of `person`, best first, each with its reason."""
    candidates = [c for c in _candidates(session, person)
                  if max(c[0].x2 - c[0].x1, c[0].y2 - c[0].y1) >= MIN_REFERENCE_SIZE]
    chosen: list[ReferenceChoice] = []
    used_content: set[str] = set()
    yaws: list[float] = []
    while candidates and len(chosen) < count:
        def standing(c):
            face, confirmed, _ = c
            base = face.quality + (CONFIRMED_BONUS if confirmed else 0.0)
            if not yaws:
                return base
            novelty = min(min(abs(face.yaw - y) for y in yaws), 0.3) / 0.3
            return base * (1.0 + DIVERSITY_WEIGHT * novelty)

        pool = [c for c in candidates if c[2] not in used_content]
        if not pool:
            break
        best = max(pool, key=lambda c: (standing(c), -c[0].id))
        face, confirmed, digest = best
        details = _describe(face)
        if not chosen:
            lead = "best overall quality"
        elif yaws and min(abs(face.yaw - y) for y in yaws) >= 0.1:
            lead = "adds a different pose"
        else:
            lead = "next best quality"
        if confirmed:
            details.append("confirmed by you")
        chosen.append(ReferenceChoice(face, f"{lead}: {', '.join(details)}", False))
        used_content.add(digest)
        yaws.append(face.yaw)
        candidates.remove(best)
    return chosen


def references(session: Session, person: Person, count: int = DEFAULT_COUNT, refresh: bool = True
               ) -> list[ReferenceChoice]:
    """The person's references: the user's picks if any, else (re)computed suggestions (stored)."""
    picked = session.scalars(select(Reference).where(Reference.person_id == person.id,
                                                     Reference.picked_by_user.is_(True))
                             .order_by(Reference.rank)).all()
    if picked:
        return [ReferenceChoice(r.face, r.reason, True) for r in picked]
    if not refresh:
        stored = session.scalars(select(Reference).where(Reference.person_id == person.id)
                                 .order_by(Reference.rank)).all()
        return [ReferenceChoice(r.face, r.reason, False) for r in stored]
    suggestions = suggest(session, person, count)
    session.execute(delete(Reference).where(Reference.person_id == person.id,
                                            Reference.picked_by_user.is_(False)))
    for rank, choice in enumerate(suggestions):
        session.add(Reference(person_id=person.id, face_id=choice.face.id, rank=rank, picked_by_user=False,
                              reason=choice.reason))
    session.flush()
    return suggestions


def set_references(session: Session, person: Person, faces: Iterable[Face]) -> list[ReferenceChoice]:
    """The user's picks replace every reference of `person` (an empty list returns to suggestions)."""
    faces = list({f.id: f for f in faces}.values())
    from engine.people.corrections import person_of

    for face in faces:
        owner = person_of(session, face)
        if owner is None or owner.id != person.id:
            raise UsageError(f"face #{face.id} ({face.photo.path}) is not in {person.label}; "
                             f"confirm it first (faceme people confirm)")
    session.execute(delete(Reference).where(Reference.person_id == person.id))
    for rank, face in enumerate(faces):
        session.add(Reference(person_id=person.id, face_id=face.id, rank=rank, picked_by_user=True,
                              reason="picked by you"))
    session.flush()
    return references(session, person)


def reference_candidates(session: Session, person: Person, photo_path: str | Path) -> list[Face]:
    """The faces of the catalogued photo at `photo_path` that could be references of `person` (analysed
    with the person's embedding model), left to right. NoFaceError when there is none (or the photo is
    not in the catalog)."""
    path = str(photo_path)
    photo = session.scalar(select(Photo).where(Photo.path == path))
    faces = [f for f in (photo.faces if photo else []) if f.embedding_model == person.embedding_model]
    if not faces:
        raise NoFaceError("no face was found in this photo, so it can't be a reference", path)
    return sorted(faces, key=lambda f: (f.x1, f.y1))


def face_for_reference(session: Session, person: Person, photo_path: str | Path, face_id: int | None = None) -> Face:
    """The face of the catalogued photo at `photo_path` to use as a reference of `person`: its only
    face, or the one chosen (`face_id`). A photo of several people without a choice is refused, naming
    the file and the count: its largest face may well be somebody else."""
    faces = reference_candidates(session, person, photo_path)
    if face_id is not None:
        chosen = [f for f in faces if f.id == face_id]
        if not chosen:
            raise UsageError(f"face #{face_id} is not a face of this photo", photo_path)
        return chosen[0]
    if len(faces) > 1:
        raise UsageError(f"this photo shows {len(faces)} faces; choose which one is {person.label}", photo_path)
    return faces[0]
