"""Batch restoration of albums over the catalog's job table (engine.catalog.jobs), resumable after a kill.

    job_id = engine.catalog.jobs.start_or_resume(catalog, roots, out_dir, options)
    summary = run_job(catalog, job_id, ServiceRestorer(service), progress, cancel)

Each photo is restored as the album says (engine.restore.album: its catalog faces with their people;
faces only the restore detector finds follow `unmatched`), with the options the job was started with.
A photo in which no face gets restored is skipped with the faces' reasons; a photo without any face
(neither the scan nor the restore detector found one) is skipped as such. Every restored photo's
faces are recorded (person, action, reason, seed, and the identity check's similarities and verdict)
with its restoration.

Best of N in a batch: with `tries` N every restored face is restored N times and the try most like the
person is kept (engine.restore.photo.restore_plan); there is no further automatic retry of a face that
still comes out `drifted` or `uncertain` (more seeds of the same photo seldom change that, and the
cost would be unbounded): such faces are listed for review (`to_review`), and `restore_item_again`
restores one photo again with other seeds and records the new result.

Which file each photo writes: before anything is written, the item claims its output file in the
catalog (engine.catalog.outputs): a file that another photo's item, or an unfinished batch, holds is
refused with a message naming that photo and batch; a file already there that no batch of this photo
wrote (a retouched copy, an unrelated file of that name) is kept, and the output is written beside it
("p (2).jpg"). Output folders and files are compared resolved, so a link to the folder is the folder.

Crash safety: an output is encoded in memory, its SHA-256, size and per-face records are recorded
(pending), the file is written under a hidden temporary name and checked, and then, in one catalog
transaction, the lease and the claim are re-checked, the temporary is renamed into place and the item
is marked done with its restoration. A kill before the rename leaves a temporary (removed by the next
run) and no output; a kill after the rename but before the commit leaves a file whose hash and faces
are recorded, which the resumed run takes as done with those faces (its bytes verified, decoded);
a truncated, replaced or unrecorded file is never taken as done. So no photo is restored twice and
no damaged output counts as done. A job's done photos whose output was since deleted or changed
(another size than written) are put back in line when the job is run again (`faceme jobs resume`).

One process at a time: run_job holds the job's lease (engine.catalog.leases.hold) for the whole run; a
job a live other process runs is refused with JobBusyError, a killed owner's job is taken over. The
lease is renewed only while the run makes progress, so a hung owner goes stale; every write after the
denoising (pending record, rename, outcome) happens inside engine.catalog.leases.guarded, so an owner
that lost its lease (suspended while another process took over) stops with LeaseLostError without
touching the output folder or the records. A job cancelled from another process (`faceme jobs
cancel`) stops at the next heartbeat like a user's cancel.

Cancelling (`cancel` returns True) stops run_job with CancelledError, between photos or inside one:
the photo in flight is not marked at all (it stays pending and is restored on the next run), and the
job stays "running", so it is resumed by `unfinished_job`'s caller at the next start; `cancel_job`
marks it "cancelled" when the user means to stop it for good (running it again re-opens it).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from engine.catalog import jobs, leases, outputs
from engine.catalog.db import Catalog
from engine.catalog.jobs import FaceRecord
from engine.catalog.models import BatchItem
from engine.errors import CancelledError, FaceMeError, LeaseLostError, NoFaceError, UsageError
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report
from engine.restore.options import RestoreOptions
from engine.restore.photo import PhotoRestoration
from engine.restore.plan import PlannedFace

log = logging.getLogger(__name__)


#: writes a restoration (its pixels, with its per-face records) to its item's output (`like`: the
#: input, for format and metadata)
OutputWrite = Callable[[PhotoRestoration, "LoadedImage | None"], None]


class PhotoRestorer(Protocol):
    def restore(self, catalog: Catalog, photo_id: int, input_path: Path, output_path: Path,
                options: RestoreOptions, cancel: CancelCheck | None, write: OutputWrite) -> PhotoRestoration:
        """Restore one album photo as its plan says; when a face was restored, hand the restoration to
        `write` (which records it, then writes output_path atomically)."""


#: called with (photo id, photo name, done, total, message) while one photo is restored
PhotoProgress = Callable[[int, str, int, int, str], None]


class ServiceRestorer:
    """Album photos restored through a RestorationService: the one given, else the process's service for
    the job's options (models folder, device, precision, memory mode)."""

    def __init__(self, service=None, on_photo: PhotoProgress | None = None):
        self._service = service
        self.on_photo = on_photo

    def restore(self, catalog, photo_id, input_path, output_path, options, cancel, write=None):
        name = Path(input_path).name

        def progress(done: int, total: int, message: str) -> None:
            if self.on_photo is not None:
                self.on_photo(photo_id, name, done, total, message)

        progress(0, 0, "starting")
        from engine.restore.service import service_for

        service = self._service if self._service is not None else service_for(options)
        return service.restore_album_photo(catalog, photo_id, input_path, output_path, options,
                                           progress=progress, cancel=cancel, write=write)


