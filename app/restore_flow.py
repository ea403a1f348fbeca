"""The Restore page's work, as plain functions run in workers: read + find faces, restore, save.

The page never touches pixels itself: it receives small dataclasses with QImages made here (building a
QImage is allowed off the GUI thread; QPixmaps are not).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtGui import QImage

from app.qimage import to_qimage
from engine.errors import FaceMeError
from engine.people.listing import KnownPerson
from engine.people.listing import known_people as engine_known_people
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report
from engine.settings import Settings

log = logging.getLogger(__name__)

#: the longest side of the picture shown on screen (the full photo stays in the worker's data)
PREVIEW_SIZE = 2048


@dataclass
class FaceChoice:
    box: tuple[float, float, float, float]
    person_id: int | None
    person_name: str | None
    similarity: float | None
    restore: bool
    restorable: bool = True
    note: str = ""
    detected: Any = None  # the engine's Face

    @property
    def label(self) -> str:
        return self.person_name or "Unknown person"

    @property
    def short_note(self) -> str:
        """One line for the list; `note` keeps the engine's full reason (shown as a tooltip)."""
        if not self.restorable:
            return "too small to restore"
        if self.person_name and self.similarity is not None:
            return f"matched by references (similarity {self.similarity:.2f})"
        return "nobody known: restored without identity"


@dataclass
class PhotoAnalysis:
    path: Path
    image: Any  # engine.imageio.LoadedImage
    preview: QImage
    preview_scale: float  # preview pixels per photo pixel
    faces: list[FaceChoice]
    people: list[Any] = field(default_factory=list)  # engine.restore.PersonReferences of matched people


@dataclass
class RestoreRequest:
    faces: list[int]
    guidance: float = 5.0
    steps: int = 50
    seed: int | None = None
    color_fix: bool = True


@dataclass
class RestoreOutcome:
    path: Path
    pixels: np.ndarray
    image: Any  # the LoadedImage the result is written "like" (EXIF, ICC, format)
    preview: QImage
    summary: str
    seed: int | None
    details: list[str] = field(default_factory=list)


