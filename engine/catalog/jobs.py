"""The catalog's batch-job table: which photos a batch restores, where to, and how each one went.

    job = start_or_resume(catalog, roots, out_dir, options)   (scans roots not yet in the catalog)
    list_jobs / get_job / unfinished_job                       (the jobs as plain rows, with each
                                                                restored photo's per-face record)
    cancel_job / retry_failed                                  (the user's word on a job)

The catalog stores; it does not restore: `engine.restore.batch.run_job` restores a job's pending photos
and records their outcomes here. The options a job was started with are stored with it
(`engine.restore.options.RestoreOptions.to_dict`), so a resumed job restores as it began.

Which photos: every catalogued photo under the roots. The output tree mirrors the album:
OUT/<path relative to its root> (with several roots, OUT/<root folder name>/<relative path>, roots of
the same name numbered "Family (2)"). Which item may write which file is engine.catalog.outputs' rule.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from engine.catalog.db import Catalog
from engine.catalog.locks import hold_write_lock
from engine.catalog.models import (BatchItem, BatchJob, Face, ItemStatus, JobStatus, Person, Photo, PhotoStatus,
                                   Restoration, RestorationFace)
from engine.catalog.outputs import claim_all, distinct_outputs, resolved_folder_path, root_names
from engine.catalog.scanner import _like_prefix, is_inside
from engine.errors import UsageError
from engine.progress import CancelCheck, ProgressCallback

log = logging.getLogger(__name__)


def _relative_outputs(roots: list[str], photos: list[Photo], taken: Collection[str] = ()) -> dict[int, str]:
    """{photo id: output path relative to the job's folder}, no two alike nor alike one in `taken`
    (engine.catalog.outputs: roots of the same name get "Family (2)", other clashes "p (2).jpg")."""
    names = root_names(roots)
    wanted = []
    for photo in photos:
        for root, name in zip(roots, names):
            if is_inside(photo.path, root):
                rel = os.path.relpath(photo.path, root) if photo.path != root else os.path.basename(root)
                wanted.append((photo.id, rel if len(roots) == 1 else os.path.join(name, rel)))
                break
    return distinct_outputs(wanted, taken)


def _photos_under(session, roots: list[str]) -> list[Photo]:
    photos = {}
    for root in roots:
        for photo in session.scalars(select(Photo).where(
                (Photo.path == root) | Photo.path.like(_like_prefix(root), escape="\\"))):
            photos[photo.id] = photo
    return sorted(photos.values(), key=lambda p: p.path)


def start_or_resume(catalog: Catalog, roots: Sequence[str | Path], out_dir: str | Path, options: Any,
                    scan_first: bool = True, analyzer=None, progress: ProgressCallback | None = None,
                    cancel: CancelCheck | None = None) -> int:
    """The id of the job for these roots and output folder (the unfinished one, else the newest finished
    one: running it again restores photos added and outputs lost since), or of a new one.

    Roots and the output folder are compared resolved (a link to a folder is that folder); the output
    folder is stored resolved, the roots as given (the scanner records photos under them). Each new
    item claims its output file (engine.catalog.outputs); OutputClaimedError, with nothing started,
    when a file is another photo's or an unfinished batch's output. `options` (an
    `engine.restore.options.RestoreOptions`, or its dict) is stored with a new job; a resumed job keeps
    the options it was started with. Roots not in the catalog yet are scanned first (a scan of an
    already scanned folder costs nothing for unchanged photos, so this is always done unless
    `scan_first` is False).
    """
    roots = [os.path.abspath(os.fspath(r)) for r in roots]  # as the scanner records its photos' paths
    out = os.path.realpath(os.fspath(out_dir))
    check_output_folder(roots, out)
    if scan_first:
        from engine.catalog.scanner import scan

        scan(catalog, roots, analyzer=analyzer, progress=progress, cancel=cancel)
    try:
        return _start_or_resume(catalog, roots, out, options)
    except IntegrityError:
        # another process claimed one of these outputs between our read and our write: the second
        # attempt sees its claim and says whose it is
        return _start_or_resume(catalog, roots, out, options)


def _start_or_resume(catalog: Catalog, roots: list[str], out: str, options: Any) -> int:
    with catalog.transaction() as session:
        hold_write_lock(session)  # what we read of the claims stays true until we write ours
        same_roots = sorted(resolved_folder_path(r) for r in roots)
        # an unfinished job goes on; a finished one is run again for what is new or lost since (never a
        # second job over the same photos and files); a cancelled one stays as the user left it
        for job in session.scalars(select(BatchJob).where(BatchJob.out_dir == out,
                                                          BatchJob.status.in_([JobStatus.running, JobStatus.done]))
                                   .order_by(BatchJob.status != JobStatus.running, BatchJob.id.desc())):
            if sorted(resolved_folder_path(r) for r in job.roots) == same_roots:  # a link to an album is the album
                log.info("resuming batch job %d", job.id)
                _add_new_items(session, job, list(job.roots))
                return job.id
        job = BatchJob(out_dir=out, roots=roots,
                       options=dict(options) if isinstance(options, dict) else options.to_dict())
        session.add(job)
        session.flush()
        _add_new_items(session, job, roots)
        return job.id


def check_output_folder(roots: Sequence[str | Path], out_dir: str | Path) -> None:
    """Refuse an output folder that would mix outputs with albums, before anything is scanned or written:
    one inside an album (its outputs would be scanned as photos) or one that contains an album (with the
    mirrored tree, OUT/<album name>/… would be the album's own photos). Symlinks are resolved first.
    UsageError naming the folders."""
    out = os.path.realpath(os.fspath(out_dir))
    for root in roots:
        root = os.path.realpath(os.fspath(root))
        if is_inside(out, root):
            raise UsageError(f"the output folder must not be inside an album folder ({root}): outputs would be "
                             "scanned as photos; choose a folder outside the albums", out)
        if is_inside(root, out):
            raise UsageError(f"the output folder contains the album folder {root}: outputs would land on or "
                             "beside the album's own photos; choose a folder outside the albums", out)


def output_paths(session) -> set[str]:
    """Every file the catalog records as a restoration output (restorations, and batch outputs whose
    hash was recorded, even if their run was killed before the commit), as absolute paths. One query
    each: the scanner checks every file it meets against this set."""
    paths = set(session.scalars(select(Restoration.output_path)))
    for out_dir, relative in session.execute(select(BatchJob.out_dir, BatchItem.relative_output)
                                             .join(BatchItem, BatchItem.job_id == BatchJob.id)
                                             .where(BatchItem.output_sha256.is_not(None))):
        paths.add(os.path.join(out_dir, relative))
    return {os.path.abspath(p) for p in paths}


def _add_new_items(session, job: BatchJob, roots: list[str]) -> None:
    photos = [p for p in _photos_under(session, roots) if p.status == PhotoStatus.ok]
    have = set(session.scalars(select(BatchItem.photo_id).where(BatchItem.job_id == job.id)))
    taken = session.scalars(select(BatchItem.relative_output).where(BatchItem.job_id == job.id)).all()
    outputs = _relative_outputs(roots, [p for p in photos if p.id not in have], taken)
    added = [BatchItem(job_id=job.id, photo_id=photo.id, relative_output=outputs[photo.id])
             for photo in photos if photo.id not in have and photo.id in outputs]
    session.add_all(added)
    session.flush()
    claim_all(session, added, job.out_dir)


# --- the jobs as the GUI shows them, and the user's word on them ---------------------------------

@dataclass(frozen=True)
class FaceRecord:
    """What a restoration did with one face (a `restoration_faces` row)."""

    face_index: int
    action: str  # restored | blind | skipped
    reason: str
    box: tuple[float, ...] = ()
    face_id: int | None = None
    person_id: int | None = None
    person_name: str | None = None
    seed: int | None = None
    similarity_restored: float | None = None
    similarity_unrestored: float | None = None
    verdict: str | None = None
    check_model: str | None = None
    #: which identity a restored face used: "references", "fitted v2", "adapter v1" (engine.learn)
    identity_used: str | None = None

    def describe(self) -> str:
        who = f"{self.person_name} (person {self.person_id})" if self.person_id is not None else "nobody known"
        what = {"restored": f"restored as {who}", "blind": "restored blind", "skipped": "left alone"}.get(
            self.action, self.action)
        seed = f", seed {self.seed}" if self.seed is not None else ""
        if self.identity_used:
            seed += f", identity: {self.identity_used}"
        whose = f" [{who}]" if self.action != "restored" and self.person_id is not None else ""
        return f"face {self.face_index + 1}: {what}{whose} — {self.reason}{seed}{self.check_phrase()}"

    def check_phrase(self) -> str:
        """"; looks like Ann (0.930; before 0.910)" from the recorded check ("" when none ran)."""
        from engine.restore.identity_check import short_phrase

        if self.verdict is None or self.similarity_restored is None:
            return ""
        whom = self.person_name if self.action == "restored" and self.person_name else "the original face"
        return "; " + short_phrase(self.verdict, whom, self.similarity_restored, self.similarity_unrestored)

    def as_dict(self) -> dict:
        """Plain values (`--json` output)."""
        return {"face": self.face_index + 1, "action": self.action, "reason": self.reason,
                "box": [round(float(v), 1) for v in self.box], "face_id": self.face_id, "person_id": self.person_id,
                "person": self.person_name, "seed": self.seed, "verdict": self.verdict,
                "similarity_restored": self.similarity_restored, "similarity_unrestored": self.similarity_unrestored,
                "check_model": self.check_model, "identity_used": self.identity_used}


@dataclass(frozen=True)
class BatchItemRow:
    id: int
    photo: Path
    output: Path
    status: str  # pending | done | skipped | failed
    reason: str | None
    faces: list[FaceRecord] = field(default_factory=list)  # the restoration's per-face record (done items)
    #: a done item's output "missing" or "changed since it was written" (None: there as written)
    output_problem: str | None = None


@dataclass(frozen=True)
class BatchJobRow:
    id: int
    out_dir: Path
    roots: list[str]
    status: str  # running | done | cancelled
    items: list[BatchItemRow]

    @property
    def lost_outputs(self) -> list[BatchItemRow]:
        """Done photos whose output is missing or changed (a resume restores them again)."""
        return [i for i in self.items if i.output_problem is not None]


def _job(session, job_id: int) -> BatchJob:
    job = session.get(BatchJob, job_id)
    if job is None:
        raise UsageError(f"batch {job_id} no longer exists in this catalog; `faceme jobs list` shows its batches")
    return job


def _face_records(session, job: BatchJob, items: list[BatchItem]) -> dict[int, list[FaceRecord]]:
    """{photo id: the faces of the job's restoration of it} (its newest restoration in this job)."""
    done = {i.photo_id for i in items if i.status == ItemStatus.done}
    if not done:
        return {}
    latest: dict[int, Restoration] = {}
    for restoration in session.scalars(select(Restoration).where(Restoration.photo_id.in_(done))
                                       .options(selectinload(Restoration.faces)).order_by(Restoration.id)):
        if (restoration.settings or {}).get("batch_job") == job.id:
            latest[restoration.photo_id] = restoration
    return {photo_id: [face_record(f) for f in r.faces] for photo_id, r in latest.items()}


def face_record(row: RestorationFace) -> FaceRecord:
    return FaceRecord(row.face_index, row.action, row.reason, tuple(row.box or ()), row.face_id, row.person_id,
                      row.person_name, row.seed, row.similarity_restored, row.similarity_unrestored, row.verdict,
                      row.check_model, row.identity_used)


def _job_row(session, job: BatchJob) -> BatchJobRow:
    rows = session.execute(select(BatchItem, Photo.path).join(Photo, BatchItem.photo_id == Photo.id)
                           .where(BatchItem.job_id == job.id).order_by(BatchItem.id)).all()
    faces = _face_records(session, job, [item for item, _ in rows])
    items = []
    for item, path in rows:
        output = Path(job.out_dir) / item.relative_output
        status = ItemStatus(item.status).value
        problem = output_problem(output, item.output_size) if status == "done" else None
        items.append(BatchItemRow(item.id, Path(path), output, status, item.reason, faces.get(item.photo_id, []),
                                  problem))
    return BatchJobRow(job.id, Path(job.out_dir), list(job.roots), JobStatus(job.status).value, items)


def list_jobs(catalog: Catalog) -> list[BatchJobRow]:
    """Every batch job with its items, newest first."""
    with catalog.session() as session:
        return [_job_row(session, job) for job in session.scalars(select(BatchJob).order_by(BatchJob.id.desc()))]


def get_job_options(catalog: Catalog, job_id: int) -> dict:
    """The options a job was started with (`RestoreOptions.to_dict`); UsageError when it no longer exists."""
    with catalog.session() as session:
        return dict(_job(session, job_id).options or {})


def get_job(catalog: Catalog, job_id: int) -> BatchJobRow:
    """One job with its items; UsageError when it no longer exists."""
    with catalog.session() as session:
        return _job_row(session, _job(session, job_id))


def unfinished_job(catalog: Catalog, skip: Collection[int] = (), run_by: str | None = None) -> int | None:
    """The newest job still "running" with photos left (the app or a batch was closed or killed mid-way),
    other than those in `skip` (jobs another live process runs); with `run_by`, only one that program ran
    last (engine.catalog.leases.run_by)."""
    from engine.catalog.leases import run_by as last_run_by

    query = (select(BatchJob.id, BatchJob.options).where(BatchJob.status == JobStatus.running)
             .where(BatchJob.items.any(BatchItem.status == ItemStatus.pending)))
    if skip:
        query = query.where(BatchJob.id.not_in(list(skip)))
    with catalog.session() as session:
        for job_id, options in session.execute(query.order_by(BatchJob.id.desc())):
            if run_by is None or last_run_by(options) == run_by:
                return job_id
    return None


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


# --- what run_job (engine.restore.batch) reads and records ----------------------------------------

@dataclass(frozen=True)
class PendingItem:
    id: int
    photo_id: int
    relative_output: str
    status: str
    #: the hash of the output as encoded, recorded before it was written (None: not written yet)
    output_sha256: str | None = None


@dataclass(frozen=True)
class JobPlan:
    """A job as a run sees it: its stored options (a dict), output folder and items."""

    id: int
    out_dir: Path
    options: dict
    items: list[PendingItem]


def _job_plan(job: BatchJob) -> JobPlan:
    items = [PendingItem(i.id, i.photo_id, i.relative_output, ItemStatus(i.status).value, i.output_sha256)
             for i in job.items]
    return JobPlan(job.id, Path(job.out_dir), dict(job.options or {}), items)


def open_job(session, job_id: int) -> JobPlan:
    """Re-open the job ("running") and read what a run needs, inside the caller's transaction;
    UsageError when it no longer exists."""
    job = _job(session, job_id)
    job.status, job.finished_at = JobStatus.running, None
    return _job_plan(job)


def record_pending_output(session, item_id: int, sha256: str, size: int, faces: Sequence[FaceRecord]) -> None:
    """Record the output about to be written (its hash and size, and the restoration's per-face records)
    before the file appears (engine.imageio.encode_image, then stage and commit): a run killed between
    the write and its commit leaves an output that a resumed run recognises as this very file
    (engine.imageio.verify_output) and records with these faces."""
    item = session.get(BatchItem, item_id)
    item.output_sha256, item.output_size = sha256, size
    item.output_faces = [face_to_json(f) for f in faces]


def face_to_json(face: FaceRecord) -> dict:
    return {**asdict(face), "box": [float(v) for v in face.box]}


def face_from_json(value: dict) -> FaceRecord:
    return FaceRecord(**{**value, "box": tuple(value.get("box") or ())})


def recorded_faces(session, sha256: str) -> list[FaceRecord] | None:
    """The per-face records recorded with the output of that hash (None: none were recorded)."""
    faces = session.scalar(select(BatchItem.output_faces).where(BatchItem.output_sha256 == sha256,
                                                                BatchItem.output_faces.is_not(None))
                           .order_by(BatchItem.id.desc()).limit(1))
    return None if faces is None else [face_from_json(f) for f in faces]


def read_job(catalog: Catalog, job_id: int) -> JobPlan:
    """The job's options, output folder and items, read only (the job's status is left as it is)."""
    with catalog.session() as session:
        return _job_plan(_job(session, job_id))


def item_ids_by_photo(catalog: Catalog, job_id: int) -> dict[int, int]:
    """{photo id: item id} of a job."""
    with catalog.session() as session:
        return dict(session.execute(select(BatchItem.photo_id, BatchItem.id).where(BatchItem.job_id == job_id)).all())


def photo_for_item(catalog: Catalog, photo_id: int) -> tuple[str, str]:
    """(path, status) of an item's photo."""
    with catalog.session() as session:
        photo = session.get(Photo, photo_id)
        return photo.path, PhotoStatus(photo.status).value


def record_item(session, job_id: int, item_id: int, status: str, reason: str | None,
                output: Path | None = None, settings: dict | None = None, model_versions: dict | None = None,
                faces: Sequence[FaceRecord] = ()) -> None:
    """One photo's outcome, inside the caller's transaction (engine.catalog.leases.guarded): the item's
    status and, for a restored photo, its restoration with one row per face."""
    from engine.catalog.models import utcnow

    item = session.get(BatchItem, item_id)
    item.status, item.reason, item.finished_at = ItemStatus(status), reason, utcnow()
    if item.status == ItemStatus.done and output is not None:
        _add_restoration(session, item.photo_id, output, {**(settings or {}), "batch_job": job_id},
                         model_versions or {"note": reason}, faces)


def reopen_lost_outputs(session, job_id: int) -> list[tuple[str, str]]:
    """Put back in line the job's done photos whose output is gone or changed since it was written
    (missing, or another size than recorded: deleted, truncated, edited); returns (output, what
    happened) for each. A changed file is the user's now: the photo's new output goes beside it."""
    job = _job(session, job_id)
    reopened = []
    for item in job.items:
        output = os.path.join(job.out_dir, item.relative_output)
        problem = (output_problem(output, item.output_size, item.finished_at)
                   if item.status == ItemStatus.done else None)
        if problem is not None:
            item.status, item.reason, item.finished_at = ItemStatus.pending, None, None
            reopened.append((output, problem))
    return reopened


def output_problem(path: str | Path, size: int | None, written_at: datetime | None = None) -> str | None:
    """What is wrong with a done item's output at a glance (one stat, no reading): "missing", "changed
    since it was written" (another size than recorded, or, with `written_at`, modified after it was
    recorded: an edit of the same size; a file only touched is then found to be the batch's own by its
    hash and kept as done), or None."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if size is not None and st.st_size != size:
        return "changed since it was written"
    # a file system whose clock or timestamps differ (a network share, FAT's 2 s) may flag an untouched file:
    # harmless, its hash then shows it is the batch's own
    if written_at is not None and st.st_mtime > written_at.replace(tzinfo=timezone.utc).timestamp():
        return "changed since it was written"
    return None


def _add_restoration(session, photo_id: int | None, output: str | Path, settings: dict, model_versions: dict,
                     faces: Sequence[FaceRecord]) -> int:
    restoration = Restoration(photo_id=photo_id, output_path=os.path.abspath(os.fspath(output)),
                              settings=settings, model_versions=model_versions)
    session.add(restoration)
    session.flush()
    # a face or person removed while the photo was restored (a re-analysis, a merge in another process)
    # is recorded by name and box only, as its deletion would have left it (ON DELETE SET NULL)
    faces_there = set(session.scalars(select(Face.id).where(Face.id.in_([f.face_id for f in faces if f.face_id]))))
    people_there = set(session.scalars(select(Person.id).where(
        Person.id.in_([f.person_id for f in faces if f.person_id]))))
    for f in faces:
        session.add(RestorationFace(
            restoration_id=restoration.id, face_index=f.face_index,
            face_id=f.face_id if f.face_id in faces_there else None,
            person_id=f.person_id if f.person_id in people_there else None,
            person_name=f.person_name, action=f.action, reason=f.reason,
            seed=f.seed, box=[float(v) for v in f.box], similarity_restored=f.similarity_restored,
            similarity_unrestored=f.similarity_unrestored, verdict=f.verdict, check_model=f.check_model,
            identity_used=f.identity_used))
    return restoration.id


def record_restoration(catalog: Catalog, photo_id: int | None, output: str | Path, settings: dict | None = None,
                       model_versions: dict | None = None, faces: Sequence[FaceRecord] = ()) -> int:
    """A restoration saved outside a batch (the app's Save), with one row per face, in one transaction:
    recorded with its output, so the scanner never catalogues the output as a photo (photo_id None: a
    photo outside the albums, or one removed from the catalog meanwhile). Returns its id."""
    with catalog.transaction() as session:
        if photo_id is not None and session.get(Photo, photo_id) is None:
            photo_id = None  # removed from the catalog meanwhile; the output is still one
        return _add_restoration(session, photo_id, output, dict(settings or {}),
                                dict(model_versions or {"source": "app"}), faces)


def finish_job(session, job_id: int) -> list[tuple[str, str, str | None]]:
    """Mark the job done, inside the caller's transaction; returns every item as (photo path, status,
    reason)."""
    from engine.catalog.models import utcnow

    job = _job(session, job_id)
    job.status, job.finished_at = JobStatus.done, utcnow()
    return [(item.photo.path, ItemStatus(item.status).value, item.reason) for item in job.items]