#: called with (item id, "done" | "skipped" | "failed", reason or None) after each photo
ItemCallback = Callable[[int, str, "str | None"], None]


@dataclass
class BatchSummary:
    """Each photo of the job counted once: restored, skipped or failed in this run, done before it, or
    still pending (a stopped run)."""

    job_id: int
    out_dir: str
    total: int = 0
    restored: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    already_done: int = 0
    #: (file kept, output written beside it): the output's name was taken by a file no batch wrote
    kept_beside: list[tuple[str, str]] = field(default_factory=list)
    #: (output, what happened): done photos of an earlier run put back in line
    reopened: list[tuple[str, str]] = field(default_factory=list)
    earlier: list[tuple[str, str, str]] = field(default_factory=list)  # (path, status, reason) skipped/failed before
    faces: list[tuple[str, list[FaceRecord]]] = field(default_factory=list)  # this run's restored photos
    seconds: float = 0.0

    @property
    def pending(self) -> int:
        return self.total - self.restored - len(self.skipped) - len(self.failed) - self.already_done

    def as_dict(self) -> dict:
        """Plain values for `faceme batch --json`."""
        return {"job": self.job_id, "out_dir": self.out_dir, "total": self.total, "restored": self.restored,
                "already_done": self.already_done, "pending": self.pending, "seconds": round(self.seconds, 2),
                "skipped": [{"photo": p, "reason": r} for p, r in self.skipped],
                "failed": [{"photo": p, "reason": r} for p, r in self.failed],
                "kept_beside": [{"kept": k, "output": o} for k, o in self.kept_beside],
                "restored_again": [{"output": o, "was": w} for o, w in self.reopened],
                "earlier": [{"photo": p, "status": st, "reason": r} for p, st, r in self.earlier],
                "photos": [{"photo": p, "faces": [f.as_dict() for f in faces]} for p, faces in self.faces]}

    @property
    def to_review(self) -> list[tuple[str, FaceRecord]]:
        """This run's faces whose identity check says uncertain or drifted."""
        return [(p, f) for p, faces in self.faces for f in faces if f.verdict in REVIEW_VERDICTS]

    def lines(self, verbose: bool = False) -> list[str]:
        left = f", {self.pending} left" if self.pending else ""
        out = [f"batch job {self.job_id}: {self.total} photo{'s' if self.total != 1 else ''}: {self.restored} restored, "
               f"{len(self.skipped)} skipped, {len(self.failed)} failed in this run ({self.already_done} done before "
               f"this run{left}) in {self.seconds:.1f} s → {self.out_dir}"]
        out += [f"skipped: {path}: {reason}" for path, reason in self.skipped]
        out += [f"failed: {path}: {reason}" for path, reason in self.failed]
        out += [f"restored again: {output} was {what}" for output, what in self.reopened]
        out += [f"kept {kept} (not written by a batch of this photo); its restoration is {written}"
                for kept, written in self.kept_beside]
        out += [f"{status} in an earlier run: {path}: {reason}" for path, status, reason in self.earlier]
        review = self.to_review
        if review:
            out.append(f"{len(review)} face{'s' if len(review) != 1 else ''} to review (may not look like the "
                       f"person any more): " + "; ".join(f"{p} face {f.face_index + 1}" for p, f in review))
        if verbose:
            for path, faces in self.faces:
                out.append(f"restored: {path}")
                out += [f"  {f.describe()}" for f in faces]
        return out


def face_records(faces: Sequence[PlannedFace]) -> list[FaceRecord]:
    """A restoration's per-face record (its outcomes, `PhotoRestoration.faces`), with the identity
    check's figures where it ran."""
    records = []
    for i, f in enumerate(faces):
        v = f.check
        records.append(FaceRecord(i, f.action, f.reason, tuple(float(x) for x in f.face.box), f.catalog_face_id,
                                  f.person_id, f.person_name, f.seed,
                                  None if v is None else v.similarity_restored,
                                  None if v is None else v.similarity_unrestored,
                                  None if v is None else v.verdict, None if v is None else v.model,
                                  f.identity_used))
    return records


