"""The Restore page's work, as plain functions run in workers: read + plan, choose people, restore, save.

An album photo is planned from the album (engine.restore.album: its catalog faces with their people;
the pack's detector refines the outlines when the pack is installed); any other photo ad hoc (faces
found and matched by embedding to the people who have references). The user may change each face's
person ("a person", "nobody → blind", "leave alone"); for an album photo that choice is saved as a
correction, so the album and the restoration agree. Restoring goes through the engine's
RestorationService, whose identity tokens are the catalog's (computed once per person and pack).

Qt-free: the page turns pixels into QImages (app.qimage) and results into widgets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import FaceMeError
from engine.restore.identity_check import describe_short
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report
from engine.settings import Settings
from engine.text import plural

log = logging.getLogger(__name__)

#: the choices besides a person
BLIND = "blind"
SKIP = "skip"


@dataclass
class FaceChoice:
    box: tuple[float, float, float, float]
    person_id: int | None
    person_name: str | None
    similarity: float | None
    restore: bool
    restorable: bool = True
    note: str = ""
    detected: Any = None  # the engine's Face (geometry)
    catalog_face_id: int | None = None  # the album's face (None: outside the album or found only now)
    #: a person the user hid (a stranger in the background): left alone unless the user ticks the face
    hidden: bool = False

    @property
    def label(self) -> str:
        if self.hidden:
            return f"{self.person_name} (hidden)"
        return self.person_name or "Unknown person"

    @property
    def short_note(self) -> str:
        """One line for the list; `note` keeps the engine's full reason (shown as a tooltip)."""
        if not self.restorable:
            return "too small to restore"
        if self.hidden:
            return "restored without identity (your choice)" if self.restore else \
                "hidden person: left alone (tick to restore)"
        if not self.restore:
            return "left alone"
        if self.person_name and self.similarity is not None:
            return f"matched by references (similarity {self.similarity:.2f})"
        if self.person_name:
            return "restored with this person's references"
        return "nobody known: restored without identity"


@dataclass
class PhotoAnalysis:
    path: Path
    image: Any  # engine.imageio.LoadedImage
    faces: list[FaceChoice]
    people: list[Any] = field(default_factory=list)  # engine.restore.plan.Identity of every known person
    photo_id: int | None = None  # the album's photo (None: outside any album)
    preview: Any = None  # set by the page (a QImage)
    preview_scale: float = 1.0  # preview pixels per photo pixel

    @property
    def in_album(self) -> bool:
        return self.photo_id is not None

    def person(self, person_id: int):
        return next((p for p in self.people if p.person_id == person_id), None)


@dataclass
class RestoreRequest:
    faces: list[int]
    guidance: float = 5.0
    steps: int = 50
    seed: int | None = None
    color_fix: bool = True
    identity_check: bool = True
    tries: int = 1
    #: the whole print repaired first (engine.repair.recipe.Recipe; None: as read)
    recipe: Any = None


@dataclass(frozen=True)
class RepairAvailability:
    """Which repair models (engine.models.layout.REPAIR_PARTS) are installed: `missing` maps each part
    that is missing or broken to a sentence naming the model to download."""

    missing: dict[str, str] = field(default_factory=dict)

    def ok(self, *parts: str) -> bool:
        return not any(part in self.missing for part in parts)

    def why_not(self, *parts: str) -> str:
        """The sentences of the missing ones among `parts` ("" when all are installed)."""
        return " ".join(self.missing[part] for part in parts if part in self.missing)


def repair_availability(models_dir: Path) -> RepairAvailability:
    """The repair parts' state in `models_dir`, checked as the Models page checks them (headers only;
    worker thread)."""
    from engine.models.layout import PARTS, REPAIR_PARTS, verify_pack

    missing = {}
    for status in verify_pack(Path(models_dir), REPAIR_PARTS):
        if not status.ok:
            state = "is not installed" if status.state == "missing" else "is damaged"
            missing[status.name] = (f"{PARTS[status.name].title} {state}: download it on the Models page "
                                    f"(`faceme models download {status.name}`).")
    return RepairAvailability(missing)


