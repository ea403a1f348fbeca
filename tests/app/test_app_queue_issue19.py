"""The app never takes over a batch the user stopped in a terminal (issue 19, item 4): a batch that a
`faceme` process ran until Ctrl-C stays "interrupted — resume" in the Queue, as `faceme jobs list` says,
and is not resumed at the app's start; only a batch the app itself was running when it closed carries on
by itself (test_app_queue.py runs that one end to end)."""

from __future__ import annotations

import signal

from app_testkit import hold_job_then_signal, make_window, one_photo_job, wait_idle


def test_a_batch_stopped_with_ctrl_c_in_a_terminal_waits_for_resume(qtbot, env, run_cli):
    from app import batch_flow
    from engine.catalog.db import open_catalog
    from engine.catalog.leases import APP, hold, running_as

    job_id = one_photo_job(env)
    hold_job_then_signal(env, job_id, signal.SIGINT)  # the user pressed Ctrl-C in the terminal
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
