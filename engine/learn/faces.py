"""Which of a person's album faces a learning uses: a fit set, and a held-out set for the check.

The candidates are the person's faces (confirmed or grouped by the album, never rejected ones) in
readable photos, one per photo content, large enough to be references (engine.people.references:
`MIN_REFERENCE_SIZE`), ranked by the reference-quality rules (sharp, large, frontal, with a bonus for a
pose unlike those already taken and for the user's confirmation: `engine.people.references.suggest`).
At least `MIN_FACES` are needed: `held_out_count` of them (2, or 3 from 12 faces on) are held out for
the check and never fitted on; the rest (at most `MAX_FIT`, best first) are the fit set. The person's
references are never held out (the references-only restoration would then have seen the face it is
judged on); the held-out faces are spread over the ranking (not all the best, not all the worst), so
the check judges faces like the ones restored later. The choice is a function of the catalog alone:
the same album gives the same split. The user may leave faces out (`without`).

Each face is used as the engine restores it: aligned to the 512 FFHQ template from its 5 landmarks
(engine.faces.align), cut from its photo read once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from engine.errors import UsageError

#: fewest usable faces a learning needs (the check takes 2–3, the fit the rest)
MIN_FACES = 8
#: most faces a fit uses (best first): more add time, little identity
MAX_FIT = 40


class NotEnoughFacesError(UsageError):
    """The person has too few usable faces to learn from; `found` and `needed` say how many."""

    def __init__(self, message: str, found: int, needed: int):
        self.found, self.needed = found, needed
        super().__init__(message)


@dataclass(frozen=True)
class LearningFace:
    """One album face a learning uses: where it is, and its 5 landmarks (photo pixels)."""

    face_id: int
    photo_path: Path
    content_hash: str | None
    box: tuple[float, float, float, float]
    landmarks: tuple[tuple[float, float], ...]
    quality: float


@dataclass(frozen=True)
class FaceSplit:
    """A person's learning faces: `fit` (fitted on), `held_out` (the check restores these), `others`
    (usable faces in neither: the check scores against them too)."""

    person_id: int
    person_name: str
    fit: tuple[LearningFace, ...]
    held_out: tuple[LearningFace, ...]
    others: tuple[LearningFace, ...] = ()

    @property
    def key(self) -> str:
        """A name for the faces (ids, photo contents, boxes) of both sets: a learning is keyed by it."""
        digest = hashlib.sha256()
        for label, faces in (("fit", self.fit), ("held_out", self.held_out)):
            digest.update(label.encode())
            for f in faces:
                digest.update(f"|{f.face_id}:{f.content_hash}:{','.join(f'{v:.1f}' for v in f.box)}".encode())
        return digest.hexdigest()


def held_out_count(usable: int) -> int:
    return 3 if usable >= 12 else 2


def learning_face(face) -> LearningFace:
    """A catalog face (engine.catalog.models.Face) as a learning uses it."""
    return LearningFace(face.id, Path(face.photo.path), face.photo.content_hash, tuple(float(v) for v in face.box),
                        tuple((float(x), float(y)) for x, y in np.asarray(face.landmarks, np.float64).reshape(5, 2)),
                        float(face.quality))


def choose_faces(session: Session, person, reference_face_ids: Iterable[int] = (),
                 without: Iterable[int] = ()) -> FaceSplit:
    """The split of `person`'s faces (see the module's rules). `reference_face_ids`: the person's current
    references (never held out); `without`: face ids the user left out. NotEnoughFacesError with fewer
    than MIN_FACES usable faces."""
    from engine.people.references import MIN_REFERENCE_SIZE, suggest

    left_out = set(without)
    ranked = [c.face for c in suggest(session, person, count=10_000) if c.face.id not in left_out]
    if len(ranked) < MIN_FACES:
        raise NotEnoughFacesError(
            f"{person.label} has {len(ranked)} usable face{'s' if len(ranked) != 1 else ''} (large enough, "
            f"{MIN_REFERENCE_SIZE} px or more, one per photo); learning needs at least {MIN_FACES}: "
            f"{max(MIN_FACES - len(ranked), 1)} more (confirm more of their faces, or scan more photos of them)",
            found=len(ranked), needed=MIN_FACES)
    references = set(reference_face_ids)
    candidates = [f for f in ranked if f.id not in references]
    k = held_out_count(len(ranked))
    # spread over the ranking: positions of the middles of k equal parts
    positions = sorted({min(int((i + 0.5) * len(candidates) / k), len(candidates) - 1) for i in range(k)})
    held = [candidates[p] for p in positions]
    held_ids = {f.id for f in held}
    rest = [f for f in ranked if f.id not in held_ids]
    fit, others = rest[:MAX_FIT], rest[MAX_FIT:]
    return FaceSplit(person.id, person.label, tuple(learning_face(f) for f in fit),
                     tuple(learning_face(f) for f in held), tuple(learning_face(f) for f in others))


def aligned_crops(faces: Sequence[LearningFace], size: int = 512) -> list[np.ndarray]:
    """Each face aligned to the FFHQ template at `size` px as the engine aligns it for restoration (RGB
    uint8); each photo read once."""
    from engine.faces.align import align_face, warp_to_crop
    from engine.imageio import read_image

    pixels: dict[Path, np.ndarray] = {}
    crops = []
    for face in faces:
        if face.photo_path not in pixels:
            image = read_image(face.photo_path).pixels
            image = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
            pixels[face.photo_path] = np.ascontiguousarray(image)
        crops.append(warp_to_crop(pixels[face.photo_path], align_face(np.asarray(face.landmarks), size=size)))
    return crops
