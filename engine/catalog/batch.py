"""Batch restoration of albums: a job table that survives crashes and kills.

    job = start_or_resume(catalog, roots, out_dir, options)   (scans roots not yet in the catalog)
    run_job(catalog, job_id, restorer, progress, cancel)       → BatchSummary
    list_jobs / get_job / unfinished_job                       (the jobs as plain rows, for the GUI)
    cancel_job / retry_failed                                  (the user's word on a job)

Which photos: every catalogued photo under the roots. A photo with a face of a person who has
references is restored with those people's references (other faces per `unmatched`); a photo with
faces of nobody referenced is restored blind (`unmatched="blind"`) or skipped (`"skip"`); a photo
without faces is skipped. The output tree mirrors the album: OUT/<path relative to its root> (with
several roots, OUT/<root folder name>/<relative path>).

Crash safety: outputs are written atomically by engine.imageio (temporary file, then rename), so an
output file is always whole; an item is marked done in the same transaction that records its
restoration. A resumed job first deletes temporary files that a killed write left behind, and takes
an item whose output already exists (written, then killed before the commit) as done instead of
restoring it again. So no photo is restored twice and no half-written output remains.

Cancelling (`cancel` returns True) stops run_job with CancelledError, between photos or inside one:
the photo in flight is not marked at all (it stays pending and is restored on the next run), and the
job stays "running", so it is resumed by `unfinished_job`'s caller at the next start; `cancel_job`
marks it "cancelled" when the user means to stop it for good (running it again re-opens it).

The restoration itself is behind `PhotoRestorer` (`restore(input, output, people, options)`); the
default, `FaceMeRestorer`, loads the FaceMe pipeline from a model pack once and calls
engine.restore.photo.restore_photo_file.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from sqlalchemy import select, update

from engine.catalog.db import Catalog
from engine.catalog.models import (Assignment, AssignmentOrigin, BatchItem, BatchJob, Face, ItemStatus, JobStatus,
                                   Person, Photo, PhotoStatus, Restoration, utcnow)
from engine.errors import CancelledError, FaceMeError, NoFaceError, UsageError
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchOptions:
    unmatched: str = "blind"
    steps: int = 50
    guidance_scale: float = 5.0
    seed: int | None = None
    models_dir: str | None = None

    def __post_init__(self):
        if self.unmatched not in ("blind", "skip"):
            raise UsageError(f"--unmatched must be blind or skip, not {self.unmatched!r}")


class PhotoRestorer(Protocol):
    def restore(self, input_path: Path, output_path: Path, people: list, options: BatchOptions) -> dict:
        """Restore one photo to output_path (atomically); returns facts to record (model versions…)."""


class FaceMeRestorer:
    """The whole-photo FaceMe restoration (engine.restore.photo), its pipeline loaded once."""

    def __init__(self, models_dir: Path, device: str = "auto", dtype: str = "auto"):
        self.models_dir = Path(models_dir)
        self.device = device
        self.dtype = dtype
        self._pipeline = None

    @property
    def pipeline(self):
        if self._pipeline is None:
            from engine.faceme.pipeline import FaceMePipeline

            self._pipeline = FaceMePipeline.from_pack(self.models_dir, device=self.device, dtype=self.dtype)
        return self._pipeline

    def restore(self, input_path: Path, output_path: Path, people: list, options: BatchOptions) -> dict:
        from engine.restore.photo import RestoreOptions, restore_photo_file

        result = restore_photo_file(input_path, output_path, people, self.pipeline,
                                    options=RestoreOptions(steps=options.steps, guidance_scale=options.guidance_scale,
                                                           seed=options.seed, unmatched=options.unmatched))
        return {"faces": [{"person": f.person, "action": f.action, "reason": f.reason} for f in result.faces],
                "models_dir": str(self.models_dir)}


#: called with (item id, "done" | "skipped" | "failed", reason or None) after each photo
ItemCallback = Callable[[int, str, "str | None"], None]


@dataclass
class BatchSummary:
    job_id: int
    out_dir: str
    restored: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    already_done: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f"batch job {self.job_id}: {self.restored} restored, {len(self.skipped)} skipped, "
               f"{len(self.failed)} failed ({self.already_done} done before this run) in {self.seconds:.1f} s → "
               f"{self.out_dir}"]
        out += [f"skipped: {path}: {reason}" for path, reason in self.skipped]
        out += [f"failed: {path}: {reason}" for path, reason in self.failed]
        return out


def _relative_outputs(roots: list[str], photos: list[Photo]) -> dict[int, str]:
    names = [os.path.basename(r.rstrip(os.sep)) or "album" for r in roots]
    out = {}
    for photo in photos:
        for root, name in zip(roots, names):
            if photo.path == root or photo.path.startswith(root.rstrip(os.sep) + os.sep):
                rel = os.path.relpath(photo.path, root) if photo.path != root else os.path.basename(root)
                out[photo.id] = rel if len(roots) == 1 else os.path.join(name, rel)
                break
    return out


def _photos_under(session, roots: list[str]) -> list[Photo]:
    from engine.catalog.scanner import _like_prefix

    photos = {}
    for root in roots:
        for photo in session.scalars(select(Photo).where(
                (Photo.path == root) | Photo.path.like(_like_prefix(root), escape="\\"))):
            photos[photo.id] = photo
    return sorted(photos.values(), key=lambda p: p.path)


def start_or_resume(catalog: Catalog, roots: Sequence[str | Path], out_dir: str | Path, options: BatchOptions,
                    scan_first: bool = True, analyzer=None, progress: ProgressCallback | None = None,
                    cancel: CancelCheck | None = None) -> int:
    """The id of the unfinished job for these roots and output folder, or of a new one.

    Roots not in the catalog yet are scanned first (a scan of an already scanned folder costs
    nothing for unchanged photos, so this is always done unless `scan_first` is False).
    """
    roots = [os.path.abspath(os.fspath(r)) for r in roots]
    out = os.path.abspath(os.fspath(out_dir))
    for root in roots:
        if out == root or out.startswith(root.rstrip(os.sep) + os.sep):
            raise UsageError("the output folder must not be inside an album folder (outputs would be scanned "
                             "as photos)", out)
    if scan_first:
        from engine.catalog.scanner import scan

        scan(catalog, roots, analyzer=analyzer, progress=progress, cancel=cancel)
    with catalog.transaction() as session:
        for job in session.scalars(select(BatchJob).where(BatchJob.out_dir == out,
                                                          BatchJob.status == JobStatus.running)):
            if sorted(job.roots) == sorted(roots):
                log.info("resuming batch job %d", job.id)
                _add_new_items(session, job, roots)
                return job.id
        job = BatchJob(out_dir=out, roots=roots, options=asdict(options))
        session.add(job)
        session.flush()
        _add_new_items(session, job, roots)
        return job.id


def _add_new_items(session, job: BatchJob, roots: list[str]) -> None:
    photos = [p for p in _photos_under(session, roots) if p.status == PhotoStatus.ok]
    have = set(session.scalars(select(BatchItem.photo_id).where(BatchItem.job_id == job.id)))
    outputs = _relative_outputs(roots, photos)
    for photo in photos:
        if photo.id not in have and photo.id in outputs:
            session.add(BatchItem(job_id=job.id, photo_id=photo.id, relative_output=outputs[photo.id]))
    session.flush()


def _reference_crop(catalog: Catalog, face: Face) -> Path:
    """The reference face cut out of its photo with a wide margin, cached (so the restorer's detector
    finds this face, not another person's in the same photo)."""
    from engine.imageio import read_image, write_image
    from engine.restore.photo import crop_around_face

    folder = Path(catalog.thumbnails_dir or ".") / "reference-crops"
    target = folder / f"{face.photo.content_hash or face.photo_id}-{face.id}.png"
    if target.exists():
        return target
    pixels = read_image(face.photo.path).pixels
    folder.mkdir(parents=True, exist_ok=True)
    write_image(target, crop_around_face(pixels, (face.x1, face.y1, face.x2, face.y2), margin=0.5))
    return target


def people_for_photo(catalog: Catalog, session, photo: Photo) -> tuple[list, list[str]]:
    """(PersonReferences of the photo's people who have references, names of its people without)."""
    from engine.people.references import references
    from engine.restore.photo import PersonReferences

    rows = session.execute(select(Person).join(Assignment).join(Face).where(
        Face.photo_id == photo.id, Assignment.origin.in_((AssignmentOrigin.machine, AssignmentOrigin.confirmed)))
    ).scalars().unique().all()
    with_refs, without = [], []
    for person in rows:
        choices = [c for c in references(session, person) if c.face.photo_id != photo.id] or \
            references(session, person)
        if not choices:
            without.append(person.label)
            continue
        images = [_reference_crop(catalog, c.face) for c in choices]
        with_refs.append(PersonReferences(person.label, images))
    return with_refs, without


def run_job(catalog: Catalog, job_id: int, restorer: PhotoRestorer, progress: ProgressCallback | None = None,
            cancel: CancelCheck | None = None, on_item: ItemCallback | None = None) -> BatchSummary:
    """Restore the job's pending photos, recording each outcome as it happens.

    A job that was cancelled is re-opened ("running") first. `on_item(item_id, status, reason)` is
    called after each photo's outcome is committed. Raises CancelledError when `cancel` asks to stop
    (the photo in flight stays pending), ModelPackError when the pack is broken (every photo would
    fail alike), UsageError when the job no longer exists; any other error of one photo marks only
    that photo failed.
    """
    from engine.imageio import remove_partial_writes

    start = time.monotonic()
    with catalog.transaction() as session:
        job = _job(session, job_id)
        job.status, job.finished_at = JobStatus.running, None
        options = BatchOptions(**job.options)
        out_dir = Path(job.out_dir)
        items = [(i.id, i.photo_id, i.relative_output, i.status) for i in job.items]
    summary = BatchSummary(job_id, str(out_dir))
    if out_dir.exists():
        for leftover in remove_partial_writes(out_dir):
            log.info("removed a partial output left by an interrupted run: %s", leftover)
    total = len(items)
    done = sum(1 for *_, status in items if status != ItemStatus.pending)
    summary.already_done = done
    report(progress, done, total, "restoring")
    work_start, worked = time.monotonic(), 0
    for item_id, photo_id, relative, status in items:
        if status != ItemStatus.pending:
            continue
        check_cancelled(cancel, "batch")
        output = out_dir / relative
        with catalog.session() as session:
            photo = session.get(Photo, photo_id)
            path = photo.path
            if output.exists():
                # written by a run killed before it could record it: done, not restored again
                outcome = (ItemStatus.done, "output already there (an interrupted or earlier run)", None)
            elif photo.status != PhotoStatus.ok:
                outcome = (ItemStatus.skipped, f"photo is {photo.status.value}", None)
            elif not photo.faces:
                outcome = (ItemStatus.skipped, "no face found in the photo", None)
            else:
                people, without = people_for_photo(catalog, session, photo)
                if not people and options.unmatched == "skip":
                    why = ("nobody in it has reference photos" +
                           (f" ({', '.join(without)})" if without else " (its faces belong to no person)"))
                    outcome = (ItemStatus.skipped, why + "; --unmatched skip", None)
                else:
                    outcome = None
        if outcome is None:
            try:
                output.parent.mkdir(parents=True, exist_ok=True)
                facts = restorer.restore(Path(path), output, people, options)
                outcome = (ItemStatus.done, None, facts)
            except CancelledError:
                raise  # not a failure: the item stays pending and is restored on the next run
            except NoFaceError as exc:
                outcome = (ItemStatus.skipped, f"the restorer found no face ({exc.message})", None)
            except FaceMeError as exc:
                if exc.exit_code == 4:  # the model pack is broken: every photo would fail the same way
                    raise
                outcome = (ItemStatus.failed, str(exc), None)
            except Exception as exc:  # one bad photo must not stop an album; it is reported
                log.exception("restoring %s failed", path)
                outcome = (ItemStatus.failed, f"{exc.__class__.__name__}: {exc}", None)
        status, reason, facts = outcome
        with catalog.transaction() as session:
            item = session.get(BatchItem, item_id)
            item.status, item.reason, item.finished_at = status, reason, utcnow()
            if status == ItemStatus.done:
                session.add(Restoration(photo_id=photo_id, output_path=str(output),
                                        settings={**asdict(options), "batch_job": job_id},
                                        model_versions=facts or {"note": reason}))
        if on_item is not None:
            on_item(item_id, status.value, reason)
        if status == ItemStatus.done and facts is None:
            summary.already_done += 1  # its output was already there (an interrupted or earlier run)
        elif status == ItemStatus.done:
            summary.restored += 1
        elif status == ItemStatus.skipped:
            summary.skipped.append((path, reason))
        else:
            summary.failed.append((path, reason))
        done += 1
        worked += 1
        eta = (total - done) * (time.monotonic() - work_start) / worked
        report(progress, done, total, f"{os.path.basename(path)} (eta {eta:.0f} s)")
    with catalog.transaction() as session:
        job = session.get(BatchJob, job_id)
        job.status, job.finished_at = JobStatus.done, utcnow()
        # the earlier runs' outcomes belong in the summary too
        for item in job.items:
            if item.status == ItemStatus.skipped and all(item.photo.path != p for p, _ in summary.skipped):
                summary.skipped.append((item.photo.path, item.reason or ""))
            if item.status == ItemStatus.failed and all(item.photo.path != p for p, _ in summary.failed):
                summary.failed.append((item.photo.path, item.reason or ""))
    summary.seconds = time.monotonic() - start
    return summary


# --- the jobs as the GUI shows them, and the user's word on them ---------------------------------

@dataclass(frozen=True)
class BatchItemRow:
    id: int
    photo: Path
    output: Path
    status: str  # pending | done | skipped | failed
    reason: str | None


@dataclass(frozen=True)
class BatchJobRow:
    id: int
    out_dir: Path
    roots: list[str]
    status: str  # running | done | cancelled
    items: list[BatchItemRow]


def _job(session, job_id: int) -> BatchJob:
    job = session.get(BatchJob, job_id)
    if job is None:
        raise UsageError(f"batch {job_id} no longer exists")
    return job


def _job_row(session, job: BatchJob) -> BatchJobRow:
    rows = session.execute(select(BatchItem, Photo.path).join(Photo, BatchItem.photo_id == Photo.id)
                           .where(BatchItem.job_id == job.id).order_by(BatchItem.id)).all()
    items = [BatchItemRow(item.id, Path(path), Path(job.out_dir) / item.relative_output,
                          ItemStatus(item.status).value, item.reason) for item, path in rows]
    return BatchJobRow(job.id, Path(job.out_dir), list(job.roots), JobStatus(job.status).value, items)


def list_jobs(catalog: Catalog) -> list[BatchJobRow]:
    """Every batch job with its items, newest first."""
    with catalog.session() as session:
        return [_job_row(session, job) for job in session.scalars(select(BatchJob).order_by(BatchJob.id.desc()))]


def get_job(catalog: Catalog, job_id: int) -> BatchJobRow:
    """One job with its items; UsageError when it no longer exists."""
    with catalog.session() as session:
        return _job_row(session, _job(session, job_id))


def unfinished_job(catalog: Catalog) -> int | None:
    """The newest job still "running" with photos left (the app or a batch was closed or killed mid-way)."""
    with catalog.session() as session:
        return session.scalar(select(BatchJob.id).where(BatchJob.status == JobStatus.running)
                              .where(BatchJob.items.any(BatchItem.status == ItemStatus.pending))
                              .order_by(BatchJob.id.desc()).limit(1))


def cancel_job(catalog: Catalog, job_id: int) -> bool:
    """The user stopped the job for good: it is no longer resumed by itself (run_job re-opens it).
    False when it was not running (finished, already cancelled, or gone)."""
    with catalog.transaction() as session:
        job = session.get(BatchJob, job_id)
        if job is None or job.status != JobStatus.running:
            return False
        job.status = JobStatus.cancelled
        return True


def retry_failed(catalog: Catalog, job_id: int) -> int:
    """Put the job's failed photos back in line (pending, reason cleared) and re-open the job; returns
    how many. run_job then restores them."""
    with catalog.transaction() as session:
        job = _job(session, job_id)
        count = session.execute(update(BatchItem).where(BatchItem.job_id == job_id,
                                                        BatchItem.status == ItemStatus.failed)
                                .values(status=ItemStatus.pending, reason=None, finished_at=None)).rowcount
        if count:
            job.status, job.finished_at = JobStatus.running, None
        return count
