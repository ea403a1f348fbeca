"""Queue and job ownership (issue 14, item 6, the GUI half): a batch that another live process runs (a
CLI `faceme batch`) is shown as running elsewhere and is not resumed by the app; once that process is
killed, it is not taken over at the app's start either, and Resume runs it with the batch's own recorded
options (its models folder), not the app's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from app_testkit import make_window, one_photo_job, wait_idle

ROOT = Path(__file__).resolve().parents[2]


def test_a_batch_run_elsewhere_is_shown_not_resumed_and_later_resumed_with_its_own_models(qtbot, env, tiny_pack):
    job_models = env / "the-jobs-own-models"
    job_id = one_photo_job(env, job_models)
    holder = subprocess.Popen([sys.executable, "-m", "engine.testing.lease_holder", str(env / "catalog.sqlite3"),
                               str(job_id)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()
        window = make_window(qtbot, env)
        window.context.preferences.models_dir = str(tiny_pack)  # the app's own folder: not the batch's
        errors = []
        window.context.error.connect(errors.append)
        page = window.queue
        window.show_page("queue")
        wait_idle(qtbot, window)
        job = page.job(job_id)
        assert job is not None and job.elsewhere and f"process {holder.pid}" in job.elsewhere
        assert "running elsewhere" in page.job_list.item(0).text()
        assert f"running in process {holder.pid}" in page.job_folder.text()
        assert page.resume_button.isVisible() and not page.resume_button.isEnabled()

        page.resume_unfinished()  # what the app does at start: not this one
        wait_idle(qtbot, window)
        assert page.running_job is None and not errors

        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        page.reload()
        wait_idle(qtbot, window)
        assert page.job(job_id).elsewhere is None and page.resume_button.isEnabled()
        page.resume_unfinished()  # stopped outside the app: left for the user to resume (issue 19, item 4)
        wait_idle(qtbot, window)
        assert page.running_job is None and not errors
        page.resume_button.click()  # the user's Resume: run here, with the batch's own models folder
        qtbot.waitUntil(lambda: bool(errors), timeout=60_000)
        wait_idle(qtbot, window)
        text = errors[0].text() + errors[0].details
        assert str(job_models) in text and str(tiny_pack) not in text, text
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)
