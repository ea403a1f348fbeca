"""Queue: a batch of 5 photos is cancelled, resumed, interrupted by closing the app, and finishes at
the next start — no photo done twice, no half-written file."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app_testkit import make_window, wait_idle


def _partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.is_file()]


def _items(window, job_id):
    from app import batch_flow

    return next(j for j in batch_flow.list_jobs(window.context.catalog()) if j.id == job_id)


@pytest.mark.slow
def test_batch_cancel_resume_close_and_resume_at_next_start(qtbot, env, shared, tiny_pack, shared_model):
    photo = shared / "data" / "deepface_ids" / "images" / "person_11" / "img25.jpg"
    album = env / "album"
    album.mkdir()
    for n in range(5):  # five photos (copies: the scan analyses the content once)
        (album / f"photo{n}.jpg").symlink_to(photo)
    out = env / "restored"

    window = make_window(qtbot, env, model=shared_model)
    prefs = window.context.preferences
    prefs.models_dir, prefs.steps, prefs.albums = str(tiny_pack), 1, [str(album)]
    window.context.save_preferences()  # as the Settings page does; the next start reads them
    window.show_page("queue")
    wait_idle(qtbot, window)
    page = window.queue
    assert page.stack.currentIndex() == 0  # the empty state explains batches

    page.new_batch([str(album)], out)
    qtbot.waitUntil(lambda: page.running_job is not None, timeout=60_000)
    job_id = page.running_id
    qtbot.waitUntil(lambda: page.job(job_id) is not None and page.job(job_id).counts().get("done", 0) >= 1,
                    timeout=120_000)
    assert page.overall.value() >= 1 and "left" in page.overall_text.text()

    # Cancel: the batch stops between steps and is marked cancelled (not resumed by itself)
    assert page.cancel_button.isVisible()
    qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window, 120)
    job = _items(window, job_id)
    assert job.status == "cancelled"
    done_after_cancel = job.counts().get("done", 0)
    assert 1 <= done_after_cancel < 5 and job.counts().get("pending", 0) >= 1
    assert not _partial_files(out)
    assert page.resume_button.isVisible()

    # Resume, then close the window while it runs
    qtbot.mouseClick(page.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.running_job is not None, timeout=10_000)
    qtbot.waitUntil(lambda: page.job(job_id).counts().get("done", 0) > done_after_cancel, timeout=120_000)
    window.close()  # stops the worker between steps and waits for it
    assert not window.context.runner.is_busy()
    assert not _partial_files(out)
    job = _items(window, job_id)
    assert job.status == "running" and job.counts().get("pending", 0) >= 1

    # the next start carries on by itself and finishes
    window2 = make_window(qtbot, env, model=shared_model)
    window2.queue.resume_unfinished()  # what app.__main__.main does after showing the window
    qtbot.waitUntil(lambda: window2.queue.running_job is not None, timeout=30_000)
    wait_idle(qtbot, window2, 240)
    job = _items(window2, job_id)
    assert job.counts() == {"done": 5}, job.counts()
    # each restored photo's faces, as the Queue shows them: whose face, what was done and why
    assert all(i.faces and i.faces[0].startswith("face 1: restored") for i in job.items), job.items[0].faces
    window2.queue.reload()
    wait_idle(qtbot, window2)
    rows = window2.queue.items
    assert rows.topLevelItem(0).childCount() == 1 and "face 1: restored" in rows.topLevelItem(0).child(0).text(2)
    outputs = sorted(p.name for p in out.iterdir())
    assert outputs == [f"photo{n}.jpg" for n in range(5)]
    assert not _partial_files(out)
    from engine.catalog.models import Restoration
    from sqlalchemy import func, select

    with window2.context.catalog().session() as session:  # no photo restored twice
        assert session.scalar(select(func.count(Restoration.id))) == 5
    window2.close()
