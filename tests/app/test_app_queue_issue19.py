"""The app never takes over a batch the user stopped in a terminal (issue 19, item 4): a batch that a
`faceme` process ran until Ctrl-C stays "interrupted — resume" in the Queue, as `faceme jobs list` says,
and is not resumed at the app's start; only a batch the app itself was running when it closed carries on
by itself (test_app_queue.py runs that one end to end)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from app_testkit import make_window, one_photo_job, wait_idle

ROOT = Path(__file__).resolve().parents[2]


def _run_until_ctrl_c(env: Path, job_id: int) -> None:
    """A `faceme` process holds the batch, and the user presses Ctrl-C: it lets go of it, unfinished."""
    holder = subprocess.Popen([sys.executable, "-m", "engine.testing.lease_holder", str(env / "catalog.sqlite3"),
                               str(job_id)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()
    finally:
        holder.send_signal(signal.SIGINT)
        holder.wait(timeout=30)


def test_a_batch_stopped_with_ctrl_c_in_a_terminal_waits_for_resume(qtbot, env, run_cli):
    from app import batch_flow
    from engine.catalog.db import open_catalog
    from engine.catalog.leases import APP, hold, running_as

    job_id = one_photo_job(env)
    _run_until_ctrl_c(env, job_id)
    code, listed, err = run_cli("jobs", "list", "--catalog", env / "catalog.sqlite3")
    assert code == 0 and "interrupted — resume" in listed, (listed, err)

    window = make_window(qtbot, env)
    errors = []
    window.context.error.connect(errors.append)
    page = window.queue
    page.resume_unfinished()  # what app.__main__ does at start
    window.show_page("queue")
    wait_idle(qtbot, window)
    assert page.running_job is None and not errors  # not taken over
    assert page.job_list.item(0).text().endswith("interrupted — resume")
    assert page.resume_button.isVisible() and page.resume_button.isEnabled()  # the user's to resume
    window.close()

    # the rule behind it: who ran the batch last. The app's own run, closed mid-way, carries on at its next
    # start; once a terminal ran it again and was stopped, it waits for Resume again
    catalog = open_catalog(env / "catalog.sqlite3")
    try:
        with running_as(APP), hold(catalog, job_id):
            pass  # the app ran it, and closed before it finished
        assert batch_flow.unfinished_job(catalog) == job_id
        with hold(catalog, job_id):
            pass  # `faceme jobs resume`, stopped
        assert batch_flow.unfinished_job(catalog) is None
    finally:
        catalog.close()
