"""The Queue page's work over the catalog's batch jobs (engine.catalog.jobs, engine.restore.batch), run in
workers. Qt-free: the page turns the callbacks into signals."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from engine.text import plural

log = logging.getLogger(__name__)

#: a batch still "running" in the catalog that no live process runs (Ctrl-C, a kill, the app closed
#: mid-way): `faceme jobs list` shows it as running, with "was running in process N, which stopped"
INTERRUPTED = "interrupted — resume"


@dataclass
class ItemView:
    id: int
    photo: Path
    output: Path
    status: str  # pending | running | done | skipped | failed
    reason: str | None
    faces: list[str] = field(default_factory=list)  # a restored photo's faces: person, action, reason


@dataclass
class ReviewFace:
    """A restored face the identity check doubts (uncertain or drifted): to review, or retry."""

    item_id: int
    photo: Path
    output: Path
    face_index: int
    person: str | None
    verdict: str  # uncertain | drifted
    text: str  # "Ann: may not look like Ann (0.901; before 0.915)"
    seed: int | None = None


@dataclass
class JobView:
    id: int
    out_dir: Path
    roots: list[str]
    status: str  # running | done | cancelled
    items: list[ItemView] = field(default_factory=list)
    review: list[ReviewFace] = field(default_factory=list)  # faces whose identity check says to look again
    #: who runs it when that is another live process (a CLI `faceme batch`): "running in process 1234 on …"
    elsewhere: str | None = None
    #: who ran it when that process has stopped without finishing it (killed): the words `faceme jobs
    #: list` prints, "was running in process 1234 on …, which stopped (…); it can be resumed"
    stopped: str | None = None

    @property
    def title(self) -> str:
        names = [Path(r).name or r for r in self.roots]
        return ", ".join(names[:2]) + (f" and {len(names) - 2} more" if len(names) > 2 else "")

    def counts(self) -> Counter:
        return Counter(i.status for i in self.items)

    def state_text(self, running: bool) -> str:
        if running:
            return "running"
        if self.elsewhere:
            return "running elsewhere"
        if self.status == "cancelled":
            return "cancelled"
        return "finished" if not self.counts().get("pending") else INTERRUPTED

    def owner_text(self, running: bool) -> str:
        """Who runs it, or ran it, in the CLI's words; for an interrupted batch without a recorded owner
        (its process let go when stopped), how to carry on. `running`: this window runs it."""
        if self.elsewhere:
            return f"This batch is {self.elsewhere}."
        if running or self.status != "running" or not self.counts().get("pending"):
            return ""
        if self.stopped:
            return f"This batch {self.stopped}."
        return ("This batch was stopped before it finished (the app closed, or faceme batch stopped); it can be "
                "resumed.")

    def item(self, item_id: int) -> ItemView | None:
        return next((i for i in self.items if i.id == item_id), None)

    def update_item(self, item_id: int, status: str, reason: str | None) -> None:
        entry = self.item(item_id)
        if entry is not None:
            entry.status = status
            entry.reason = reason


class StudioRestorer:
    """engine.restore.batch's PhotoRestorer on the app's one shared model (a RestorationService), loaded
    for the job's own models folder, device and memory mode, with per-photo progress."""

    def __init__(self, settings, model, on_photo=None):
        self.settings = settings
        self.model = model
        self.on_photo = on_photo

    def restore(self, catalog, photo_id, input_path, output_path, options, cancel, write=None):
        from engine.restore.batch import ServiceRestorer

        settings = self.settings.with_overrides(models_dir=options.models_dir, device=options.device,
                                                memory=options.memory)
        # a stop inside the photo raises CancelledError: engine.restore.batch.run_job keeps it pending
        with self.model.use(settings) as service:
            return ServiceRestorer(service, self.on_photo).restore(catalog, photo_id, input_path, output_path,
                                                                   options, cancel, write)


def _review(item) -> list[ReviewFace]:
    from engine.restore.batch import REVIEW_VERDICTS

    faces = []
    for f in item.faces:
        if item.status == "done" and f.verdict in REVIEW_VERDICTS:
            who = f.person_name if f.action == "restored" and f.person_name else "face restored blind"
            faces.append(ReviewFace(item.id, item.photo, item.output, f.face_index, f.person_name, f.verdict,
                                    f"face {f.face_index + 1}, {who}{f.check_phrase()}", f.seed))
    return faces


def _job_view(job, owner=None) -> JobView:
    elsewhere = owner.describe() if owner is not None and owner.elsewhere else None
    stopped = owner.describe() if owner is not None and not owner.alive else None
    return JobView(job.id, job.out_dir, list(job.roots), job.status,
                   [ItemView(i.id, i.photo, i.output, i.status, i.reason, [f.describe() for f in i.faces])
                    for i in job.items], [face for i in job.items for face in _review(i)], elsewhere, stopped)


def list_jobs(catalog) -> list[JobView]:
    """Every batch, newest first, each with who runs it when another live process does."""
    from engine.catalog import jobs
    from engine.catalog.leases import owners

    held = owners(catalog)
    return [_job_view(job, held.get(job.id)) for job in jobs.list_jobs(catalog)]


def running_elsewhere(catalog) -> set[int]:
    """The jobs another live process (a CLI `faceme batch`, another window) runs now."""
    from engine.catalog.leases import owners

    return {job_id for job_id, owner in owners(catalog).items() if owner.elsewhere}


