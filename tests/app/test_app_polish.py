"""GUI polish found on screenshots (issue 19, item 3): badges of neighbouring faces apart, the Queue's
texts and Retry buttons whole, progress labels not under their bars, the "Which face?" dialog with
thumbnails and the likeliest face chosen, hidden people left alone in Restore, a word after Settings →
Save, and one default folder name for single photos and batches."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPointF, QRect, Qt
from PySide6.QtGui import QColor, QImage

from app_testkit import make_window, wait_idle


@pytest.fixture(scope="module")
def check():
    from engine.faces.dlib_backend import DlibFaceAnalyzer
    from engine.restore.identity_check import IdentityCheck

    return IdentityCheck(DlibFaceAnalyzer())  # the models load on first embedding: none here


def _in(widget, ancestor) -> QRect:
    """The widget's rectangle in `ancestor`'s coordinates."""
    return QRect(widget.mapTo(ancestor, widget.rect().topLeft()), widget.size())


def test_badges_of_neighbouring_faces_do_not_overlap(qtbot, qapp, check):
    from app import theme
    from app.widgets.canvas import CompareView
    from app.widgets.identity_badge import FaceBadges

    theme.apply(qapp)
    canvas = CompareView()
    qtbot.addWidget(canvas)
    canvas.resize(800, 600)
    image = QImage(800, 600, QImage.Format.Format_RGB888)
    image.fill(QColor("#808080"))
    canvas.set_image(image)
    canvas.show()
    t = check.thresholds
    # Rose and Kit side by side, their faces 10 px apart: each badge is wider than a face
    rose = check.verdict(t.drifted - 0.05, t.kept + 0.01, "references", "Rose")
    kit = check.verdict(t.kept + 0.02, t.kept - 0.01, "references", "Kit")
    unknown = check.verdict((t.kept + t.drifted) / 2, None, "unrestored")
    badges = FaceBadges(canvas)
    badges.set_faces([((300, 200, 380, 290), rose), ((390, 205, 470, 290), kit), ((480, 200, 560, 290), unknown)])
    qtbot.waitUntil(lambda: all(b.isVisible() for b in badges.badges))
    rects = [b.geometry() for b in badges.badges]
    assert all(r.width() > 90 for r in rects)  # wider than a face: side by side they would overlap
    for n, first in enumerate(rects):
        for second in rects[n + 1:]:
            assert not first.intersects(second), (first, second)
        assert QRect(0, 0, 800, 600).contains(first)
    # each still sits under its own face (below all three, as they line up), covering none of them
    face_bottom = canvas.to_widget(QPointF(0, 290)).y()
    assert all(rect.top() >= face_bottom for rect in rects)


def _review_job(env: Path):
    from app.batch_flow import ItemView, JobView, ReviewFace

    photo = env / "album" / "a.jpg"
    items = [ItemView(1, photo, env / "out" / "a.jpg", "done", None)]
    review = [ReviewFace(1, photo, env / "out" / "a.jpg", n, "Ann", "drifted", f"face {n + 1}, Ann: does not "
                         "look like Ann (0.801 < 0.850)") for n in range(2)]
    elsewhere = JobView(2, env / "out2", [str(env / "Family photos of the summer")], "running", list(items),
                        elsewhere="running in process 4242 on a-computer (last seen 1 s ago)")
    return [JobView(1, env / "out", [str(env / "Family photos of the summer")], "running", items, review),
            elsewhere]


def test_queue_texts_and_retry_buttons_are_shown_whole(qtbot, env):
    window = make_window(qtbot, env)
    window.show_page("queue")
    wait_idle(qtbot, window)
    page = window.queue
    page._show_jobs(_review_job(env))
    qtbot.wait(50)

    # the batch list: the panel is as wide as its longest line ("… · running elsewhere")
    metrics = page.job_list.fontMetrics()
    for n in range(page.job_list.count()):
        item = page.job_list.item(n)
        # what the list shows of the row (an item's rectangle may run past the viewport, which cuts it off)
        shown = page.job_list.visualItemRect(item).intersected(page.job_list.viewport().rect())
        room = shown.width() - page.job_list.iconSize().width()
        for line in item.text().split("\n"):
            assert metrics.horizontalAdvance(line) <= room, (line, room)
    assert page.job_list.item(1).text().endswith("running elsewhere")

    # the Retry buttons: their column and row are sized to the button
    buttons = page.review.buttons
    assert len(buttons) == 2
    qtbot.waitUntil(lambda: all(b.isVisible() for b in buttons))
    for retry in buttons:
        assert retry.width() >= retry.sizeHint().width() and retry.height() >= retry.sizeHint().height()
        assert retry.text() == "Retry"

    # the folder line is not cut off by the buttons beside the title: it has the card's width
    page._show_job(page.job(2))
    qtbot.wait(50)
    card = page.job_folder.parentWidget()
    assert not _in(page.job_folder, card).intersects(_in(page.open_button, card))
    assert "running in process 4242" in page.job_folder.text()

    # while a batch runs: each progress text above its bar, neither on the other
    page.running_id = 1
    page._show_job(page.job(1))
    page.photo_text.setVisible(True)
    page.photo_bar.setVisible(True)
    page._photo_progress(1, "a.jpg", 3, 10, "face 1 of 2: denoising")
    qtbot.wait(50)
    for text, bar in ((page.overall_text, page.overall), (page.photo_text, page.photo_bar)):
        assert text.isVisible() and bar.isVisible()
        assert not _in(text, card).intersects(_in(bar, card)), (text.text(), _in(text, card), _in(bar, card))
    page.running_id = None
    window.close()


def test_progress_rows_keep_their_label_clear_of_the_bar_in_a_narrow_panel(qtbot, env):
    window = make_window(qtbot, env)
    wait_idle(qtbot, window)
    window.show_page("restore")
    row = window.restore.progress  # in the Restore page's 330 px side panel
    row.start("Reading the photo and finding faces…")
    row.update_progress(1, 4, "Reading the reference photos of the people you know…")
    qtbot.waitUntil(row.isVisible)
    qtbot.wait(50)
    text, bar, cancel = _in(row.text, row), _in(row.bar, row), _in(row.cancel, row)
    assert not text.intersects(bar) and not text.intersects(cancel) and not bar.intersects(cancel)
    assert row.text.height() >= row.text.heightForWidth(row.text.width())  # the whole sentence, wrapped
    panel = row.parentWidget()
    assert _in(row.cancel, panel).right() < panel.width()  # the Cancel button inside the panel
    row.stop()
    window.close()


def test_which_face_dialog_shows_thumbnails_and_chooses_the_likeliest_face(qtbot, scanned_env, shared,
                                                                          monkeypatch):
    """References → Add photo from disk → a photo of two people: the dialog shows each face's crop and
    has the face most like the person chosen (here the left one: the album's person_01 is the woman on
    the left of deepface_couple); accepting it adds that face."""
    from PySide6.QtWidgets import QDialog

    from app import catalog_views
    from app.widgets.face_choice import FaceChoiceDialog, face_size, likeliest_face

    couple = shared / "data" / "group_photos" / "images" / "deepface_couple.jpg"  # MIT, two faces
    window = make_window(qtbot, scanned_env)
    window.show_page("references")
    wait_idle(qtbot, window)
    page = window.references
    woman = next(c for c in catalog_views.list_people(window.context.catalog(), faces_per_person=3)
                 if not c.is_unknown and all("person_01" in f.photo.name for f in c.faces))
    page.select_person(woman.id)
    wait_idle(qtbot, window)
    seen = {}

    def exec_(dialog):
        dialog.show()
        qtbot.waitUntil(lambda: dialog.model.loaded_count() == len(dialog.faces), timeout=30_000)
        seen.update(faces=dialog.faces, rows=dialog.model.rowCount(), chosen=dialog.chosen_id(),
                    crops=[dialog.model.item(n).crop for n in range(dialog.model.rowCount())],
                    enabled=dialog.choose_button.isEnabled())
        dialog.hide()
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(FaceChoiceDialog, "exec", exec_)
    page.add_file(couple)
    wait_idle(qtbot, window, 120)
    faces = seen["faces"]
    assert seen["rows"] == len(faces) == 2 and all(seen["crops"]) and seen["enabled"]
    left = min(faces, key=lambda f: f.box[0])
    assert seen["chosen"] == left.id
    assert [r.face.id for r in page.picks] == [left.id]
    # chosen by likeness to her faces in the album, not by size
    from app import people_actions

    assert people_actions.likeliest_face(window.context.catalog(), woman.id, [f.id for f in faces]) == left.id
    # without a person to compare with, the largest face comes first
    assert likeliest_face(faces) == faces.index(max(faces, key=face_size))
    window.close()


def test_a_hidden_person_is_left_alone_in_restore_by_default(qtbot, scanned, scanned_env):
    from app import catalog_views, people_actions, restore_flow

    window = make_window(qtbot, scanned_env)
    wait_idle(qtbot, window)
    catalog = window.context.catalog()
    stranger = next(c for c in catalog_views.list_people(catalog) if not c.is_unknown)
    people_actions.rename(catalog, stranger.id, "Stranger")
    people_actions.hide(catalog, stranger.id)
    photo = next(f.photo for f in stranger.faces)
    window.handle_dropped_paths([photo])
    wait_idle(qtbot, window)
    page = window.restore
    face = next(f for f in page.analysis.faces if f.person_id == stranger.id)
    index = page.analysis.faces.index(face)
    assert face.hidden and not face.restore and face.label == "Stranger (hidden)"
    assert "left alone" in face.short_note and "hidden" in face.note
    assert page.face_list.item(index).checkState() == Qt.CheckState.Unchecked
    assert "hidden" in page.faces_hint.text()
    page.face_list.setCurrentRow(index)
    assert page.person_choice.currentData() == restore_flow.SKIP
    # ticked after all: restored without identity (a hidden person lends none), and they stay hidden
    page.set_face_checked(index, True)
    page._show_face_person()
    assert page.person_choice.currentData() == restore_flow.BLIND
    assert restore_flow.plan_of(page.analysis, [index]).faces[index].action == "blind"
    window.close()


def test_settings_save_says_so_in_the_status_bar(qtbot, env):
    window = make_window(qtbot, env)
    wait_idle(qtbot, window)
    window.show_page("settings")
    window.settings_page.tries.setValue(2)
    window.settings_page.save_button.click()
    wait_idle(qtbot, window)  # the jobs a save starts (the Library reloads) do not hide the message
    assert window.statusBar().currentMessage() == "Settings saved"
    assert window.busy_label.text() == "Ready"
    window.close()


def test_a_batch_and_a_single_photo_default_to_the_same_restored_folder(qtbot, env):
    from app.pages.queue import NewBatchDialog
    from app.preferences import RESTORED_FOLDER, Preferences

    family, trip = env / "Pictures" / "Family", env / "Pictures" / "Trip"
    prefs = Preferences(albums=[str(family), str(trip)])
    single = prefs.output_path_for(family / "2019" / "grandma.jpg").parent
    assert single == env / "Pictures" / RESTORED_FOLDER / "Family" / "2019"
    dialog = NewBatchDialog(prefs.albums, prefs.batch_output_for)
    qtbot.addWidget(dialog)
    # both albums: Restored/<album>/… for each, as their single photos are saved
    assert Path(dialog.out_dir.text()) == env / "Pictures" / RESTORED_FOLDER
    dialog.album_boxes[1].setChecked(False)  # one album: the batch's folder is that album's Restored folder
    assert Path(dialog.out_dir.text()) == env / "Pictures" / RESTORED_FOLDER / "Family"
    assert Path(dialog.out_dir.text()) / "2019" == single
    dialog.out_dir.setText(str(env / "elsewhere"))  # the user's own folder is kept
    dialog.album_boxes[1].setChecked(True)
    assert Path(dialog.out_dir.text()) == env / "elsewhere"
    chosen = Preferences(albums=[str(family)], output_dir=str(env / "mine"))
    assert chosen.batch_output_for([str(family)]) == env / "mine" == chosen.output_path_for(family / "a.jpg").parent
