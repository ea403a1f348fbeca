"""Restore page: Quick preview (issue 12 item 6) with the tiny pack — shown, labelled, never saved or recorded;
Restore faces stays the full path."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from app_testkit import wait_idle, window_with_dropped_photo


def test_quick_preview_is_shown_labelled_and_never_saved_then_restore_is_the_full_path(qtbot, env, shared, tiny_pack,
                                                                                      shared_model):
    from sqlalchemy import func, select

    from app import restore_flow
    from engine.catalog.models import Restoration
    from engine.errors import FaceMeError

    photo = shared / "data" / "deepface_ids" / "images" / "person_11" / "img25.jpg"
    window = window_with_dropped_photo(qtbot, env, tiny_pack, photo, model=shared_model)
    page = window.restore
    assert page.analysis is not None and any(f.restore for f in page.analysis.faces)
    assert page.preview_button.isEnabled()
    page.steps.setValue(2)
    page.seed.setValue(7)

    qtbot.mouseClick(page.preview_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window, 240)
    look = page.preview_outcome
    assert look is not None and look.is_preview, page.status.text()
    assert page.outcome is None and not page.save_button.isEnabled() and not page.save_as_button.isEnabled()
    assert window.restore.canvas_stack.currentWidget() is page.compare
    assert page.compare.after_label() == "Preview" and page.compare.after_image() is not None
    assert "preview" in page.status.text().lower() and "differ" in page.status.text()
    assert not np.array_equal(look.pixels, page.analysis.image.pixels[..., :3])
    with pytest.raises(FaceMeError, match="preview"):
        restore_flow.save(look, env / "out" / "preview.jpg")
    assert not (env / "out").exists()  # nothing written
    with window.context.catalog().session() as session:  # nothing recorded
        assert session.scalar(select(func.count(Restoration.id))) == 0

    qtbot.mouseClick(page.restore_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window, 240)
    assert page.outcome is not None and not page.outcome.is_preview, page.status.text()
    assert page.preview_outcome is None and page.save_button.isEnabled()
    assert page.compare.after_label() == "After"
    assert page.outcome.seed == look.seed == 7
    assert not np.array_equal(page.outcome.pixels, look.pixels)  # the released path, not the preview's
    window.close()
