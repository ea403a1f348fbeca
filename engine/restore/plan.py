"""A restoration plan: for each face of a photo, where it is, whose it is, and what to do with it.

The plan is the unit of work of `engine.restore.photo.restore_plan`, which never decides who is who.
Two planners make plans:

- `engine.restore.album.plan_from_album`: the catalog's faces of a photo with their people exactly as
  the user left them (batch, GUI for album photos);
- `plan_ad_hoc` (here): a photo outside any album and people given as reference photos (the
  `faceme restore` command, a photo dropped on the window): faces found by the restore detector
  (detector sizes 640 → 256, as for references) and matched by embedding similarity.

Both share `decide`: too small → left alone; a person with an identity → restored with it; otherwise
the `unmatched` option: restored blind or left alone, never with somebody's identity.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from engine.errors import UsageError
from engine.faces.types import Face
from engine.restore.options import RestoreOptions
from engine.text import plural

if TYPE_CHECKING:
    from engine.restore.identity_check import IdentityVerdict, Try

log = logging.getLogger(__name__)

Action = Literal["restored", "blind", "skipped"]

#: how far around a reference face its crop reaches (in face sizes beyond the box on each side): the one
#: margin rule of reference crops, whether cut from an album photo or from a photo the user gave
REFERENCE_MARGIN = 0.5


def crop_around_face(pixels: np.ndarray, box: tuple[float, float, float, float],
                     margin: float = REFERENCE_MARGIN) -> np.ndarray:
    """The region of `pixels` around one face (a reference image in which that face is the largest)."""
    h, w = pixels.shape[:2]
    x1, y1, x2, y2 = box
    reach = margin * max(x2 - x1, y2 - y1)
    left, top = int(max(0, x1 - reach)), int(max(0, y1 - reach))
    right, bottom = int(min(w, x2 + reach)), int(min(h, y2 + reach))
    return np.ascontiguousarray(pixels[top:bottom, left:right])


@dataclass(frozen=True)
class CatalogReference:
    """One reference face of an album person: where it is (the crop is cut from it in memory)."""

    face_id: int
    photo_path: Path
    content_hash: str | None
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Identity:
    """Whose identity a face is restored with. `key` is unique within a plan ("person:12" for an album
    person, "given:0" for the first person given ad hoc): two people may share a name.

    An album person's references are `faces` (catalog faces, tokens cached in the catalog); a person
    given ad hoc has `images` (files or RGB arrays)."""

    key: str
    name: str
    person_id: int | None = None
    faces: tuple[CatalogReference, ...] = ()
    images: tuple[Path | np.ndarray, ...] = ()


@dataclass(frozen=True)
class PlannedFace:
    """One face of the plan. `face`: geometry (box + 5 landmarks, photo pixels); `person_id` /
    `person_name`: whose face it is (None: nobody known); `identity`: the key of the identity it is
    restored with (None for blind and skipped faces); `catalog_face_id`: the album's face (None when
    the face was found only at restore time); `similarity`: ad-hoc matching's best score; `seed`: the
    seed it was restored with (set by the restoration; with best of N, the kept try's); `check`: the
    identity check of the restored face (engine.restore.identity_check.IdentityVerdict, set by the
    restoration when the check runs); `tries`: every try of best of N (seed and score), in order."""

    face: Face
    action: Action
    reason: str
    person_id: int | None = None
    person_name: str | None = None
    identity: str | None = None
    catalog_face_id: int | None = None
    similarity: float | None = None
    seed: int | None = None
    check: IdentityVerdict | None = None
    tries: tuple[Try, ...] = ()
    #: which identity a restored face used: "references", or a learned one ("fitted v2", "adapter v1":
    #: engine.learn), set by the restoration (None: blind, skipped, or not restored yet)
    identity_used: str | None = None

    @property
    def person(self) -> str | None:
        """The person's name (display only: people are told apart by `person_id` / `identity`)."""
        return self.person_name

    @property
    def box(self) -> tuple[float, float, float, float]:
        return self.face.box


@dataclass
class RestorationPlan:
    faces: list[PlannedFace]
    identities: dict[str, Identity] = field(default_factory=dict)
    source: str | None = None


@dataclass(frozen=True)
class PersonReferences:
    """A person given ad hoc and their reference photos: paths to image files (or RGB uint8 arrays, e.g.
    crops the GUI already holds). A file must show one face; an array's largest face is used.
    `person_id` ties the person to an album person when there is one."""

    name: str
    images: list[Path | np.ndarray]
    person_id: int | None = None


def too_small(face: Face, options: RestoreOptions) -> str | None:
    if face.size < options.min_face_size:
        return (f"too small to restore ({face.size:.0f} px < {options.min_face_size:.0f} px: "
                f"the model would invent the face)")
    return None


def unmatched(why: str, options: RestoreOptions) -> tuple[Action, str]:
    """What the `unmatched` option does with a face restored with nobody's identity."""
    if options.unmatched == "skip":
        return "skipped", f"{why}; unmatched faces are left alone"
    return "blind", f"{why}; restored without identity"


def limit_faces(faces: list[PlannedFace], options: RestoreOptions) -> list[PlannedFace]:
    """`max_faces`: only the largest faces that would be restored stay restored."""
    if options.max_faces is None:
        return faces
    chosen = sorted((i for i, f in enumerate(faces) if f.action != "skipped"),
                    key=lambda i: faces[i].face.size, reverse=True)
    faces = list(faces)
    for i in chosen[options.max_faces:]:
        f = faces[i]
        faces[i] = replace(f, action="skipped", identity=None,
                           reason=f"{f.reason}; not restored (limit of {plural(options.max_faces, 'face')} per photo)")
    return faces


#: Detector input sizes an InsightFace analyser is tried at in turn until it finds a face (640 → 256).
DETECTION_SIZES = tuple(range(640, 255, -64))


def detect_faces(analyzer, pixels: np.ndarray, embed: bool = True) -> list[Face]:
    """Every face the analyser finds; an InsightFace analyser is retried at smaller detector inputs
    (640 → 256) until it finds one, as references are (close-ups are missed at 640). `embed` False:
    geometry only (no embedding computed), for callers that never match the faces."""
    image = np.ascontiguousarray(pixels[..., :3])
    options = {} if embed else {"embed": False}
    if hasattr(analyzer, "detect_at_sizes"):  # the photo converted for the detector once, not per size
        size, faces = analyzer.detect_at_sizes(image, DETECTION_SIZES, **options)
        if faces and size != DETECTION_SIZES[0]:
            log.info("faces found at detector size %d", size)
        return list(faces)
    if hasattr(analyzer, "det_size"):
        for size in DETECTION_SIZES:
            faces = analyzer.detect(image, det_size=size, **options)
            if faces:
                if size != DETECTION_SIZES[0]:
                    log.info("faces found at detector size %d", size)
                return list(faces)
        return []
    return list(analyzer.detect(image, **options))


def plan_ad_hoc(faces: Sequence[Face], people: Sequence[PersonReferences], analyzer,
                options: RestoreOptions, source: str | None = None) -> RestorationPlan:
    """Match each face to one of `people` by embedding (engine.restore.matching) and decide what to do.

    `analyzer` embeds the people's references (the same embedding model as the faces')."""
    from engine.restore.matching import embed_references, match_face

    identities = {f"given:{i}": Identity(f"given:{i}", p.name, p.person_id, images=tuple(p.images))
                  for i, p in enumerate(people)}
    embedded = [embed_references(analyzer, key, p.images, display_name=p.name)
                for key, p in zip(identities, people)]
    planned = []
    for face in faces:
        small = too_small(face, options)
        if small:
            planned.append(PlannedFace(face, "skipped", small))
            continue
        match = None
        if embedded and face.embedding is not None and face.embedding_model is not None:
            match = match_face(face, embedded, options.match_threshold)
        if match is not None and match.person is not None:
            who = identities[match.person]
            planned.append(PlannedFace(face, "restored", f"matched {who.name} (similarity {match.similarity:.2f} ≥ "
                                       f"{match.threshold:.2f})", who.person_id, who.name, who.key,
                                       similarity=match.similarity))
            continue
        if match is None or match.best_name is None:
            why = "no people given"
        else:
            why = (f"nobody known (closest: {identities[match.best_name].name}, similarity "
                   f"{match.similarity:.2f} < {match.threshold:.2f})")
        action, reason = unmatched(why, options)
        planned.append(PlannedFace(face, action, reason, similarity=match.similarity if match else None))
    return RestorationPlan(limit_faces(planned, options), identities, source)


def check_people(people: Sequence[PersonReferences]) -> None:
    for person in people:
        if not person.images:
            raise UsageError(f"person {person.name!r} has no reference photos")