@dataclass
class RestoreOutcome:
    path: Path
    pixels: np.ndarray
    image: Any  # the LoadedImage the result is written "like" (EXIF, ICC, format)
    summary: str
    seed: int | None
    details: list[str] = field(default_factory=list)
    faces: list[Any] = field(default_factory=list)  # engine.restore.plan.PlannedFace, with seeds and checks
    preview: Any = None  # set by the page (a QImage)
    is_preview: bool = False  # a quick preview: for looking only, never saved
    photo_id: int | None = None  # the album's photo (its saves are recorded in the catalog)
    options: dict = field(default_factory=dict)  # the RestoreOptions it was restored with (to_dict)
    scale: int = 1  # output pixels per photo pixel (the recipe's upscaling)
    repaired_steps: list[str] = field(default_factory=list)  # the whole-photo steps run (engine.repair)


def face_analyzer(settings: Settings):
    """The pack's analyser (InsightFace antelopev2: restoration's own detector), or None when the pack
    is not installed yet (album photos then use the album's faces; others the embedded dlib one)."""
    from engine.models.layout import check_part, part_dir

    if check_part(settings.models_dir, "antelopev2").ok:
        from engine.faces.insightface_backend import InsightFaceAnalyzer, providers_for_device

        providers = providers_for_device(settings.device)
        return InsightFaceAnalyzer(part_dir(settings.models_dir, "antelopev2"), providers=providers)
    return None


def _dlib():
    from engine.faces.dlib_backend import DlibFaceAnalyzer

    return DlibFaceAnalyzer()


def _choices(plan) -> list[FaceChoice]:
    choices = []
    for planned in plan.faces:
        restorable = not planned.reason.startswith("too small")
        choices.append(FaceChoice(box=tuple(float(v) for v in planned.face.box), person_id=planned.person_id,
                                  person_name=planned.person_name if planned.identity else None,
                                  similarity=planned.similarity, restore=planned.action != "skipped",
                                  restorable=restorable, note=planned.reason, detected=planned.face,
                                  catalog_face_id=planned.catalog_face_id))
    choices.sort(key=lambda c: c.box[0])
    return choices


def analyse_photo(path: Path, settings: Settings, catalog: Callable[[], Any] | None = None,
                  progress: ProgressCallback | None = None, cancel: CancelCheck | None = None) -> PhotoAnalysis:
    """Read `path` and plan it: from the album when it is an album photo, else ad hoc (worker thread)."""
    from engine.imageio import read_image
    from engine.restore.album import album_photo_id, known_identities, plan_from_album
    from engine.restore.options import RestoreOptions
    from engine.restore.plan import detect_faces

    report(progress, 0, 4, "Reading the photo…")
    image = read_image(path)
    check_cancelled(cancel, "opening the photo")
    report(progress, 1, 4, "Finding faces…")
    analyzer = face_analyzer(settings)
    pixels = np.ascontiguousarray(image.pixels[..., :3])
    people, photo_id = [], None
    open_catalog = None
    if catalog is not None:
        try:
            open_catalog = catalog()
            with open_catalog.transaction() as session:
                photo_id = album_photo_id(session, path)
                people = known_identities(session)
        except FaceMeError as exc:
            log.warning("the album is unavailable: %s", exc)
    options = RestoreOptions()
    if photo_id is not None:
        refine = detect_faces(analyzer, pixels) if analyzer is not None else None
        check_cancelled(cancel, "opening the photo")
        report(progress, 3, 4, "Reading the album's people…")
        with open_catalog.transaction() as session:
            plan = plan_from_album(session, photo_id, options, refine=refine)
    else:
        plan = _plan_ad_hoc(pixels, people, analyzer or _dlib(), options, progress, cancel)
    report(progress, 4, 4, "")
    faces = _choices(plan)
    if photo_id is not None:
        _leave_hidden_people_alone(open_catalog, faces)
    return PhotoAnalysis(path=Path(path), image=image, faces=faces, people=people, photo_id=photo_id)