#: verdicts that put a face on the "to review" list
REVIEW_VERDICTS = ("uncertain", "drifted")


def to_review(catalog: Catalog, job_id: int) -> list[tuple[jobs.BatchItemRow, FaceRecord]]:
    """The job's restored faces (newest restoration of each photo) whose check says uncertain or drifted."""
    return [(item, face) for item in jobs.get_job(catalog, job_id).items if item.status == "done"
            for face in item.faces if face.verdict in REVIEW_VERDICTS]


def restore_item_again(catalog: Catalog, job_id: int, item_id: int, restorer: PhotoRestorer,
                       seed: int | None = None, tries: int | None = None,
                       cancel: CancelCheck | None = None) -> PhotoRestoration:
    """Restore one done photo of a job again (a face to review): the job's options with a new seed
    (`seed`, None: a fresh one) and `tries` (None: the job's), holding the job's lease; the output is
    replaced atomically when it is still the file the batch wrote (else kept, and the new one written
    beside it), and the new restoration is recorded (the newest is the one shown). The item stays done."""
    from dataclasses import replace

    job = jobs.read_job(catalog, job_id)
    item = next((i for i in job.items if i.id == item_id), None)
    if item is None:
        raise UsageError(f"batch {job_id} has no photo {item_id}")
    options = RestoreOptions.from_dict(job.options)
    options = replace(options, seed=seed if seed is not None else int.from_bytes(os.urandom(6), "little"),
                      tries=tries if tries is not None else options.tries)
    path, photo_status = jobs.photo_for_item(catalog, item.photo_id)
    if photo_status != "ok":
        raise UsageError(f"the photo is {photo_status}", path)
    with leases.hold(catalog, job_id) as keeper:
        target = _prepare(catalog, keeper.lease, item.id)
        Path(target.path).parent.mkdir(parents=True, exist_ok=True)
        writer = _OutputWriter(catalog, keeper.lease, job_id, item.id, target, options)
        result = restorer.restore(catalog, item.photo_id, Path(path), Path(target.path), options, cancel, writer)
    if not result.restored_count:
        raise UsageError(nothing_restored(result), path)
    return result


def nothing_restored(result: PhotoRestoration) -> str:
    if not result.faces:
        return "no face found (neither the scan nor the restore detector found one)"
    reasons = list(dict.fromkeys(f.reason for f in result.faces))
    return "no face to restore: " + "; ".join(reasons)


def _prepare(catalog: Catalog, lease: leases.Lease, item_id: int) -> outputs.OutputTarget:
    """Claim the item's output under the lease (engine.catalog.outputs.prepare)."""
    with leases.guarded(catalog, lease) as session:
        return outputs.prepare(session, session.get(BatchItem, item_id))


def _adoptable(target: outputs.OutputTarget) -> bool:
    """An output already there is taken as done when it is a file a batch of this photo wrote there,
    whole and decodable (written by a run killed before its commit, or by an earlier job)."""
    from engine.imageio import verify_output

    if target.existing_sha256 is None:
        return False
    check = verify_output(target.path, target.existing_sha256)
    if not check:
        log.warning("%s is there but %s; it is restored again", target.path, check.reason)
    return bool(check)