def unfinished_job(catalog) -> int | None:
    """The newest batch that the app itself was running when it last closed (or crashed), if any; never
    one that another live process runs (shown as running elsewhere), nor one last run by `faceme batch`
    or `faceme jobs resume` and stopped there (Ctrl-C, a kill): that one stays "interrupted — resume"
    until the user resumes it (engine.catalog.leases.run_by)."""
    from engine.catalog import jobs
    from engine.catalog.leases import APP

    return jobs.unfinished_job(catalog, skip=running_elsewhere(catalog), run_by=APP)


def batch_options(settings, steps: int, guidance: float, unmatched: str = "blind", color_fix: bool = True,
                  identity_check: bool = True, tries: int = 1, recipe=None):
    """The options a new batch is started (and later resumed) with. `recipe`: each photo's whole-print
    repair (engine.repair.recipe.Recipe), stored with the job so a resumed batch repairs as it began."""
    from engine.restore.options import RestoreOptions

    return RestoreOptions(steps=int(steps), guidance_scale=float(guidance), unmatched=unmatched, color_fix=color_fix,
                          models_dir=str(settings.models_dir), device=settings.device, dtype=settings.dtype,
                          memory=settings.memory,
                          identity_check=bool(identity_check), tries=max(1, int(tries)),
                          recipe=recipe if recipe is not None and recipe.active else None)


def create_job(catalog, roots, out_dir, options, progress=None, cancel=None) -> int:
    """A new batch (or the unfinished one for the same albums and folder); albums are scanned first."""
    from engine.catalog.jobs import start_or_resume

    return start_or_resume(catalog, roots, out_dir, options, progress=progress, cancel=cancel)


def run_job(catalog, job_id: int, settings, model, progress=None, cancel=None, on_item=None, on_photo=None) -> str:
    """Run the batch's pending photos with the options it was started with; `on_item(item_id, status,
    reason)` after each one, `on_photo(item_id, name, done, total, message)` during one. A stop raises
    CancelledError (the photo in flight stays pending: Resume or the next start redoes it)."""
    from engine.catalog import jobs
    from engine.catalog.leases import APP, running_as
    from engine.restore.batch import run_job as run

    def photo_progress(photo_id, name, done, total, message):
        if on_photo is not None:
            on_photo(photo_ids.get(photo_id, -1), name, done, total, message)

    photo_ids = jobs.item_ids_by_photo(catalog, job_id)
    restorer = StudioRestorer(settings, model, on_photo=photo_progress)
    with running_as(APP):  # recorded with the job: the app carries it on at its next start if it closes now
        summary = run(catalog, job_id, restorer, progress=progress, cancel=cancel, on_item=on_item)
    return summary.lines()[0]


def cancel_job(catalog, job_id: int) -> None:
    """The user cancelled: the batch is not resumed automatically at the next start (Resume still can)."""
    from engine.catalog import jobs

    jobs.cancel_job(catalog, job_id)


def retry_failed(catalog, job_id: int) -> int:
    """Put the batch's failed photos back in line; returns how many."""
    from engine.catalog import jobs

    return jobs.retry_failed(catalog, job_id)


#: a retried face gets at least this many tries (best of N by identity) with a fresh seed
RETRY_TRIES = 3


def retry_face(catalog, job_id: int, item_id: int, settings, model, progress=None, cancel=None) -> str:
    """Restore a face to review again: its photo, with a fresh seed and best of max(the job's tries,
    RETRY_TRIES), through the app's shared model; the new result replaces the output and is recorded
    (the Queue then shows it). Returns a line about the photo's faces now."""
    from engine.catalog import jobs
    from engine.catalog.leases import APP, running_as
    from engine.restore.batch import restore_item_again
    from engine.restore.options import RestoreOptions

    options = RestoreOptions.from_dict(jobs.get_job_options(catalog, job_id))

    def photo_progress(photo_id, name, done, total, message):
        if progress is not None:
            progress(done, total, f"{name}: {message}")

    restorer = StudioRestorer(settings, model, on_photo=photo_progress)
    with running_as(APP):
        result = restore_item_again(catalog, job_id, item_id, restorer, tries=max(options.tries, RETRY_TRIES),
                                    cancel=cancel)
    verdicts = [f.check.verdict for f in result.faces if f.check is not None]
    log.info("batch %d item %d restored again: %s", job_id, item_id, verdicts)
    doubtful = sum(v != "kept" for v in verdicts)
    looking = len(verdicts) - doubtful
    return (f"restored again: {looking} of {plural(len(verdicts), 'face')} {'looks' if looking == 1 else 'look'} "
            "like the person"
            if verdicts else "restored again")


class RunClock:
    """The time left of a running batch, measured on the photos this run worked on (restored, skipped or
    failed): photos finished before it, and outputs it found already written (done in no time), would
    make the rate look fast ("about 1 s left" with 17 photos to go)."""

    def __init__(self, now: float | None = None):
        import time

        self.started = time.monotonic() if now is None else now
        self.worked = 0

    def item_finished(self, status: str, reason: str | None) -> None:
        if not (status == "done" and (reason or "").startswith("output already there")):
            self.worked += 1

    def time_left(self, pending: int, now: float | None = None) -> float | None:
        """Seconds for the `pending` photos, or None while nothing was worked on."""
        import time

        if self.worked <= 0:
            return None
        return ((time.monotonic() if now is None else now) - self.started) / self.worked * pending