def _leave_hidden_people_alone(catalog, faces: list[FaceChoice]) -> None:
    """Faces of people the user hid are left alone by default: hiding a stranger says "not someone to
    restore", where the album's rule for faces without references would restore them without identity.
    Ticking such a face still restores it (without identity: a hidden person lends none)."""
    from engine.people.corrections import person_by_id

    with catalog.session() as session:
        for face in faces:
            if face.person_id is None or not face.restorable:
                continue
            person = person_by_id(session, face.person_id)
            if person.hidden:
                face.hidden, face.restore, face.person_name = True, False, person.label
                face.note = f"{person.label} is hidden: left alone (tick the face to restore it without identity)"


def _plan_ad_hoc(pixels, people, analyzer, options, progress, cancel):
    """A photo outside the album: its faces matched by embedding to the known people (their reference
    crops cut in memory from the album's boxes); each match restores with the album person's identity."""
    from dataclasses import replace

    from engine.restore.identity import reference_crops
    from engine.restore.plan import PersonReferences, detect_faces, plan_ad_hoc

    faces = detect_faces(analyzer, pixels)
    check_cancelled(cancel, "opening the photo")
    report(progress, 2, 4, "Reading the reference photos of the people you know…")
    given = []
    for identity in people if faces else []:
        check_cancelled(cancel, "opening the photo")
        try:
            given.append(PersonReferences(identity.name, reference_crops(identity.faces), identity.person_id))
        except FaceMeError as exc:  # one unreadable reference must not hide the photo's faces
            log.warning("references of %s skipped: %s", identity.name, exc)
    report(progress, 3, 4, "Matching faces to people…")
    plan = plan_ad_hoc(faces, given, analyzer, options)
    by_id = {p.person_id: p for p in people}
    faces = [replace(f, identity=by_id[f.person_id].key) if f.identity else f for f in plan.faces]
    return type(plan)(faces, {p.key: p for p in people}, plan.source)


def choose_person(analysis: PhotoAnalysis, index: int, choice: int | str, catalog: Callable[[], Any] | None = None
                  ) -> FaceChoice:
    """The user's choice for one face: a person id, BLIND ("nobody → blind") or SKIP ("leave alone").

    For an album face, a person is confirmed and "nobody" rejects the face's current person, in the
    catalog (engine.people.corrections), so every later restoration follows it too. Worker thread."""
    face = analysis.faces[index]
    if choice == SKIP:
        face.restore = False
        face.note = "left alone (your choice)"
        return face
    if choice == BLIND and face.hidden:  # restore the stranger after all: no rejection, they stay hidden
        face.restore = True
        face.note = f"{face.person_name} is hidden: restored without identity (your choice)"
        return face
    if choice == BLIND:
        if face.catalog_face_id is not None and face.person_id is not None and catalog is not None:
            from app import people_actions

            people_actions.reject(catalog(), face.person_id, [face.catalog_face_id])
        face.person_id, face.person_name, face.similarity = None, None, None
        face.restore, face.restorable = True, True
        face.note = "nobody: restored without identity (your choice)"
        return face
    person = analysis.person(int(choice))
    if person is None:
        raise FaceMeError(f"person {choice} has no reference photos, so a face can't be restored as them")
    if face.catalog_face_id is not None and catalog is not None:
        from app import people_actions

        people_actions.confirm(catalog(), person.person_id, [face.catalog_face_id])
    face.person_id, face.person_name, face.similarity = person.person_id, person.name, None
    face.restore, face.restorable, face.hidden = True, True, False
    face.note = f"{person.name} (your choice)"
    return face


