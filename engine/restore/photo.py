"""One photo end to end: find the faces, decide for each whose it is, restore, paste back.

    faces = analyzer.detect(photo)               (boxes, 5 landmarks, embeddings of one model)
    for each face: too small? -> left alone;  matched to a person? -> FaceMe with that person's
                   references;  nobody? -> blind FaceMe ("blind") or left alone ("skip")
    each restored crop -> paste-back (soft mask, tone matching) -> the output pixels

Faces are cropped from the original photo; crops are pasted back smallest first (a larger, usually
nearer face wins where two overlap). A photo without any detected face raises NoFaceError and
nothing is written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from engine.errors import NoFaceError, UsageError
from engine.faces.align import align_face, warp_to_crop
from engine.faces.types import Face
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report
from engine.restore.matching import Match, PersonEmbeddings, embed_references, match_face
from engine.restore.pasteback import DEFAULT_MASK, MaskShape, paste_faces

log = logging.getLogger(__name__)

#: Faces whose box is smaller than this (larger side, photo pixels) are left alone by default: the
#: 512 px model would have to invent a face from a few dozen pixels (about 13x enlargement).
DEFAULT_MIN_FACE_SIZE = 40

Unmatched = Literal["blind", "skip"]
Action = Literal["restored", "blind", "skipped"]

#: A face-parsing hook: aligned 512 crop (RGB uint8) -> mask (512, 512) in [0, 1] of what to paste.
FaceParser = Callable[[np.ndarray], np.ndarray]


#: how far around a reference face its crop reaches (in face sizes beyond the box on each side)
REFERENCE_MARGIN = 0.8


def crop_around_face(pixels: np.ndarray, box: tuple[float, float, float, float],
                     margin: float = REFERENCE_MARGIN) -> np.ndarray:
    """The region of `pixels` around one face: a reference image cut from a photo of several people,
    in which that face is the largest (references are read by their largest face)."""
    h, w = pixels.shape[:2]
    x1, y1, x2, y2 = box
    reach = margin * max(x2 - x1, y2 - y1)
    left, top = int(max(0, x1 - reach)), int(max(0, y1 - reach))
    right, bottom = int(min(w, x2 + reach)), int(min(h, y2 + reach))
    return np.ascontiguousarray(pixels[top:bottom, left:right])


@dataclass(frozen=True)
class PersonReferences:
    """A person and their reference photos: paths to image files (or RGB uint8 arrays, e.g. crops
    the GUI already holds). Each reference's largest face is used."""

    name: str
    images: list[Path | np.ndarray]


@dataclass(frozen=True)
class RestoreOptions:
    """How to restore a photo. FaceMe's released defaults for the model settings.

    `seed`: None draws a fresh one per face; an int makes the run reproducible (face i uses seed + i).
    `unmatched`: what to do with a face of nobody known — restore it "blind" (no identity) or "skip".
    `min_face_size`: faces smaller than this (larger box side, pixels) are left alone.
    `match_threshold`: None uses the embedding model's documented threshold (engine.restore.matching).
    `max_faces`: restore at most this many faces (the largest); None restores all.
    """

    steps: int = 50
    guidance_scale: float = 5.0
    conditioning_scale: float = 1.0
    seed: int | None = None
    color_fix: bool = True
    unmatched: Unmatched = "blind"
    min_face_size: float = DEFAULT_MIN_FACE_SIZE
    match_threshold: float | None = None
    max_faces: int | None = None
    mask: MaskShape = field(default=DEFAULT_MASK)

    def __post_init__(self):
        if self.unmatched not in ("blind", "skip"):
            raise UsageError(f"unmatched must be 'blind' or 'skip', not {self.unmatched!r}")
        if self.steps < 1:
            raise UsageError(f"steps must be at least 1 (got {self.steps})")
        if self.max_faces is not None and self.max_faces < 0:
            raise UsageError(f"max_faces must not be negative (got {self.max_faces})")


@dataclass(frozen=True)
class FaceOutcome:
    """What happened to one detected face. `person`: the matched person or None; `similarity`: the
    best similarity to any person's references (None when no people were given)."""

    face: Face
    person: str | None
    similarity: float | None
    action: Action
    reason: str


@dataclass
class PhotoRestoration:
    """The restored photo's pixels (same shape as the input) and one outcome per detected face, in
    detection order."""

    pixels: np.ndarray
    faces: list[FaceOutcome]

    @property
    def restored_count(self) -> int:
        return sum(1 for f in self.faces if f.action != "skipped")


def _is_gray(pixels: np.ndarray) -> bool:
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        return True
    return bool(np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2]))


def _decide(face: Face, match: Match | None, options: RestoreOptions) -> tuple[Action, str]:
    if face.size < options.min_face_size:
        return "skipped", (f"too small to restore ({face.size:.0f} px < {options.min_face_size:.0f} px: "
                           f"the model would invent the face)")
    if match is not None and match.person is not None:
        return "restored", (f"matched {match.person} (similarity {match.similarity:.2f} ≥ "
                            f"{match.threshold:.2f})")
    if match is None or match.best_name is None:
        why = "no people given"
    else:
        why = (f"nobody known (closest: {match.best_name}, similarity {match.similarity:.2f} < "
               f"{match.threshold:.2f})")
    if options.unmatched == "skip":
        return "skipped", f"{why}; unmatched faces are left alone"
    return "blind", f"{why}; restored without identity"


