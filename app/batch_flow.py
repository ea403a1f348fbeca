"""The Queue page's work over the catalog's batch jobs (engine.catalog.batch), run in workers."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)


@dataclass
class ItemView:
    id: int
    photo: Path
    output: Path
    status: str  # pending | running | done | skipped | failed
    reason: str | None


@dataclass
class JobView:
    id: int
    out_dir: Path
    roots: list[str]
    status: str  # running | done | cancelled
    items: list[ItemView] = field(default_factory=list)

    @property
    def title(self) -> str:
        names = [Path(r).name or r for r in self.roots]
        return ", ".join(names[:2]) + (f" and {len(names) - 2} more" if len(names) > 2 else "")

    def counts(self) -> Counter:
        return Counter(i.status for i in self.items)

    def state_text(self, running: bool) -> str:
        if running:
            return "running"
        if self.status == "cancelled":
            return "cancelled"
        return "finished" if not self.counts().get("pending") else "paused"

    def item(self, item_id: int) -> ItemView | None:
        return next((i for i in self.items if i.id == item_id), None)

    def update_item(self, item_id: int, status: str, reason: str | None) -> None:
        entry = self.item(item_id)
        if entry is not None:
            entry.status = status
            entry.reason = reason


class ItemRelay(QObject):
    """Carries per-photo events from the batch worker to the Queue page (signals cross threads)."""

    item_finished = Signal(int, str, str)
    photo_progress = Signal(int, str, int, int, str)

    def emit_item(self, item_id: int, status: str, reason: str | None) -> None:
        self.item_finished.emit(int(item_id), str(status), reason or "")

    def emit_photo(self, item_id: int, name: str, done: int, total: int, message: str) -> None:
        self.photo_progress.emit(int(item_id), str(name), int(done), int(total), str(message))


class StudioRestorer:
    """engine.catalog.batch's PhotoRestorer on the app's one shared model, with per-photo progress."""

    def __init__(self, settings, model, item_ids: dict[str, int], progress=None, cancel=None, on_photo=None,
                 color_fix: bool = True):
        self.settings = settings
        self.model = model
        self.item_ids = item_ids
        self.cancel = cancel
        self.on_photo = on_photo
        self.color_fix = color_fix

    def restore(self, input_path: Path, output_path: Path, people: list, options) -> dict:
        from engine.restore.photo import RestoreOptions, restore_photo_file

        item_id = self.item_ids.get(str(input_path), -1)
        name = Path(input_path).name

        def photo_progress(done: int, total: int, message: str) -> None:
            if self.on_photo is not None:
                self.on_photo(item_id, name, done, total, message)

        photo_progress(0, 0, "starting")
        # a stop inside the photo raises CancelledError: engine.catalog.batch.run_job keeps it pending
        with self.model.use(self.settings) as pipeline:
            result = restore_photo_file(
                input_path, output_path, people, pipeline,
                options=RestoreOptions(steps=options.steps, guidance_scale=options.guidance_scale,
                                       seed=options.seed, unmatched=options.unmatched, color_fix=self.color_fix),
                progress=photo_progress, cancel=self.cancel)
        return {"faces": [{"person": f.person, "action": f.action, "reason": f.reason} for f in result.faces],
                "models_dir": str(self.settings.models_dir)}


def _job_view(job) -> JobView:
    return JobView(job.id, job.out_dir, list(job.roots), job.status,
                   [ItemView(i.id, i.photo, i.output, i.status, i.reason) for i in job.items])


def list_jobs(catalog) -> list[JobView]:
    from engine.catalog import batch

    return [_job_view(job) for job in batch.list_jobs(catalog)]


def unfinished_job(catalog) -> int | None:
    """The newest batch that was still running when the app last closed (or crashed), if any."""
    from engine.catalog import batch

    return batch.unfinished_job(catalog)


def create_job(catalog, roots, out_dir, options: dict, progress=None, cancel=None) -> int:
    """A new batch (or the unfinished one for the same albums and folder); albums are scanned first."""
    from engine.catalog.batch import BatchOptions, start_or_resume

    batch_options = BatchOptions(unmatched=options.get("unmatched", "blind"), steps=int(options["steps"]),
                                 guidance_scale=float(options["guidance_scale"]),
                                 models_dir=options.get("models_dir"))
    return start_or_resume(catalog, roots, out_dir, batch_options, progress=progress, cancel=cancel)


def run_job(catalog, job_id: int, settings, model, progress=None, cancel=None, on_item=None, on_photo=None,
            color_fix: bool = True) -> str:
    """Run the batch's pending photos; `on_item(item_id, status, reason)` after each one. A stop raises
    CancelledError (the photo in flight stays pending: Resume or the next start redoes it)."""
    from engine.catalog import batch

    item_ids = {str(item.photo): item.id for item in batch.get_job(catalog, job_id).items}
    restorer = StudioRestorer(settings, model, item_ids, cancel=cancel, on_photo=on_photo, color_fix=color_fix)
    summary = batch.run_job(catalog, job_id, restorer, progress=progress, cancel=cancel, on_item=on_item)
    return f"{summary.restored} restored, {len(summary.skipped)} skipped, {len(summary.failed)} failed"


def cancel_job(catalog, job_id: int) -> None:
    """The user cancelled: the batch is not resumed automatically at the next start (Resume still can)."""
    from engine.catalog import batch

    batch.cancel_job(catalog, job_id)


def retry_failed(catalog, job_id: int) -> int:
    """Put the batch's failed photos back in line; returns how many."""
    from engine.catalog import batch

    return batch.retry_failed(catalog, job_id)