def plan_of(analysis: PhotoAnalysis, ticked: list[int]):
    """The restoration plan of the page's faces: the ticked ones as chosen, the others left alone."""
    from engine.restore.plan import PlannedFace, RestorationPlan

    planned, identities = [], {}
    for i, face in enumerate(analysis.faces):
        person = analysis.person(face.person_id) if face.person_id is not None else None
        if i not in ticked:
            planned.append(PlannedFace(face.detected, "skipped", "left alone (not ticked)", face.person_id,
                                       face.person_name, catalog_face_id=face.catalog_face_id))
        elif person is not None:
            identities[person.key] = person
            planned.append(PlannedFace(face.detected, "restored", face.note or person.name, person.person_id,
                                       person.name, person.key, face.catalog_face_id, face.similarity))
        else:
            planned.append(PlannedFace(face.detected, "blind", face.note or "nobody known: restored without identity",
                                       catalog_face_id=face.catalog_face_id))
    return RestorationPlan(planned, identities, str(analysis.path))


def restore(analysis: PhotoAnalysis, request: RestoreRequest, service: Any, catalog: Callable[[], Any] | None = None,
            progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
            preview: bool = False) -> RestoreOutcome:
    """Restore the ticked faces as planned, through the engine's RestorationService (worker thread).

    `preview`: a quick preview instead (RestorationService.preview: a few steps of a faster sampler, so it
    differs from the restoration itself); its outcome is for looking only (`save` refuses it)."""
    from engine.restore.options import RestoreOptions

    recipe = request.recipe if request.recipe is not None and request.recipe.active else None
    if not request.faces and recipe is None:
        raise FaceMeError("no face is ticked, so there is nothing to restore", analysis.path)
    plan = plan_of(analysis, request.faces)
    options = RestoreOptions(steps=request.steps, guidance_scale=request.guidance, seed=request.seed,
                             color_fix=request.color_fix, unmatched="blind", min_face_size=0,
                             models_dir=str(service.models_dir), identity_check=request.identity_check,
                             tries=max(1, int(request.tries)), recipe=recipe)
    image, scale, repaired = analysis.image, 1, None
    if recipe is not None:
        image, plan, repaired = repair_photo(analysis.image, plan, options, progress, cancel)
        scale = repaired.scale
    run = service.preview if preview else service.restore
    result = run(image, plan, options, catalog=catalog() if catalog is not None else None,
                 progress=progress, cancel=cancel)
    check_cancelled(cancel, "restoration")
    n = result.restored_count
    faces = plural(n, "face")
    if preview:
        summary = (f"Quick preview of {faces} (fewer steps, faster sampler): the restoration itself will differ. "
                   "Press Restore faces for the result to save.")
    else:
        summary = f"{faces} restored (seed {request.seed}). Drag the divider to compare."
    if repaired is not None:
        summary = f"Whole photo: {', '.join(repaired.steps)} done. " + summary
        if repaired.colourised:
            summary += " The photo was colourised: the saved file is labelled as colourised."
    details = [f"{o.person_name or 'nobody'}: {o.action} — {o.reason}" + (
        f"; {describe_short(o.check)}" if o.check is not None else "") for o in result.faces]
    doubtful = sum(1 for o in result.faces if o.check is not None and o.check.verdict != "kept")
    if doubtful and not preview:
        summary += (f" {plural(doubtful, 'face')} may not look like the person: see the "
                    f"badges (more tries in Settings).")
    for line in details:
        log.info("%s: %s", analysis.path.name, line)
    return RestoreOutcome(analysis.path, result.pixels, image, summary, request.seed, details,
                          list(result.faces), is_preview=preview, photo_id=analysis.photo_id,
                          options=options.to_dict(), scale=scale,
                          repaired_steps=list(repaired.steps) if repaired is not None else [])


