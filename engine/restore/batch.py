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

Crash safety: outputs are written atomically by engine.imageio (temporary file, then rename), so an
output file is always whole; an output's SHA-256 is recorded before the file appears (encode_image,
record_output_hash, write_encoded), and the item is marked done in the same transaction that records
its restoration. A resumed job first deletes temporary files that a killed write left behind, and takes
an item whose output already exists as done only when it is the very file recorded (verify_output:
those bytes, decodable); a truncated, replaced or unrecorded file is restored again. So no photo is
restored twice and no damaged output counts as done.

One process at a time: run_job holds the job's lease (engine.catalog.leases.hold, with heartbeats) for
the whole run; a job a live other process runs is refused with JobBusyError, a killed owner's job is
taken over. The run stops like a user's cancel when the lease is lost or the job is cancelled from
another process (`faceme jobs cancel`).

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
from typing import TYPE_CHECKING, Protocol

import numpy as np

from engine.catalog import jobs, leases
from engine.catalog.db import Catalog
from engine.catalog.jobs import FaceRecord
from engine.errors import CancelledError, FaceMeError, LeaseLostError, NoFaceError, UsageError
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report
from engine.restore.options import RestoreOptions
from engine.restore.photo import PhotoRestoration
from engine.restore.plan import PlannedFace

if TYPE_CHECKING:
    from engine.imageio import LoadedImage

log = logging.getLogger(__name__)


#: writes a restored photo's pixels to its item's output (`like`: the input, for format and metadata)
OutputWrite = Callable[[np.ndarray, "LoadedImage | None"], None]


