"""Batch jobs as the GUI drives them: cancel inside a photo, resume, cancel for good, retry failures.

The restorer is a stand-in behind engine.restore.batch's PhotoRestorer protocol (the job bookkeeping is
what is tested; test_batch.py runs the real FaceMe restorer on the tiny pack). It writes real outputs
through engine.imageio and checks cancellation through engine.progress like restore_photo does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import pytest
from catalog_testkit import three_photo_job
from sqlalchemy import func, select

from engine.catalog import jobs
from engine.catalog.models import Restoration
from engine.errors import CancelledError, UsageError
from engine.imageio import read_image
from engine.progress import check_cancelled
from engine.restore import batch as restore_batch
from engine.restore.options import RestoreOptions
from engine.restore.photo import PhotoRestoration


class _Batch:
    """The job table (engine.catalog.jobs) and the runner (engine.restore.batch) under one name."""

    def __getattr__(self, name):
        return getattr(restore_batch if name == "run_job" else jobs, name)


batch = _Batch()


class CopyRestorer:
    """Writes the photo unchanged as its output; stops (as restore_photo does) when `cancel` says so,
    and fails on the photos named in `broken`."""

    def __init__(self, cancel=None, stop_at: int | None = None, broken: tuple[str, ...] = ()):
        self.cancel = cancel
        self.stop_at = stop_at
        self.broken = broken
        self.calls: list[str] = []

    def restore(self, catalog, photo_id: int, input_path: Path, output_path: Path, options: RestoreOptions,
                cancel, write) -> PhotoRestoration:
        assert options.steps == 1  # the options the job was started with
        self.calls.append(input_path.name)
        if self.stop_at is not None and len(self.calls) == self.stop_at:
            self.stop_requested = True  # the user presses Stop while this photo is being restored
        check_cancelled(self.cancel, "restoration")
        if input_path.name in self.broken:
            raise RuntimeError("the GPU fell over")
        loaded = read_image(input_path)
        from engine.faces.types import Face
        from engine.restore.plan import PlannedFace

        face = Face((0.0, 0.0, 10.0, 10.0), 1.0, np.zeros((5, 2), np.float32))
        result = PhotoRestoration(loaded.pixels, [PlannedFace(face, "blind", "copied", seed=1)])
        write(result, loaded)
        return result


@pytest.fixture
def job(shared, tmp_path, catalog, analyzer):
    return three_photo_job(shared, tmp_path, catalog, analyzer)


def _statuses(catalog, job_id) -> dict[str, str]:
    return {item.photo.name: item.status for item in batch.get_job(catalog, job_id).items}


def test_a_stop_inside_a_photo_keeps_it_pending_and_resume_redoes_it(catalog, job, tmp_path):
    job_id, names = job
    restorer = CopyRestorer(stop_at=2)
    restorer.cancel = lambda: getattr(restorer, "stop_requested", False)
    reported = []
    with pytest.raises(CancelledError):
        batch.run_job(catalog, job_id, restorer, cancel=restorer.cancel,
                      on_item=lambda *event: reported.append(event))
    statuses = _statuses(catalog, job_id)
    assert statuses == {names[0]: "done", names[1]: "pending", names[2]: "pending"}  # not "failed"
    assert [status for _, status, _ in reported] == ["done"]
    row = batch.get_job(catalog, job_id)
    assert row.status == "running" and all(i.reason is None for i in row.items if i.status == "pending")
    assert batch.unfinished_job(catalog) == job_id  # the next start carries on by itself
    assert not (tmp_path / "out" / names[1]).exists()

    # the user cancels it for good: not resumed by itself any more, but Resume (run_job) re-opens it
    assert batch.cancel_job(catalog, job_id) is True
    assert batch.get_job(catalog, job_id).status == "cancelled" and batch.unfinished_job(catalog) is None
    again = CopyRestorer()
    summary = batch.run_job(catalog, job_id, again, on_item=lambda *event: reported.append(event))
    assert again.calls == names[1:]  # the interrupted photo is redone, the finished one is not
    assert summary.restored == 2 and summary.already_done == 1
    assert _statuses(catalog, job_id) == dict.fromkeys(names, "done")
    assert [status for _, status, _ in reported] == ["done"] * 3
    jobs = batch.list_jobs(catalog)
    assert [(j.id, j.status) for j in jobs] == [(job_id, "done")]
    assert all(i.output.exists() and i.output == tmp_path / "out" / i.photo.name for i in jobs[0].items)
    assert batch.cancel_job(catalog, job_id) is False  # a finished job stays finished
    with catalog.session() as session:
        assert session.scalar(select(func.count(Restoration.id))) == 3


def test_failed_photos_are_retried(catalog, job):
    job_id, names = job
    summary = batch.run_job(catalog, job_id, CopyRestorer(broken=(names[1],)))
    assert [reason for _, reason in summary.failed] == ["RuntimeError: the GPU fell over"]
    row = batch.get_job(catalog, job_id)
    assert row.status == "done" and [i.status for i in row.items] == ["done", "failed", "done"]

    assert batch.retry_failed(catalog, job_id) == 1
    row = batch.get_job(catalog, job_id)
    assert row.status == "running" and row.items[1].status == "pending" and row.items[1].reason is None
    retry = CopyRestorer()
    summary = batch.run_job(catalog, job_id, retry)
    assert retry.calls == [names[1]] and summary.restored == 1 and not summary.failed
    assert batch.retry_failed(catalog, job_id) == 0


def test_a_job_that_is_gone_is_a_usage_error(catalog):
    for call in (lambda: batch.get_job(catalog, 99), lambda: batch.retry_failed(catalog, 99),
                 lambda: batch.run_job(catalog, 99, CopyRestorer())):
        with pytest.raises(UsageError, match="batch 99 no longer exists"):
            call()
    assert batch.cancel_job(catalog, 99) is False and batch.list_jobs(catalog) == []
    assert batch.unfinished_job(catalog) is None


def test_an_output_written_before_a_kill_counts_only_while_it_is_the_recorded_file(catalog, job, tmp_path,
                                                                                   monkeypatch):
    from engine.catalog.models import BatchItem

    job_id, names = job
    real_record = jobs.record_item

    def killed_before_the_commit(session, job_id, item_id, status, reason, output=None, **kwargs):
        if status == "done" and output is not None:  # the output is renamed into place; the commit never comes
            raise CancelledError("killed after the write")
        return real_record(session, job_id, item_id, status, reason, output, **kwargs)

    monkeypatch.setattr(jobs, "record_item", killed_before_the_commit)
    with pytest.raises(CancelledError):  # the first photo written, then "killed" before its commit
        batch.run_job(catalog, job_id, CopyRestorer())
    monkeypatch.setattr(jobs, "record_item", real_record)
    assert _statuses(catalog, job_id) == dict.fromkeys(names, "pending")
    with catalog.session() as session:
        hashes = {i.relative_output: i.output_sha256 for i in session.scalars(select(BatchItem))}
    assert hashes[names[0]] is not None and hashes[names[1]] is None  # recorded before the write, no commit

    kept = tmp_path / "out" / names[0]
    kept_bytes = kept.read_bytes()
    again = CopyRestorer()
    summary = batch.run_job(catalog, job_id, again)
    assert again.calls == names[1:]  # the verified output is done, not restored again
    assert summary.already_done == 1 and summary.restored == 2 and kept.read_bytes() == kept_bytes
    first = batch.get_job(catalog, job_id).items[0]
    assert [(f.action, f.reason) for f in first.faces] == [("blind", "copied")]  # its faces, recorded before

    # a truncated output of a finished job: the same command again (the same job, re-run) restores that photo
    # again, beside the damaged file (no longer the file a batch wrote: it is kept); the whole ones stay done
    damaged = tmp_path / "out" / names[1]
    damaged.write_bytes(damaged.read_bytes()[:2000])
    album = tmp_path / "album"
    second = batch.start_or_resume(catalog, [album], tmp_path / "out", RestoreOptions(steps=1), scan_first=False)
    assert second == job_id  # not a second job over the same photos and files
    third = CopyRestorer()
    summary = batch.run_job(catalog, second, third)
    assert third.calls == [names[1]] and summary.restored == 1 and summary.already_done == 2
    beside = damaged.with_name(f"{damaged.stem} (2){damaged.suffix}")
    assert summary.kept_beside == [(str(damaged), str(beside))]
    assert damaged.stat().st_size == 2000
    assert read_image(beside).pixels.shape == read_image(album / names[1]).pixels.shape
    with catalog.session() as session:  # one restoration per photo, and one more for the one restored again
        per_photo = session.execute(select(Restoration.photo_id, func.count(Restoration.id))
                                    .group_by(Restoration.photo_id)).all()
    assert sorted(n for _, n in per_photo) == [1, 1, 2]


def test_a_job_cancelled_from_another_process_stops_at_the_next_heartbeat(catalog, job):
    """run_job holds the lease with heartbeats: `faceme jobs cancel` elsewhere stops it like the user's
    cancel, with a message saying where it was cancelled; the photo in flight stays pending."""
    import time

    from engine.catalog import leases

    job_id, names = job
    seen = {}

    class CancelledMeanwhile(CopyRestorer):
        def restore(self, catalog, photo_id, input_path, output_path, options, cancel, write):
            seen["owner"] = leases.owner_of(catalog, job_id)
            batch.cancel_job(catalog, job_id)  # as `faceme jobs cancel` does from another process
            deadline = time.monotonic() + 10
            while not cancel() and time.monotonic() < deadline:
                time.sleep(0.02)
            self.cancel = cancel  # the run's check: the user's and the lease's
            return super().restore(catalog, photo_id, input_path, output_path, options, cancel, write)

    with pytest.raises(CancelledError, match="cancelled from another process"):
        batch.run_job(catalog, job_id, CancelledMeanwhile(), heartbeat_seconds=0.05)
    assert seen["owner"].mine and seen["owner"].alive  # held while it ran
    assert leases.owner_of(catalog, job_id) is None  # released when it stopped
    assert _statuses(catalog, job_id) == dict.fromkeys(names, "pending")


def test_a_face_or_person_removed_while_its_photo_was_restored_is_recorded_without_a_dangling_link(catalog, job):
    """Issue 19: a re-analysis or a merge in another process removed a face and a person while a batch restored
    their photo: the outcome is recorded (by name and box) instead of failing with a foreign-key error."""
    from engine.catalog.jobs import FaceRecord, record_item
    from engine.catalog.models import RestorationFace

    job_id, _ = job
    item = batch.get_job(catalog, job_id).items[0]
    gone = FaceRecord(0, "restored", "as the album says", (1.0, 2.0, 3.0, 4.0), face_id=987654, person_id=876543,
                      person_name="Ann", seed=5)
    with catalog.transaction() as session:
        record_item(session, job_id, item.id, "done", None, Path("/out/p.jpg"), faces=[gone])
    with catalog.session() as session:
        row = session.scalars(select(RestorationFace)).one()
        assert (row.face_id, row.person_id, row.person_name, row.seed) == (None, None, "Ann", 5)