class _OutputWriter:
    """Writes one item's restoration: records it (hash, size, faces) before the file appears, writes a
    checked temporary, then renames it into place and records the outcome in one guarded transaction
    (lease and claim re-checked there; a name taken meanwhile by a file no batch wrote moves the output
    beside it)."""

    def __init__(self, catalog: Catalog, lease: leases.Lease, job_id: int, item_id: int,
                 target: outputs.OutputTarget, options: RestoreOptions):
        self.catalog, self.lease, self.job_id, self.item_id = catalog, lease, job_id, item_id
        self.target = target
        self.options = options
        self.recorded = False
        self.output: str | None = None
        self.kept: str | None = target.kept
        self.faces: list[FaceRecord] = []

    def __call__(self, result: PhotoRestoration, like=None) -> None:
        from engine.imageio import encode_image, stage_encoded

        self.faces = face_records(result.faces)
        encoded = encode_image(self.target.path, result.pixels, like=like)
        with leases.guarded(self.catalog, self.lease) as session:
            jobs.record_pending_output(session, self.item_id, encoded.sha256, len(encoded.data), self.faces)
        staged = stage_encoded(encoded)
        try:
            with leases.guarded(self.catalog, self.lease) as session:
                item = session.get(BatchItem, self.item_id)
                if not outputs.holds(session, self.item_id, self.target.path):
                    raise outputs.OutputClaimedError(f"{self.target.path} is no longer this photo's output "
                                                     "(claimed by another batch meanwhile); nothing was written")
                written = self._commit(session, item, staged)
                jobs.record_item(session, self.job_id, self.item_id, "done", None, written,
                                 settings=self.options.to_dict(), model_versions={"models_dir": self.options.models_dir},
                                 faces=self.faces)
        finally:
            staged.discard()  # nothing left once renamed
        self.recorded, self.output = True, str(written)

    def _commit(self, session, item: BatchItem, staged) -> Path:
        from engine.imageio import OutputTakenError

        path, own = self.target.path, self.target.existing_sha256
        for _ in range(3):
            if own is not None and outputs.file_sha256(path) == own:
                return staged.commit(replace=True, to=Path(path)).path  # the batch's own earlier output
            try:
                return staged.commit(to=Path(path)).path
            except OutputTakenError:  # a file appeared under that name while this photo was restored
                moved = outputs.move_beside(session, item, kept=path)
                self.kept, path, own = path, moved.path, moved.existing_sha256
        raise outputs.OutputClaimedError(f"files keep appearing under the output's name {path}; nothing was written")


def run_job(catalog: Catalog, job_id: int, restorer: PhotoRestorer, progress: ProgressCallback | None = None,
            cancel: CancelCheck | None = None, on_item: ItemCallback | None = None,
            heartbeat_seconds: float = leases.HEARTBEAT_SECONDS, stall_seconds: float | None = None) -> BatchSummary:
    """Restore the job's pending photos with the options the job was started with, recording each
    outcome as it happens, holding the job's lease throughout.

    A job that was cancelled or finished is re-opened ("running") first, and its done photos whose
    output is gone or changed are put back in line. `on_item(item_id, status, reason)` is called after
    each photo's outcome is committed. Raises JobBusyError when a live other process runs the job,
    LeaseLostError when it was taken over meanwhile (nothing more is written), CancelledError when
    `cancel` asks to stop or the job was cancelled elsewhere (the photo in flight stays pending),
    ModelPackError when the pack is broken (every photo would fail alike), UsageError when the job no
    longer exists; any other error of one photo marks only that photo failed. `stall_seconds`: how
    long without progress before the lease is no longer renewed (leases.STALL_SECONDS).
    """
    with leases.hold(catalog, job_id, interval=heartbeat_seconds, stall_seconds=stall_seconds) as keeper:
        def stop() -> bool:
            keeper.progressed()  # asked between denoising steps and photos: the run is moving
            return keeper.should_stop() or bool(cancel is not None and cancel())

        try:
            return _run_held_job(catalog, keeper.lease, job_id, restorer, progress, stop, on_item)
        except CancelledError:
            if keeper.lost:
                raise LeaseLostError(f"batch {job_id} was taken over by another process; this one stopped "
                                     "(the photo in flight is left to it)") from None
            if keeper.cancelled_elsewhere:
                raise CancelledError(f"batch {job_id} was cancelled from another process (`faceme jobs cancel`); "
                                     f"`faceme jobs resume {job_id}` continues it") from None
            raise


