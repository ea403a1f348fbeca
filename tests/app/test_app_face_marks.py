"""Face outlines on the Restore page sit on the faces, also for photos larger than the preview."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPointF

from app_testkit import make_window, wait_idle


def test_face_marks_are_drawn_in_preview_coordinates(qtbot, env, shared):
    photo = shared / "data" / "group_photos" / "images" / "deepface_couple.jpg"  # 2280 px wide
    window = make_window(qtbot, env)
    window.handle_dropped_paths([photo])
    wait_idle(qtbot, window)
    page = window.restore
    analysis = page.analysis
    assert analysis is not None and len(analysis.faces) == 2
    assert analysis.preview_scale < 1.0  # the preview is smaller than the photo
    preview_w, preview_h = analysis.preview.width(), analysis.preview.height()
    marks = page.faces_view.faces()
    for face, mark in zip(page._faces(), marks):
        assert mark.box == pytest.approx(tuple(v * analysis.preview_scale for v in face.box))
        x1, y1, x2, y2 = mark.box
        assert 0 <= x1 < x2 <= preview_w and 0 <= y1 < y2 <= preview_h
    # Clicking the middle of a face's outline toggles that face.
    x1, y1, x2, y2 = marks[1].box
    centre = page.faces_view.to_widget(QPointF((x1 + x2) / 2, (y1 + y2) / 2))
    assert page.faces_view.face_at(centre) == 1
    window.close()