def repair_only(analysis: PhotoAnalysis, request: RestoreRequest, models_dir: Path, device: str | None = None,
                progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
                preview: bool = False) -> RestoreOutcome:
    """No face ticked: only the whole photo is repaired by `request.recipe`, so no FaceMe model is needed
    (a landscape, a house, or faces the user leaves alone). Worker thread."""
    from engine.repair.restoring import repair_for_restoration
    from engine.restore.options import RestoreOptions

    if request.recipe is None or not request.recipe.active:
        raise FaceMeError("no face is ticked and no whole-photo step is chosen, so there is nothing to do",
                          analysis.path)
    options = RestoreOptions(models_dir=str(models_dir), device=device, recipe=request.recipe, seed=request.seed)
    repaired, result = repair_for_restoration(analysis.image, options, progress, cancel)
    check_cancelled(cancel, "repair")
    summary = f"Whole photo: {', '.join(result.steps)} done; no face restored. Drag the divider to compare."
    if result.colourised:
        summary += " The photo was colourised: the saved file is labelled as colourised."
    log.info("%s: whole photo only (%s)", analysis.path.name, ", ".join(result.steps))
    return RestoreOutcome(analysis.path, repaired.pixels, repaired, summary, request.seed, is_preview=preview,
                          photo_id=analysis.photo_id, options=options.to_dict(), scale=result.scale,
                          repaired_steps=list(result.steps))


def repair_photo(image, plan, options, progress: ProgressCallback | None = None, cancel: CancelCheck | None = None):
    """(the photo repaired by `options.recipe`, `plan` carried to its scale, the RepairResult): the page's
    faces were found on the photo as read; repairing moves no pixel, and upscaling scales every face."""
    from engine.repair.geometry import scale_plan
    from engine.repair.restoring import repair_for_restoration

    repaired, result = repair_for_restoration(image, options, progress, cancel)
    check_cancelled(cancel, "repair")
    return repaired, scale_plan(plan, result.scale), result


@dataclass
class DamageView:
    """The photo with the detector's damage mask painted over it (`pixels`, the photo's size) and the share
    of the photo marked (0 to 1)."""

    pixels: np.ndarray
    share: float
    preview: Any = None  # set by the page (a QImage)


def damage_view(image, models_dir: Path, device: str | None = None, cancel: CancelCheck | None = None) -> DamageView:
    """The damage detector's mask of `image` (engine.imageio.LoadedImage: scratches, creases, dust) over
    the photo, to look at before repairing (worker thread)."""
    from engine.repair.damage_mask import detect_damage, paint_damage
    from engine.repair.models import repair_models_for

    pixels = np.ascontiguousarray(image.pixels[..., :3])
    mask = detect_damage(pixels, repair_models_for(Path(models_dir), device).scratch_detector(), cancel=cancel)
    check_cancelled(cancel, "finding damage")
    return DamageView(paint_damage(pixels, mask), float(np.count_nonzero(mask)) / mask.size)


def save(outcome: RestoreOutcome, target: Path, catalog: Callable[[], Any] | None = None) -> Path:
    """Write the result atomically (the original is never overwritten) and record it in the catalog as a
    restoration output, so a later scan never catalogues it as a photo (and no batch restores it again);
    a photo of the album is recorded with its faces (person, action, seed, the identity check's
    similarities and verdict), as a batch records its photos."""
    from engine.imageio import write_image
    from engine.restore.batch import face_records

    if outcome.is_preview:
        raise FaceMeError("a quick preview is not the restoration; restore the faces to save the result", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    written = write_image(target, outcome.pixels, like=outcome.image)
    if catalog is not None:
        from engine.catalog.jobs import record_restoration

        record_restoration(catalog(), outcome.photo_id, Path(written),
                           {**outcome.options, "seed": outcome.seed, "saved_by": "app"},
                           {"models_dir": outcome.options.get("models_dir")}, face_records(outcome.faces))
    return written
