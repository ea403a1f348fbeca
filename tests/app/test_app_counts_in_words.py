"""The app counts in words: a person card with one face says "1 face", not "1 faces" (issue 19, item 6d)."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app_testkit import make_window, wait_idle


def test_one_face_is_one_face_on_the_people_page(qtbot, scanned_env):
    window = make_window(qtbot, scanned_env)
    window.show_page("people")
    wait_idle(qtbot, window)
    page = window.people
    person = next(c for c in page.cards if not c.is_unknown)

    page.select_people([person.id])  # "Not this person" on one face: the unknown bucket holds one face
    qtbot.wait(10)
    page.select_faces([page.face_model.items()[0].payload.id])
    qtbot.mouseClick(page.reject_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)

    unknown = next(item for item in page.model.items() if item.payload.is_unknown)
    assert unknown.payload.face_count == 1 and unknown.subtitle == "1 face"
    page.select_people([None])
    qtbot.wait(10)
    assert page.detail_info.text() == "1 face"
    window.close()
