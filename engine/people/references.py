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


def person_faces(session: Session, person: Person) -> list[tuple[Face, bool, str]]:
    """(face, confirmed, photo content) of each face of `person` in a readable photo."""
    rows = session.execute(
        select(Face, Assignment.origin, Photo.content_hash)
        .join(Assignment, Assignment.face_id == Face.id)
        .join(Photo, Photo.id == Face.photo_id)
        .where(Assignment.person_id == person.id,
               Assignment.origin.in_((AssignmentOrigin.machine, AssignmentOrigin.confirmed)),
               Photo.status == PhotoStatus.ok)
    ).all()
    return [(face, origin == AssignmentOrigin.confirmed, digest or str(face.photo_id)) for face, origin, digest in rows]


def load_photos(session: Session, faces: list[Face]) -> None:
    """The faces' photos in one query (in the session, so `face.photo` needs none per face)."""
    ids = sorted({f.photo_id for f in faces})
    for start in range(0, len(ids), 500):
        session.scalars(select(Photo).where(Photo.id.in_(ids[start:start + 500]))).all()


def suggest(session: Session, person: Person, count: int = DEFAULT_COUNT) -> list[ReferenceChoice]:
    """Up to `count` suggested reference faces of `person`, best first, each with its reason."""
    candidates = [c for c in person_faces(session, person)
                  if max(c[0].x2 - c[0].x1, c[0].y2 - c[0].y1) >= MIN_REFERENCE_SIZE]
    return choose_references(candidates, count)


def choose_references(candidates: list[tuple[Face, bool, str]], count: int, nearness=None, said=None
                      ) -> list[ReferenceChoice]:
    """The greedy choice of `suggest` among `candidates` (face, confirmed, content): quality, a new pose,
    one face per photo content. `nearness(face)` (0..1] weighs each face's standing (references by
    age); `said(face)` begins its reason."""
    candidates = list(candidates)
    chosen: list[ReferenceChoice] = []
    used_content: set[str] = set()
    yaws: list[float] = []
    while candidates and len(chosen) < count:
        def standing(c):
            face, confirmed, _ = c
            base = face.quality + (CONFIRMED_BONUS if confirmed else 0.0)
            if nearness is not None:
                base *= nearness(face)
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
        if said is not None:
            lead = f"{said(face)}; {lead}"
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


def set_references(session: Session, person: Person, faces: Iterable[Face], era: str | None = None
                   ) -> list[ReferenceChoice]:
    """The user's picks replace every reference of `person` (an empty list returns to suggestions).
    With `era` ("child", "teen", "adult", a year such as "1978"), they replace only that era's picks,
    and the other eras' picks stay: the user curates each era's references on their own."""
    faces = list({f.id: f for f in faces}.values())
    from engine.people.corrections import person_of

    for face in faces:
        owner = person_of(session, face)
        if owner is None or owner.id != person.id:
            raise UsageError(f"face #{face.id} ({face.photo.path}) is not in {person.label}; "
                             f"confirm it first (faceme people confirm)")
    if era is None:
        session.execute(delete(Reference).where(Reference.person_id == person.id))
        first_rank = 0
    else:
        # the machine's suggestions go (picks are now the references), and this era's earlier picks
        session.execute(delete(Reference).where(Reference.person_id == person.id,
                                                (Reference.picked_by_user.is_(False)) | (Reference.era == era)))
        ids = {f.id for f in faces}
        session.execute(delete(Reference).where(Reference.person_id == person.id, Reference.face_id.in_(ids)))
        session.flush()
        first_rank = 1 + max(session.scalars(select(Reference.rank).where(Reference.person_id == person.id)),
                             default=-1)
    for rank, face in enumerate(faces, start=first_rank):
        session.add(Reference(person_id=person.id, face_id=face.id, rank=rank, picked_by_user=True,
                              reason="picked by you" + (f" for {era}" if era else ""), era=era))
    session.flush()
    return references(session, person)


@dataclass(frozen=True)
class ReferencesByAge:
    """The references chosen for one face by age: `choices` (best first), the face's time (`target`),
    whether any is within WITHIN_YEARS of it (`within`), and the plan's sentence about them (`note`)."""

    choices: list[ReferenceChoice]
    target: object  # engine.people.ages.FaceTime
    within: bool
    note: str

    @property
    def label(self) -> str:
        return self.target.label()


def references_for_face(session: Session, person: Person, face: Face, count: int = DEFAULT_COUNT
                        ) -> ReferencesByAge | None:
    """The references of `person` nearest in age to `face` (engine.people.ages): among the user's picks
    when there are any, else among the person's faces large enough to be references, those within
    WITHIN_YEARS of the face, chosen as `suggest` does with nearer faces weighing more; when none is
    that near, the closest ones, and the note says so. None when age can't come into it (the face's
    time is unknown, or no reference's time can be compared with it): the person's references then, as
    `engine.restore.album.person_identity` gives them."""
    from engine.people.ages import WITHIN_YEARS, person_times

    members = person_faces(session, person)
    load_photos(session, [c[0] for c in members])
    times = person_times(person, [c[0] for c in members] + [face])
    target = times.of(face)
    if not target.known:
        return None
    member_ids = {c[0].id: c for c in members}
    picked = session.scalars(select(Reference).where(Reference.person_id == person.id,
                                                     Reference.picked_by_user.is_(True))
                             .order_by(Reference.rank)).all()
    picked = [r for r in picked if r.face_id in member_ids]
    if picked:
        pool = [member_ids[r.face_id] for r in picked]
    else:
        pool = [c for c in members if max(c[0].x2 - c[0].x1, c[0].y2 - c[0].y1) >= MIN_REFERENCE_SIZE]
    distances = {c[0].id: d for c in pool if (d := target.distance(times.of(c[0]))) is not None}
    if not distances:
        return None
    closest = min(distances.values())
    within = closest <= WITHIN_YEARS
    reach = WITHIN_YEARS if within else closest + WITHIN_YEARS / 2
    band = [c for c in pool if c[0].id in distances and distances[c[0].id] <= reach]

    def said(f: Face) -> str:
        gap = distances[f.id]
        return f"{times.of(f).how}, " + ("the same year" if gap < 0.5 else f"{_years(gap)} from {target.label()}")

    if picked:
        era = {r.face_id: r.era for r in picked}
        chosen = sorted(band, key=lambda c: (distances[c[0].id], c[0].id))[:max(count, 1)]
        choices = [ReferenceChoice(c[0], f"{said(c[0])}; picked by you" + (f" for {era[c[0].id]}" if era[c[0].id]
                                                                             else ""), True) for c in chosen]
    else:
        choices = choose_references(band, count, said=said,
                                    nearness=lambda f: 1.0 - 0.5 * min(distances[f.id], reach) / max(reach, 1.0))
    used = ", ".join(f"#{c.face.id} ({times.of(c.face).label()})" for c in choices)
    if within:
        note = f"references near {target.label()} ({target.how}): {used}"
    else:
        nearest = min(choices, key=lambda c: distances[c.face.id])
        note = (f"no reference of {person.label} within {WITHIN_YEARS:.0f} years of {target.label()}; used the "
                f"closest, from {times.of(nearest.face).label()}: {used}")
    if target.contradiction:
        note += f" (note: {target.contradiction})"
    return ReferencesByAge(choices, target, within, note)


def _years(distance: float) -> str:
    return f"{distance:.0f} year" + ("" if round(distance) == 1 else "s")


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
