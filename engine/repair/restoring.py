"""The repair recipe where a photo is restored: the print is repaired first, and its faces are found,
planned and restored on the repaired photo, at its scale.

For an album photo the catalog's faces are at the scale of the photo as scanned: the pack detector's
faces on the repaired photo are brought to that scale to refine them, and the plan is then carried to
the repaired scale (`engine.repair.geometry`).
"""

from __future__ import annotations

import logging

from engine.progress import CancelCheck, ProgressCallback
from engine.repair.geometry import scale_face, scale_plan

log = logging.getLogger(__name__)


def repair_models_of(options):
    """The process's repair models for the options' models folder and device (the user's settings fill gaps)."""
    from engine.repair.models import repair_models_for
    from engine.settings import Settings

    settings = Settings().with_overrides(models_dir=options.models_dir, device=options.device)
    return repair_models_for(settings.models_dir, options.device or settings.device)


def repair_for_restoration(loaded, options, progress: ProgressCallback | None = None,
                           cancel: CancelCheck | None = None):
    """(`loaded` repaired by `options.recipe`, the RepairResult). Progress is reported as "repairing: …"."""
    from engine.repair.recipe import repair_loaded_image

    def repair_progress(done: int, total: int, message: str) -> None:
        if progress is not None:
            progress(done, total, f"repairing: {message}")

    repaired, result = repair_loaded_image(loaded, options.recipe, repair_models_of(options), repair_progress, cancel)
    log.info("%s repaired (%s)%s", loaded.path.name, ", ".join(result.steps),
             f"; now {repaired.width}×{repaired.height}" if result.scale != 1 else "")
    return repaired, result


def plan_repaired_album_photo(service, catalog, photo_id: int, loaded, options,
                              progress: ProgressCallback | None = None, cancel: CancelCheck | None = None):
    """(the repaired photo, the album's plan for it at its scale)."""
    from engine.restore.album import plan_from_album

    repaired, result = repair_for_restoration(loaded, options, progress, cancel)
    refine = [scale_face(face, 1.0 / result.scale) for face in service.detect(repaired.pixels, embed=False)]
    with catalog.transaction() as session:
        plan = plan_from_album(session, photo_id, options, refine=refine)
    return repaired, scale_plan(plan, result.scale)