class PhotoRestorer(Protocol):
    def restore(self, catalog: Catalog, photo_id: int, input_path: Path, output_path: Path,
                options: RestoreOptions, cancel: CancelCheck | None, write: OutputWrite) -> PhotoRestoration:
        """Restore one album photo as its plan says; when a face was restored, hand the pixels to `write`
        (which records the output's hash, then writes output_path atomically)."""


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
                                  None if v is None else v.verdict, None if v is None else v.model))
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
    (`seed`, None: a fresh one) and `tries` (None: the job's), the output replaced atomically and the
    new restoration recorded (the newest is the one shown). The item stays done."""
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
    output = job.out_dir / item.relative_output
    output.parent.mkdir(parents=True, exist_ok=True)
    written: dict = {}
    result = restorer.restore(catalog, item.photo_id, Path(path), output, options, cancel,
                              _writer(catalog, item.id, output, written))
    if not result.restored_count:
        raise UsageError(nothing_restored(result), path)
    jobs.record_item(catalog, job_id, item.id, "done", None, output, settings=options.to_dict(),
                     model_versions={"models_dir": options.models_dir}, faces=face_records(result.faces),
                     output_sha256=written.get("sha256"))
    return result


def nothing_restored(result: PhotoRestoration) -> str:
    if not result.faces:
        return "no face found (neither the scan nor the restore detector found one)"
    reasons = list(dict.fromkeys(f.reason for f in result.faces))
    return "no face to restore: " + "; ".join(reasons)


def _verified_output(output: Path, sha256: str | None) -> bool:
    """An output already there counts as done only when it is the very file recorded as written."""
    from engine.imageio import verify_output

    if not output.exists():
        return False
    check = verify_output(output, sha256)
    if not check:
        log.warning("%s is there but %s; it is restored again", output, check.reason)
    return bool(check)


def _writer(catalog: Catalog, item_id: int, output: Path, written: dict) -> OutputWrite:
    def write(pixels: np.ndarray, like=None) -> None:
        from engine.imageio import encode_image, write_encoded

        encoded = encode_image(output, pixels, like=like)
        jobs.record_output_hash(catalog, item_id, encoded.sha256)  # before the file appears
        write_encoded(encoded)
        written["sha256"] = encoded.sha256

    return write


def run_job(catalog: Catalog, job_id: int, restorer: PhotoRestorer, progress: ProgressCallback | None = None,
            cancel: CancelCheck | None = None, on_item: ItemCallback | None = None,
            heartbeat_seconds: float = leases.HEARTBEAT_SECONDS) -> BatchSummary:
    """Restore the job's pending photos with the options the job was started with, recording each
    outcome as it happens, holding the job's lease throughout.

    A job that was cancelled is re-opened ("running") first. `on_item(item_id, status, reason)` is
    called after each photo's outcome is committed. Raises JobBusyError when a live other process runs
    the job, CancelledError when `cancel` asks to stop or the job was cancelled or taken over elsewhere
    (the photo in flight stays pending), ModelPackError when the pack is broken (every photo would
    fail alike), UsageError when the job no longer exists; any other error of one photo marks only
    that photo failed.
    """
    with leases.hold(catalog, job_id, interval=heartbeat_seconds) as keeper:
        def stop() -> bool:
            return keeper.should_stop() or bool(cancel is not None and cancel())

        try:
            return _run_held_job(catalog, job_id, restorer, progress, stop, on_item)
        except CancelledError:
            if keeper.lost:
                raise LeaseLostError(f"batch {job_id} was taken over by another process; this one stopped "
                                     "(the photo in flight is left to it)") from None
            if keeper.cancelled_elsewhere:
                raise CancelledError(f"batch {job_id} was cancelled from another process (`faceme jobs cancel`); "
                                     f"`faceme jobs resume {job_id}` continues it") from None
            raise


def _run_held_job(catalog: Catalog, job_id: int, restorer: PhotoRestorer, progress: ProgressCallback | None,
                  cancel: CancelCheck, on_item: ItemCallback | None) -> BatchSummary:
    from engine.imageio import remove_partial_writes

    start = time.monotonic()
    job = jobs.open_job(catalog, job_id)
    options = RestoreOptions.from_dict(job.options)
    summary = BatchSummary(job_id, str(job.out_dir), total=len(job.items))
    if job.out_dir.exists():
        for leftover in remove_partial_writes(job.out_dir):
            log.info("removed a partial output left by an interrupted run: %s", leftover)
    earlier = jobs.earlier_output_hashes(catalog, job_id)
    done = sum(1 for item in job.items if item.status != "pending")
    summary.already_done = done
    report(progress, done, summary.total, "restoring")
    work_start, worked = time.monotonic(), 0
    for item in job.items:
        if item.status != "pending":
            continue
        check_cancelled(cancel, "batch")
        output = job.out_dir / item.relative_output
        path, photo_status = jobs.photo_for_item(catalog, item.photo_id)
        result, written = None, {}
        known = item.output_sha256 or earlier.get(item.id)
        if _verified_output(output, known):
            # written (hash recorded first) by a run killed before it could commit, or by an earlier job
            status, reason = "done", "output already there (an interrupted or earlier run; verified)"
            written["sha256"] = known
        elif photo_status != "ok":
            status, reason = "skipped", f"photo is {photo_status}"
        else:
            try:
                output.parent.mkdir(parents=True, exist_ok=True)
                result = restorer.restore(catalog, item.photo_id, Path(path), output, options, cancel,
                                          write=_writer(catalog, item.id, output, written))
                status, reason = ("done", None) if result.restored_count else ("skipped", nothing_restored(result))
            except CancelledError:
                raise  # not a failure: the item stays pending and is restored on the next run
            except NoFaceError as exc:
                status, reason = "skipped", exc.message
            except FaceMeError as exc:
                if exc.exit_code == 4:  # the model pack is broken: every photo would fail the same way
                    raise
                status, reason = "failed", str(exc)
            except Exception as exc:  # one bad photo must not stop an album; it is reported
                log.exception("restoring %s failed", path)
                status, reason = "failed", f"{exc.__class__.__name__}: {exc}"
        restored = status == "done" and result is not None
        faces = face_records(result.faces) if restored else []
        jobs.record_item(catalog, job_id, item.id, status, reason, output if status == "done" else None,
                         settings=options.to_dict(), model_versions={"models_dir": options.models_dir} if restored
                         else None, faces=faces, output_sha256=written.get("sha256"))
        if on_item is not None:
            on_item(item.id, status, reason)
        if restored:
            summary.restored += 1
            summary.faces.append((path, faces))
        elif status == "done":
            summary.already_done += 1  # its output was already there (an interrupted or earlier run)
        elif status == "skipped":
            summary.skipped.append((path, reason))
        else:
            summary.failed.append((path, reason))
        done += 1
        worked += 1
        eta = (summary.total - done) * (time.monotonic() - work_start) / worked
        report(progress, done, summary.total, f"{os.path.basename(path)} (eta {eta:.0f} s)")
    this_run = {p for p, _ in summary.skipped} | {p for p, _ in summary.failed}
    for path, status, reason in jobs.finish_job(catalog, job_id):
        if status in ("skipped", "failed") and path not in this_run:
            summary.earlier.append((path, status, reason or ""))
    summary.seconds = time.monotonic() - start
    return summary
