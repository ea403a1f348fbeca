"""Quitting the app while a batch runs (issue 14, item 7), as a real process: the app is started
offscreen, the user resumes a batch, and its window is closed while a photo is being restored. The
process must end by itself with exit code 0 and nothing on stderr (no "QThread: Destroyed while thread
… is still running" abort, no atexit error), the batch must stop between photos or at a denoising step
(the photo in flight stays pending, nothing half-written), and the next start carries it on (the app was
running it: issue 19, item 4)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Runs the app's own main() with a timer that closes the window once the batch restores a photo.
_DRIVER = """
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv[:1])
state = {"seen": 0}

def close_when_busy():
    from app.main_window import MainWindow
    windows = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow)]
    if windows and not state.get("started"):  # the user presses Resume on the batch
        state["started"] = True
        windows[0].queue.start(int(sys.argv[2]))
    if windows and windows[0].queue.running_job is not None and windows[0].queue.photo_bar.value() >= 1:
        state["seen"] += 1
        if state["seen"] == 1:
            print("closing while a photo is being restored", flush=True)
            windows[0].close()

timer = QTimer()
timer.timeout.connect(close_when_busy)
timer.start(20)
QTimer.singleShot(120_000, lambda: (print("never saw the batch run", flush=True), app.exit(3)))
from app.__main__ import main
sys.exit(main(["--models", sys.argv[1]]))
"""


@pytest.mark.slow
def test_quitting_while_a_batch_runs_stops_it_cleanly(env, shared, tiny_pack):
    from engine.catalog.db import open_catalog
    from engine.catalog.jobs import get_job, start_or_resume
    from engine.imageio import PARTIAL_SUFFIX
    from engine.restore.options import RestoreOptions

    photo = shared / "data" / "deepface_ids" / "images" / "person_11" / "img25.jpg"
    album = env / "album"
    album.mkdir()
    for n in range(3):
        (album / f"photo{n}.jpg").symlink_to(photo)
    out = env / "restored"
    catalog = open_catalog(env / "catalog.sqlite3")
    try:
        job_id = start_or_resume(catalog, [album], out, RestoreOptions(steps=20, models_dir=str(tiny_pack),
                                                                       device="cpu"))
    finally:
        catalog.close()

    proc = subprocess.run([sys.executable, "-c", _DRIVER, str(tiny_pack), str(job_id)], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, env={**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen",
                                            "OMP_NUM_THREADS": "1"})
    assert "closing while a photo is being restored" in proc.stdout, (proc.stdout, proc.stderr[-3000:])
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    assert proc.stderr.strip() == "", proc.stderr[-3000:]
    # every job was stopped and waited for before the process ended
    log_text = "".join(p.read_text(errors="replace") for p in (env / "log").rglob("*.log"))
    assert "closed (jobs stopped cleanly: True)" in log_text, log_text[-3000:]

    from app.batch_flow import unfinished_job

    catalog = open_catalog(env / "catalog.sqlite3")
    try:
        job = get_job(catalog, job_id)
        assert job.status == "running" and sum(i.status == "pending" for i in job.items) >= 1
        assert unfinished_job(catalog) == job_id  # the app was running it: it carries on at the next start
        assert not list(out.rglob(f"*{PARTIAL_SUFFIX}"))
        for item in job.items:
            if item.status == "pending":
                assert not item.output.exists()
    finally:
        catalog.close()
