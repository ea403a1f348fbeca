"""Helpers for the app's tests: a window like the app's own, and waiting until its jobs are done.

A module of its own (not conftest) so that tests import it by a unique name when tests/app runs in one
pytest call with the other test folders, each of which has its own conftest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def make_window(qtbot, tmp: Path, **options):
    from app import theme
    from app.__main__ import build_window
    from app.logs import setup_logging
    from PySide6.QtWidgets import QApplication

    theme.apply(QApplication.instance())
    log_path = setup_logging(tmp / "log")
    window = build_window(tmp / "config" / "studio.json", log_path, **options)
    window.context.preferences.device = "cpu"
    qtbot.addWidget(window, before_close_func=lambda w: None)
    window.resize(1280, 820)
    window.show()
    return window


def wait_idle(qtbot, window, timeout: float = 60.0) -> None:
    """Until no job runs and the queued results have been delivered."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        qtbot.wait(20)
        if window.context.runner.is_busy():
            quiet_since = None
            continue
        quiet_since = quiet_since or time.monotonic()
        if time.monotonic() - quiet_since > 0.1:
            return
    raise AssertionError(f"jobs still running after {timeout} s: {[j.doing for j in window.context.runner.jobs]}")


def window_with_dropped_photo(qtbot, tmp: Path, models_dir: Path, photo: Path, **options):
    """A window set to restore with the pack in `models_dir` (results under tmp/out), `photo` dropped on
    it and analysed: the Restore page shows its faces."""
    window = make_window(qtbot, tmp, **options)
    prefs = window.context.preferences
    prefs.models_dir = str(models_dir)
    prefs.output_dir = str(tmp / "out")
    window.handle_dropped_paths([photo])
    wait_idle(qtbot, window)
    return window


def one_photo_job(env: Path, models_dir: Path | None = None) -> int:
    """A batch job of one photo, as `faceme batch` leaves it in the catalog (with the job's own models folder
    when given)."""
    import numpy as np

    from engine.catalog.db import open_catalog
    from engine.catalog.models import BatchItem, BatchJob, Face, Photo
    from engine.restore.options import RestoreOptions

    options = RestoreOptions(steps=1) if models_dir is None else RestoreOptions(steps=1, models_dir=str(models_dir))
    catalog = open_catalog(env / "catalog.sqlite3")
    try:
        with catalog.transaction() as session:
            photo = Photo(path=str(env / "album" / "a.jpg"), size=1, mtime_ns=1)
            photo.faces.append(Face(x1=1, y1=2, x2=300, y2=400, score=0.9, landmarks=[[1, 2]] * 5,
                                    embedding=Face.pack(np.ones(128) / np.sqrt(128)),
                                    embedding_model="dlib/resnet-128"))
            job = BatchJob(out_dir=str(env / "out"), roots=[str(env / "album")], options=options.to_dict())
            session.add_all([photo, job])
            session.flush()
            session.add(BatchItem(job_id=job.id, photo_id=photo.id, relative_output="a.jpg"))
            return job.id
    finally:
        catalog.close()


def hold_job_then_signal(env: Path, job_id: int, signum: int) -> int:
    """A `faceme` process (engine.testing.lease_holder) holds the batch's lease, then gets `signum`: SIGINT
    as a Ctrl-C in the terminal leaves it (unfinished, let go of), SIGKILL as `kill -9` does (status
    running, owner gone). Returns the holder's pid."""
    holder = subprocess.Popen([sys.executable, "-m", "engine.testing.lease_holder", str(env / "catalog.sqlite3"),
                               str(job_id)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()
    finally:
        holder.send_signal(signum)
        holder.wait(timeout=30)
    return holder.pid
