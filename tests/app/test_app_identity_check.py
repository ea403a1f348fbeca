"""Issue 11 in the app: a badge per restored face on the Restore page's before/after view (and the
check recorded when an album photo is saved), and the Queue's "to review" list with one-click retry.

Real album photos (the scanned deepface_ids album), the tiny model pack (random weights: its faces do
not look like anybody, so the real dlib check doubts them — which is what the review list needs) and
the real dlib recogniser, run in its own process as the app runs it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPointF, Qt
from sqlalchemy import select

from app_testkit import make_window, wait_idle

PHOTO = "person_01_img5.jpg"


@pytest.mark.slow
def test_restore_page_shows_a_badge_per_face_and_a_save_records_the_check(qtbot, scanned, scanned_env, tiny_pack,
                                                                         shared_model):
    from engine.catalog.models import Restoration
    from engine.restore.identity_check import describe, describe_numbers

    window = make_window(qtbot, scanned_env, model=shared_model)
    prefs = window.context.preferences
    prefs.models_dir, prefs.tries, prefs.output_dir = str(tiny_pack), 2, str(scanned_env / "out")
    photo_path = Path(scanned["album"]) / PHOTO
    window.handle_dropped_paths([photo_path])
    wait_idle(qtbot, window)
    page = window.restore
    assert page.analysis.in_album and len(page.analysis.faces) == 1
    page.steps.setValue(1)
    page.seed.setValue(7)
    qtbot.mouseClick(page.restore_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window, 240)
    outcome = page.outcome
    assert outcome is not None, page.status.text()
    face = outcome.faces[0]
    assert face.action == "restored" and face.check is not None and face.check.model.startswith("dlib/")
    assert [t.seed for t in face.tries] == [7, 1007]  # best of the 2 tries set in Settings
    assert face.seed == max(face.tries, key=lambda t: t.score).seed

    # one badge, on the before/after view, under the face, saying what the check said
    assert page.canvas_stack.currentWidget() is page.compare
    page.compare.resize(800, 600)
    qtbot.wait(50)
    assert len(page.badges.badges) == 1
    badge = page.badges.badges[0]
    assert badge.isVisible() and badge.parent() is page.compare
    words = describe(face.check)
    assert badge.text() == words[:1].upper() + words[1:]
    assert ("Looks like" in badge.text()) == (face.check.verdict == "kept")
    assert badge.toolTip() == describe_numbers(face.check) and f"{face.check.similarity_restored:.3f}" in badge.toolTip()
    x1, y1, x2, y2 = (v * page.analysis.preview_scale for v in face.face.box)
    below = page.compare.to_widget(QPointF((x1 + x2) / 2, y2))
    assert abs(badge.geometry().center().x() - below.x()) <= badge.width() / 2 + 1
    assert badge.geometry().top() >= min(below.y(), page.compare.height() - badge.height()) - 1

    # zooming moves the badge with the face
    before = badge.pos()
    page.compare.zoom_by(2.0)
    page.compare.repaint()
    qtbot.wait(20)
    assert badge.pos() != before

    # saving an album photo records the restoration with the check, per face
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    assert page.saved_path is not None and page.saved_path.is_file()
    with window.context.catalog().session() as s:
        restoration = s.scalars(select(Restoration).where(Restoration.output_path == str(page.saved_path))).one()
        row = restoration.faces[0]
        assert restoration.photo_id == page.analysis.photo_id
        assert (row.person_id, row.seed, row.verdict, row.check_model) == (
            face.person_id, face.seed, face.check.verdict, face.check.model)
        assert row.similarity_restored == pytest.approx(face.check.similarity_restored)
        assert row.similarity_unrestored == pytest.approx(face.check.similarity_unrestored)
    window.close()


@pytest.mark.slow
def test_queue_lists_faces_to_review_and_retries_one(qtbot, scanned, scanned_env, tiny_pack, shared_model):
    from app import batch_flow
    from engine.catalog import jobs
    from engine.catalog.models import Restoration
    from engine.restore.batch import ServiceRestorer, run_job
    from engine.restore.options import RestoreOptions

    window = make_window(qtbot, scanned_env, model=shared_model)
    window.context.preferences.models_dir = str(tiny_pack)
    catalog = window.context.catalog()
    photo_path = Path(scanned["album"]) / PHOTO
    with shared_model.use(window.context.settings) as service:
        job_id = jobs.start_or_resume(catalog, [photo_path], scanned_env / "batch-out",
                                      RestoreOptions(steps=1, seed=3, models_dir=str(tiny_pack)), scan_first=False)
        run_job(catalog, job_id, ServiceRestorer(service))
    first = jobs.get_job(catalog, job_id).items[0]
    doubtful = [f for f in first.faces if f.verdict in ("uncertain", "drifted")]
    # the tiny pack's random-weight faces look like nobody: the real check doubts them (seed 3, checked)
    assert doubtful, [(f.verdict, f.similarity_restored) for f in first.faces]

    window.show_page("queue")
    wait_idle(qtbot, window)
    page = window.queue
    assert page.job_id == job_id
    review = page.review
    assert review.isVisible() and review.tree.topLevelItemCount() == len(doubtful)
    row = review.tree.topLevelItem(0)
    assert row.text(0) == PHOTO and row.text(1) in ("May not look alike", "Does not look alike")
    assert f"face {doubtful[0].face_index + 1}" in row.text(2) and f"{doubtful[0].similarity_restored:.3f}" in row.text(2)

    # one click: the photo is restored again (new seed, best of 3) and the new result recorded and shown
    retry = review.tree.itemWidget(row, 3)
    qtbot.mouseClick(retry, Qt.MouseButton.LeftButton)
    assert not retry.isEnabled()  # no second retry while one runs
    wait_idle(qtbot, window, 240)
    again = jobs.get_job(catalog, job_id).items[0]
    assert again.status == "done"
    with catalog.session() as s:
        restorations = s.scalars(select(Restoration).where(Restoration.photo_id == s.scalar(
            select(Restoration.photo_id).where(Restoration.output_path == str(first.output))))).all()
        assert len(restorations) == 2  # the batch's and the retry's
        assert restorations[-1].settings["tries"] == batch_flow.RETRY_TRIES
        assert restorations[-1].settings["seed"] != 3
    assert [f.seed for f in again.faces] != [f.seed for f in first.faces]
    assert all(f.verdict is not None for f in again.faces if f.action != "skipped")
    still = [f for f in again.faces if f.verdict in ("uncertain", "drifted")]
    qtbot.waitUntil(lambda: review.tree.topLevelItemCount() == len(still) and review.isVisible() == bool(still),
                    timeout=10_000)
    window.close()


def test_settings_keep_the_tries_and_the_check_switch(qtbot, env):
    from app.preferences import Preferences, default_config_path

    window = make_window(qtbot, env)
    window.show_page("settings")
    page = window.settings_page
    assert page.identity_check.isChecked() and page.tries.value() == 1
    page.tries.setValue(3)
    page.identity_check.setChecked(False)
    page.save()
    wait_idle(qtbot, window)
    stored = Preferences.load(default_config_path())
    assert (stored.tries, stored.identity_check) == (3, False)
    request = window.restore.request()
    assert (request.tries, request.identity_check) == (3, False)
    window.close()