def plan_faces(faces: Sequence[Face], people: Sequence[PersonEmbeddings],
               options: RestoreOptions) -> list[FaceOutcome]:
    """Decide for every face who it is and what to do with it (no model is run here)."""
    outcomes = []
    for face in faces:
        match = None
        if people and face.embedding is not None and face.embedding_model is not None:
            match = match_face(face, people, options.match_threshold)
        action, reason = _decide(face, match, options)
        outcomes.append(FaceOutcome(face, match.person if match else None,
                                    match.similarity if match else None, action, reason))
    if options.max_faces is not None:
        chosen = sorted((i for i, o in enumerate(outcomes) if o.action != "skipped"),
                        key=lambda i: outcomes[i].face.size, reverse=True)
        for i in chosen[options.max_faces:]:
            o = outcomes[i]
            outcomes[i] = FaceOutcome(o.face, o.person, o.similarity, "skipped",
                                      f"{o.reason}; not restored (limit of {options.max_faces} faces per photo)")
    return outcomes


def restore_photo(image, people: Sequence[PersonReferences], pipeline, analyzer=None,
                  options: RestoreOptions = RestoreOptions(), progress: ProgressCallback | None = None,
                  cancel: CancelCheck | None = None, face_parser: FaceParser | None = None,
                  faces: Sequence[Face] | None = None) -> PhotoRestoration:
    """Restore every eligible face of `image` (an `engine.imageio.LoadedImage`, or RGB uint8 pixels).

    `pipeline`: a loaded `FaceMePipeline`; `analyzer`: the face analyzer used for detection and
    person matching (default: the pipeline's InsightFace analyzer). `faces`: faces already found in
    this image (e.g. the ones a user ticked): only these are decided and restored, and the photo is
    not analysed again (the analyzer is then needed only to read the people's references; the faces'
    embeddings must come from the same embedding model to be matched). Raises NoFaceError when the
    photo has no face at all (UsageError when `faces` is empty), CancelledError when `cancel` asks to
    stop (nothing is returned then).
    """
    pixels = image.pixels if hasattr(image, "pixels") else np.asarray(image)
    source = getattr(image, "path", None)
    grayscale = bool(getattr(image, "is_grayscale", False)) or _is_gray(pixels)
    analyzer = analyzer if analyzer is not None else getattr(pipeline, "face_analyzer", None)
    if analyzer is None and (faces is None or people):
        raise UsageError("no face analyzer: pass one or use a pipeline loaded from a model pack")

    check_cancelled(cancel, "restoration")
    if faces is None:
        report(progress, 0, 0, "finding faces")
        faces = analyzer.detect(np.ascontiguousarray(pixels[..., :3]))
        if not faces:
            raise NoFaceError("no face found in the photo; nothing was restored", source)
    elif not faces:
        raise UsageError("no face was chosen, so there is nothing to restore", source)
    else:
        faces = list(faces)
    names = [p.name for p in people]
    if len(set(names)) != len(names):
        raise UsageError(f"each person may be given once (got {', '.join(names)})")
    embedded = [embed_references(analyzer, p.name, p.images) for p in people]
    outcomes = plan_faces(faces, embedded, options)

    todo = [i for i, o in enumerate(outcomes) if o.action != "skipped"]
    total = max(len(todo) * options.steps, 1)
    identities: dict[str, object] = {}
    restored_pairs = []
    base_seed = options.seed if options.seed is not None else int.from_bytes(os.urandom(6), "little")
    for n, i in enumerate(todo):
        check_cancelled(cancel, "restoration")
        outcome = outcomes[i]
        identity = None
        if outcome.action == "restored":
            if outcome.person not in identities:
                person = next(p for p in people if p.name == outcome.person)
                report(progress, n * options.steps, total, f"reading {person.name}'s references")
                identities[outcome.person] = pipeline.encode_identity(list(person.images), cancel=cancel)
            identity = identities[outcome.person]
        alignment = align_face(outcome.face.landmarks)
        crop = warp_to_crop(np.ascontiguousarray(pixels[..., :3]), alignment)

        def face_progress(done: int, _total: int, message: str, offset: int = n * options.steps) -> None:
            report(progress, offset + done, total, f"face {n + 1} of {len(todo)}: {message}")

        result = pipeline(crop, identity=identity, steps=options.steps, guidance_scale=options.guidance_scale,
                          conditioning_scale=options.conditioning_scale, seed=base_seed + i,
                          color_fix=options.color_fix, progress=face_progress, cancel=cancel)
        parsing = face_parser(result) if face_parser is not None else None
        restored_pairs.append((result, alignment, parsing))
        log.info("face %d: %s", i + 1, outcome.reason)

    check_cancelled(cancel, "restoration")
    if restored_pairs:
        report(progress, total, total, "pasting back")
        output = paste_faces(pixels, [(r, a) for r, a, _ in restored_pairs], shape=options.mask,
                             grayscale=grayscale, parsing_masks=[m for _, _, m in restored_pairs])
    else:
        output = pixels.copy()
    return PhotoRestoration(output, outcomes)


def same_file(a: Path, b: Path) -> bool:
    """True when `a` and `b` name the same file (same path after resolving links, or same inode)."""
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def restore_photo_file(input_path: str | Path, output_path: str | Path, people: Sequence[PersonReferences],
                       pipeline, analyzer=None, options: RestoreOptions = RestoreOptions(),
                       progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
                       face_parser: FaceParser | None = None) -> PhotoRestoration:
    """Read `input_path`, restore it, write `output_path` (same format, EXIF and ICC as the input,
    atomically). The input is only read. Nothing is written on any error (NoFaceError included)."""
    from engine.imageio import read_image, write_image

    input_path, output_path = Path(input_path), Path(output_path)
    if same_file(input_path, output_path):
        raise UsageError("the output would overwrite the input photo; choose another output path", output_path)
    loaded = read_image(input_path)
    result = restore_photo(loaded, people, pipeline, analyzer, options, progress, cancel, face_parser)
    write_image(output_path, result.pixels, like=loaded)
    return result
