"""One time-left estimate per progress line, from this run's work only (issue 19, item 6a).

A batch reports this run's photos (those done before it, by an earlier run or found already written,
are no work); the CLI's bar measures its rate on them. The bar's clock is a fake one that the stand-in
restorer moves on by 30 s per photo, so the estimate is exact.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from catalog_testkit import three_photo_job

from engine.catalog import jobs
from engine.cli import progress_bar
from engine.cli.progress_bar import ProgressBar
from engine.errors import CancelledError
from engine.imageio import read_image
from engine.progress import check_cancelled
from engine.restore import batch
from engine.restore.options import RestoreOptions
from engine.restore.photo import PhotoRestoration

SECONDS_PER_PHOTO = 30.0


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class SlowCopyRestorer:
    """Writes the photo unchanged as its output, taking 30 s of the fake clock per photo."""

    def __init__(self, clock: FakeClock, stop_at: int | None = None):
        self.clock = clock
        self.stop_at = stop_at
        self.calls: list[str] = []

    def restore(self, catalog, photo_id: int, input_path: Path, output_path: Path, options: RestoreOptions,
                cancel, write) -> PhotoRestoration:
        from engine.faces.types import Face
        from engine.restore.plan import PlannedFace

        self.calls.append(input_path.name)
        check_cancelled(lambda: len(self.calls) == self.stop_at, "restoration")
        self.clock.now += SECONDS_PER_PHOTO
        loaded = read_image(input_path)
        face = Face((0.0, 0.0, 10.0, 10.0), 1.0, np.zeros((5, 2), np.float32))
        result = PhotoRestoration(loaded.pixels, [PlannedFace(face, "blind", "copied", seed=1)])
        write(result, loaded)
        return result


class RecordingBar(ProgressBar):
    """The CLI's bar on a string stream, also keeping each report as it came."""

    def __init__(self):
        super().__init__("restoring", stream=io.StringIO(), delay=0.0, unit=" photos")
        self.reports: list[tuple[int, int, str]] = []

    def __call__(self, done: int, total: int, message: str = "") -> None:
        self.reports.append((done, total, message))
        super().__call__(done, total, message)

    def lines(self) -> list[str]:
        return [line.strip() for line in self.stream.getvalue().replace("\n", "\r").split("\r") if line.strip()]


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(progress_bar, "time", fake)  # the bar's clock only: leases keep the real one
    return fake


@pytest.fixture
def job(shared, tmp_path, catalog, analyzer):
    return three_photo_job(shared, tmp_path, catalog, analyzer)


def _line_after(bar: RecordingBar, name: str) -> str:
    return next(line for line in bar.lines() if line.endswith(name))


def test_a_resumed_batch_counts_only_this_runs_photos_and_shows_one_eta(catalog, job, clock):
    job_id, names = job
    with pytest.raises(CancelledError):  # the first photo done, then stopped inside the second
        batch.run_job(catalog, job_id, SlowCopyRestorer(clock, stop_at=2))

    bar = RecordingBar()
    batch.run_job(catalog, job_id, SlowCopyRestorer(clock), progress=bar)
    assert bar.reports == [(0, 2, "restoring"), (1, 2, names[1]), (2, 2, names[2])]
    line = _line_after(bar, names[1])
    # 30 s for this run's one photo, one to go: 30 s (the photo done before must not halve the rate)
    assert "1/2 photos" in line and line.count("eta") == 1 and "eta 30 s" in line, line
    assert "eta" not in _line_after(bar, names[2])  # finished: nothing left to estimate


def test_outputs_found_already_written_do_not_make_the_rate_look_fast(catalog, job, clock, monkeypatch):
    job_id, names = job
    real_record = jobs.record_item

    def killed_before_the_commit(session, job_id, item_id, status, reason, output=None, **kwargs):
        if status == "done" and output is not None:
            raise CancelledError("killed after the write")
        return real_record(session, job_id, item_id, status, reason, output, **kwargs)

    with monkeypatch.context() as patch:  # the first output written, the process "killed" before its commit
        patch.setattr(jobs, "record_item", killed_before_the_commit)
        with pytest.raises(CancelledError):
            batch.run_job(catalog, job_id, SlowCopyRestorer(clock))

    bar = RecordingBar()
    restorer = SlowCopyRestorer(clock)
    summary = batch.run_job(catalog, job_id, restorer, progress=bar)
    assert summary.already_done == 1 and restorer.calls == names[1:]  # the written output is taken as done
    # it leaves this run's count: 2 photos to restore, not 3 of which one took no time
    assert bar.reports == [(0, 3, "restoring"), (0, 2, names[0]), (1, 2, names[1]), (2, 2, names[2])]
    line = _line_after(bar, names[1])
    assert "1/2 photos" in line and line.count("eta") == 1 and "eta 30 s" in line, line


def test_the_bar_measures_its_rate_from_its_first_report(clock):
    bar = ProgressBar("download", stream=io.StringIO(), delay=0.0, unit=" MB")
    bar(14, 31, "")  # 14 done before this run
    assert bar.seconds_left(14, 31) is None  # no rate yet: no estimate rather than "0 s"
    clock.now += 10
    bar(15, 31, "")
    assert bar.seconds_left(15, 31) == pytest.approx(10 * 16)
    assert "eta 2 min 40 s" in bar.stream.getvalue()
    assert ProgressBar("x", eta=False, stream=io.StringIO()).seconds_left(1, 2) is None