def _preview(pixels: np.ndarray) -> tuple[QImage, float]:
    h, w = pixels.shape[:2]
    image = to_qimage(pixels)
    scale = 1.0
    if max(h, w) > PREVIEW_SIZE:
        from PySide6.QtCore import Qt

        scale = PREVIEW_SIZE / max(h, w)
        image = image.scaled(round(w * scale), round(h * scale), Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
    return image, scale


def face_analyzer(settings: Settings):
    """The analyser restoration uses: InsightFace antelopev2 from the pack (FaceMe needs its ArcFace),
    or, when the pack is not installed yet, the embedded dlib one (for showing faces only)."""
    from engine.models.layout import check_part, part_dir

    if check_part(settings.models_dir, "antelopev2").ok:
        from engine.faces.insightface_backend import InsightFaceAnalyzer, providers_for_device

        providers = providers_for_device(settings.device)
        return InsightFaceAnalyzer(part_dir(settings.models_dir, "antelopev2"), providers=providers)
    from engine.faces.dlib_backend import DlibFaceAnalyzer

    return DlibFaceAnalyzer()


def reference_crop(photo: Path, box: tuple[float, float, float, float]) -> np.ndarray:
    """The region of `photo` around one face: a reference image in which that face is the largest."""
    from engine.imageio import read_image
    from engine.restore.photo import crop_around_face

    return crop_around_face(read_image(photo).pixels, box)


def known_people(catalog) -> list[KnownPerson]:
    """Every visible person with references (the user's picks, else the stored or fresh suggestions)."""
    with catalog.session() as session:
        return engine_known_people(session)


def analyse_photo(path: Path, settings: Settings, catalog: Callable[[], Any] | None = None,
                  progress: ProgressCallback | None = None, cancel: CancelCheck | None = None) -> PhotoAnalysis:
    """Read `path`, find its faces and match each one to a known person (worker thread)."""
    from engine.imageio import read_image
    from engine.restore.matching import embed_references
    from engine.restore.photo import PersonReferences, RestoreOptions, plan_faces

    report(progress, 0, 4, "Reading the photo…")
    image = read_image(path)
    check_cancelled(cancel, "opening the photo")
    preview, scale = _preview(image.pixels)
    report(progress, 1, 4, "Finding faces…")
    analyzer = face_analyzer(settings)
    faces = analyzer.detect(np.ascontiguousarray(image.pixels[..., :3]))
    check_cancelled(cancel, "opening the photo")

    report(progress, 2, 4, "Reading the reference photos of the people you know…")
    people: list[PersonReferences] = []
    embedded = []
    ids: dict[str, int] = {}
    if faces and catalog is not None:
        try:
            known = known_people(catalog())
        except FaceMeError as exc:
            log.warning("people unavailable for matching: %s", exc)
            known = []
        for person in known:
            check_cancelled(cancel, "opening the photo")
            try:
                crops = [reference_crop(p, box) for p, box in person.references]
                embedded.append(embed_references(analyzer, person.name, crops))
            except FaceMeError as exc:  # one unreadable reference must not hide the photo's faces
                log.warning("references of %s skipped: %s", person.name, exc)
                continue
            people.append(PersonReferences(person.name, crops))
            ids[person.name] = person.id
    report(progress, 3, 4, "Matching faces to people…")
    outcomes = plan_faces(faces, embedded, RestoreOptions())
    choices = []
    for outcome in outcomes:
        restorable = not outcome.reason.startswith("too small")
        choices.append(FaceChoice(box=tuple(float(v) for v in outcome.face.box),
                                  person_id=ids.get(outcome.person) if outcome.person else None,
                                  person_name=outcome.person, similarity=outcome.similarity,
                                  restore=restorable, restorable=restorable, note=outcome.reason,
                                  detected=outcome.face))
    choices.sort(key=lambda c: c.box[0])
    report(progress, 4, 4, "")
    return PhotoAnalysis(path=Path(path), image=image, preview=preview, preview_scale=scale, faces=choices,
                         people=people)


def restore(analysis: PhotoAnalysis, request: RestoreRequest, pipeline: Any,
            progress: ProgressCallback | None = None, cancel: CancelCheck | None = None) -> RestoreOutcome:
    """Restore the ticked faces of the analysed photo with the loaded FaceMe pipeline (worker thread)."""
    from engine.restore.photo import RestoreOptions, restore_photo

    chosen = [analysis.faces[i] for i in request.faces]
    if not chosen:
        raise FaceMeError("no face is ticked, so there is nothing to restore", analysis.path)
    names = {c.person_name for c in chosen if c.person_name}
    people = [p for p in analysis.people if p.name in names]
    options = RestoreOptions(steps=request.steps, guidance_scale=request.guidance, seed=request.seed,
                             color_fix=request.color_fix, unmatched="blind", min_face_size=0)
    # only the ticked faces; the pipeline's analyser reads the people's references
    result = restore_photo(analysis.image, people, pipeline, options=options, progress=progress, cancel=cancel,
                           faces=[c.detected for c in chosen])
    check_cancelled(cancel, "restoration")
    preview, _ = _preview(result.pixels)
    n = result.restored_count
    summary = f"{n} face{'s' if n != 1 else ''} restored (seed {request.seed}). Drag the divider to compare."
    details = [f"{o.person or 'unknown'}: {o.action} — {o.reason}" for o in result.faces]
    for line in details:
        log.info("%s: %s", analysis.path.name, line)
    return RestoreOutcome(analysis.path, result.pixels, analysis.image, preview, summary, request.seed, details)


def save(outcome: RestoreOutcome, target: Path) -> Path:
    """Write the result atomically beside or instead of nothing: the original is never overwritten."""
    from engine.imageio import write_image

    target.parent.mkdir(parents=True, exist_ok=True)
    return write_image(target, outcome.pixels, like=outcome.image)