def _run_held_job(catalog: Catalog, lease: leases.Lease, job_id: int, restorer: PhotoRestorer,
                  progress: ProgressCallback | None, cancel: CancelCheck, on_item: ItemCallback | None) -> BatchSummary:
    from engine.imageio import remove_partial_writes

    start = time.monotonic()
    with leases.guarded(catalog, lease) as session:
        reopened = jobs.reopen_lost_outputs(session, job_id)
        job = jobs.open_job(session, job_id)
    for output, what in reopened:
        log.info("%s was %s; the photo is looked at again", output, what)
    adopted: set[str] = set()  # outputs found already there, the batch's own: done without restoring
    options = RestoreOptions.from_dict(job.options)
    summary = BatchSummary(job_id, str(job.out_dir), total=len(job.items), reopened=reopened)
    if job.out_dir.exists():
        for leftover in remove_partial_writes(job.out_dir):
            log.info("removed a partial output left by an interrupted run: %s", leftover)
    done = sum(1 for item in job.items if item.status != "pending")
    summary.already_done = done
    # progress counts this run's photos: those done before it are no work, and would make its rate look fast
    report(progress, 0, summary.total - summary.already_done, "restoring")
    for item in job.items:
        if item.status != "pending":
            continue
        check_cancelled(cancel, "batch")
        path, status, reason, faces, output = _run_item(catalog, lease, job_id, item, restorer, options, cancel,
                                                        summary)
        if on_item is not None:
            on_item(item.id, status, reason)
        if status == "done" and faces is not None:
            summary.restored += 1
            summary.faces.append((path, faces))
        elif status == "done":
            summary.already_done += 1  # its output was already there (an interrupted or earlier run)
            adopted.add(output)
        elif status == "skipped":
            summary.skipped.append((path, reason))
        else:
            summary.failed.append((path, reason))
        done += 1  # an output found already there joins already_done: no work of this run either
        report(progress, done - summary.already_done, summary.total - summary.already_done,
               os.path.basename(path))
    # an output only touched since its run is still the batch's own file: not "restored again"
    summary.reopened = [(output, what) for output, what in summary.reopened if output not in adopted]
    this_run = {p for p, _ in summary.skipped} | {p for p, _ in summary.failed}
    with leases.guarded(catalog, lease) as session:
        finished = jobs.finish_job(session, job_id)
    for path, status, reason in finished:
        if status in ("skipped", "failed") and path not in this_run:
            summary.earlier.append((path, status, reason or ""))
    summary.seconds = time.monotonic() - start
    return summary


def _run_item(catalog: Catalog, lease: leases.Lease, job_id: int, item: jobs.PendingItem, restorer: PhotoRestorer,
              options: RestoreOptions, cancel: CancelCheck, summary: BatchSummary):
    """Restore one pending item and record its outcome; returns (photo path, status, reason, this run's
    face records (None: not restored in this run), output path)."""
    path, photo_status = jobs.photo_for_item(catalog, item.photo_id)
    try:
        target = _prepare(catalog, lease, item.id)
    except outputs.OutputClaimedError as exc:
        return _record(catalog, lease, job_id, item.id, path, "failed", exc.message)
    if target.kept:
        log.warning("%s is not a file a batch of this photo wrote; it is kept, and the output is %s",
                    target.kept, target.path)
    if _adoptable(target):
        # written (recorded first) by a run killed before it could commit, or by an earlier job
        with leases.guarded(catalog, lease) as session:
            faces = jobs.recorded_faces(session, target.existing_sha256) or []
            jobs.record_pending_output(session, item.id, target.existing_sha256, os.path.getsize(target.path), faces)
            jobs.record_item(session, job_id, item.id, "done",
                             "output already there (an interrupted or earlier run; verified)", Path(target.path),
                             settings=options.to_dict(), faces=faces)
        return path, "done", "output already there (an interrupted or earlier run; verified)", None, target.path
    if photo_status != "ok":
        return _record(catalog, lease, job_id, item.id, path, "skipped", f"photo is {photo_status}")
    writer = _OutputWriter(catalog, lease, job_id, item.id, target, options)
    try:
        Path(target.path).parent.mkdir(parents=True, exist_ok=True)
        result = restorer.restore(catalog, item.photo_id, Path(path), Path(target.path), options, cancel,
                                  write=writer)
        if writer.recorded:
            if writer.kept:
                summary.kept_beside.append((writer.kept, writer.output))
            return path, "done", None, writer.faces, writer.output
        status, reason = ("skipped", nothing_restored(result)) if not result.restored_count else \
            ("failed", "the restorer restored faces but wrote no output")
    except (CancelledError, LeaseLostError):
        raise  # not a failure: the item stays pending (for the next run, or for the process that took over)
    except NoFaceError as exc:
        status, reason = "skipped", exc.message
    except FaceMeError as exc:
        if exc.exit_code == 4:  # the model pack is broken: every photo would fail the same way
            raise
        status, reason = "failed", str(exc)
    except Exception as exc:  # one bad photo must not stop an album; it is reported
        log.exception("restoring %s failed", path)
        status, reason = "failed", f"{exc.__class__.__name__}: {exc}"
    if writer.recorded:  # an error after the output and its record were committed: it stands
        return path, "done", None, writer.faces, writer.output
    return _record(catalog, lease, job_id, item.id, path, status, reason)


def _record(catalog: Catalog, lease: leases.Lease, job_id: int, item_id: int, path: str, status: str,
            reason: str | None):
    with leases.guarded(catalog, lease) as session:
        jobs.record_item(session, job_id, item_id, status, reason)
    return path, status, reason, None, None
