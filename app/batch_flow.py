"""The Queue page's work over the catalog's batch jobs (engine.catalog.batch), run in workers."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.errors import FaceMeError

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


class _Interrupted(BaseException):
    """Raised through engine.catalog.batch.run_job when the user stops a batch mid-photo.

    run_job turns any Exception of one photo into a "failed" item so that an album goes on; a stop is not
    a failure, so it travels as a BaseException (the item stays pending and is done on resume)."""


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
        from engine.errors import CancelledError
        from engine.restore.photo import RestoreOptions, restore_photo_file

        item_id = self.item_ids.get(str(input_path), -1)
        name = Path(input_path).name

        def photo_progress(done: int, total: int, message: str) -> None:
            if self.on_photo is not None:
                self.on_photo(item_id, name, done, total, message)

        photo_progress(0, 0, "starting")
        try:
            with self.model.use(self.settings) as pipeline:
                result = restore_photo_file(
                    input_path, output_path, people, pipeline,
                    options=RestoreOptions(steps=options.steps, guidance_scale=options.guidance_scale,
                                           seed=options.seed, unmatched=options.unmatched,
                                           color_fix=self.color_fix),
                    progress=photo_progress, cancel=self.cancel)
        except CancelledError:
            raise _Interrupted() from None
        return {"faces": [{"person": f.person, "action": f.action, "reason": f.reason} for f in result.faces],
                "models_dir": str(self.settings.models_dir)}


def _status(value) -> str:
    return value.value if hasattr(value, "value") else str(value)


def list_jobs(catalog) -> list[JobView]:
    from sqlalchemy import select

    from engine.catalog.models import BatchItem, BatchJob, Photo

    with catalog.session() as session:
        jobs = session.scalars(select(BatchJob).order_by(BatchJob.id.desc())).all()
        views = []
        for job in jobs:
            rows = session.execute(select(BatchItem, Photo.path).join(Photo, BatchItem.photo_id == Photo.id)
                                   .where(BatchItem.job_id == job.id).order_by(BatchItem.id)).all()
            items = [ItemView(item.id, Path(path), Path(job.out_dir) / item.relative_output, _status(item.status),
                              item.reason) for item, path in rows]
            views.append(JobView(job.id, Path(job.out_dir), list(job.roots), _status(job.status), items))
    return views


def unfinished_job(catalog) -> int | None:
    """The newest batch that was still running when the app last closed (or crashed), if any."""
    from sqlalchemy import select

    from engine.catalog.models import BatchItem, BatchJob, ItemStatus, JobStatus

    with catalog.session() as session:
        return session.scalar(select(BatchJob.id).where(BatchJob.status == JobStatus.running)
                              .where(BatchJob.items.any(BatchItem.status == ItemStatus.pending))
                              .order_by(BatchJob.id.desc()).limit(1))


def create_job(catalog, roots, out_dir, options: dict, progress=None, cancel=None) -> int:
    """A new batch (or the unfinished one for the same albums and folder); albums are scanned first."""
    from engine.catalog.batch import BatchOptions, start_or_resume

    batch_options = BatchOptions(unmatched=options.get("unmatched", "blind"), steps=int(options["steps"]),
                                 guidance_scale=float(options["guidance_scale"]),
                                 models_dir=options.get("models_dir"))
    return start_or_resume(catalog, roots, out_dir, batch_options, progress=progress, cancel=cancel)


def run_job(catalog, job_id: int, settings, model, progress=None, cancel=None, on_item=None, on_photo=None,
            color_fix: bool = True):
    """Run the batch's pending photos; `on_item(item_id, status, reason)` after each one."""
    from sqlalchemy import select

    from engine.catalog import batch
    from engine.catalog.models import BatchItem, BatchJob, JobStatus, Photo
    from engine.errors import CancelledError

    with catalog.transaction() as session:
        job = session.get(BatchJob, job_id)
        if job is None:
            raise FaceMeError(f"batch {job_id} no longer exists")
        job.status = JobStatus.running  # resuming a cancelled batch
        rows = session.execute(select(BatchItem.id, Photo.path, BatchItem.status)
                               .join(Photo, BatchItem.photo_id == Photo.id).where(BatchItem.job_id == job_id)).all()
    item_ids = {path: item_id for item_id, path, _ in rows}
    reported = {item_id for item_id, _, status in rows if _status(status) != "pending"}

    def report_items(done: int, total: int, message: str) -> None:
        if progress is not None:
            progress(done, total, message)
        if on_item is None:
            return
        with catalog.session() as session:
            finished = session.execute(select(BatchItem.id, BatchItem.status, BatchItem.reason).where(
                BatchItem.job_id == job_id, BatchItem.finished_at.is_not(None))).all()
        for item_id, status, reason in finished:
            if item_id not in reported:
                reported.add(item_id)
                on_item(item_id, _status(status), reason)

    restorer = StudioRestorer(settings, model, item_ids, cancel=cancel, on_photo=on_photo, color_fix=color_fix)
    try:
        summary = batch.run_job(catalog, job_id, restorer, progress=report_items, cancel=cancel)
    except _Interrupted:
        raise CancelledError("batch stopped; its remaining photos are kept for later") from None
    return f"{summary.restored} restored, {len(summary.skipped)} skipped, {len(summary.failed)} failed"


def cancel_job(catalog, job_id: int) -> None:
    """The user cancelled: the batch is not resumed automatically at the next start (Resume still can)."""
    from engine.catalog.models import BatchJob, JobStatus

    with catalog.transaction() as session:
        job = session.get(BatchJob, job_id)
        if job is not None and job.status == JobStatus.running:
            job.status = JobStatus.cancelled


def retry_failed(catalog, job_id: int) -> int:
    """Put the batch's failed photos back in line; returns how many."""
    from sqlalchemy import update

    from engine.catalog.models import BatchItem, BatchJob, ItemStatus, JobStatus

    with catalog.transaction() as session:
        count = session.execute(update(BatchItem).where(BatchItem.job_id == job_id,
                                                        BatchItem.status == ItemStatus.failed)
                                .values(status=ItemStatus.pending, reason=None, finished_at=None)).rowcount
        job = session.get(BatchJob, job_id)
        if job is not None:
            job.status = JobStatus.running
    return count
