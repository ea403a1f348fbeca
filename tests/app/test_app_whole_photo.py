"""The "Whole photo" panel (issue 24): its toggles are the recipe the Restore page and a new batch restore
with, a step whose model is missing is disabled and says which model to download, and a fade-only
recipe goes through the page's restoration of a real old print."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

from app_testkit import wait_idle, window_with_dropped_photo


def _write_scratch_detector(models_dir: Path) -> None:
    """The tiny scratch detector (engine.testing.tiny_repair_pack) in its released format, and no other part."""
    import torch

    from engine.models.layout import PARTS, part_dir
    from engine.testing.tiny_repair_pack import scratch_detector_checkpoint

    target = part_dir(models_dir, "scratch-detector") / PARTS["scratch-detector"].files[0][0]
    target.parent.mkdir(parents=True)
    torch.save(scratch_detector_checkpoint(), target)


def test_the_toggles_are_the_recipe_of_the_restore_and_batch_options(qtbot, env):
    from app import batch_flow
    from app.pages.queue import NewBatchDialog
    from app.restore_flow import RepairAvailability
    from app.widgets.whole_photo import WholePhotoPanel
    from engine.repair.recipe import Recipe
    from engine.restore.options import RestoreOptions
    from engine.settings import Settings

    panel = WholePhotoPanel()
    qtbot.addWidget(panel)
    assert panel.recipe() is None and not panel.colourise.isChecked()  # nothing, and no colour, by default
    assert "labelled as colourised" in panel.colour_note.text()
    panel.fade.setChecked(True)
    assert panel.recipe() == Recipe(fade=0.6)
    panel.repair.setChecked(True)
    panel.fade_strength.setValue(35)
    panel.upscale.setCurrentIndex(panel.upscale.findData(4))
    panel.colourise.setChecked(True)
    expected = Recipe(repair=True, fade=0.35, upscale=4, colourise=True)
    assert panel.recipe() == expected

    options = batch_flow.batch_options(Settings(), 4, 5.0, recipe=panel.recipe())
    assert options.recipe == expected
    assert RestoreOptions.from_dict(options.to_dict()).recipe == expected  # as the job stores it
    assert batch_flow.batch_options(Settings(), 4, 5.0, recipe=Recipe()).recipe is None

    # the new-batch dialog offers the same panel; a missing colouriser unticks and disables colourising
    dialog = NewBatchDialog(["/album"], lambda roots: Path("/out"), None,
                            RepairAvailability({"ddcolor": "DDColor tiny (colourisation) is not installed"}))
    qtbot.addWidget(dialog)
    dialog.whole_photo.set_recipe(expected)
    assert not dialog.whole_photo.colourise.isEnabled()
    assert dialog.whole_photo.recipe() == Recipe(repair=True, fade=0.35, upscale=4)

    # a missing ×4 upscaler: its choice is disabled with the model's name, and a chosen ×4 falls back to off
    panel.set_availability(RepairAvailability({"realesrgan-x4": "Real-ESRGAN x4plus (whole-photo ×4) is not "
                                                                "installed: `faceme models download realesrgan-x4`"}))
    items = panel.upscale.model()
    x2, x4 = (items.item(panel.upscale.findData(f)) for f in (2, 4))
    assert x2.isEnabled() and not x4.isEnabled() and "realesrgan-x4" in x4.toolTip()
    assert panel.upscale.currentData() == 1 and panel.repair.isEnabled()
    assert panel.recipe() == Recipe(repair=True, fade=0.35, colourise=True)


def test_fade_only_recipe_through_the_restore_page_changes_a_real_old_print(qtbot, env, shared):
    """The detector's damage shown over the photo; then, no face ticked and only fading chosen, the print
    is repaired without any other model (not even the FaceMe pack), shown before/after and saved."""
    photo = shared / "data" / "realworld_degraded" / "whole" / "bop_old_a.png"
    _write_scratch_detector(env / "models")  # the tiny detector only: no inpainter, no FaceMe pack
    window = window_with_dropped_photo(qtbot, env, env / "models", photo)
    page = window.restore
    assert page.analysis is not None, page.status.text()
    from app import restore_flow

    # the models folder as the Models page sees it: the steps whose model is missing say which to download
    panel = page.whole_photo
    assert set(restore_flow.repair_availability(env / "models").missing) == {
        "lama", "realesrgan-x2", "realesrgan-x4", "swinir-x4", "ddcolor"}
    assert not panel.repair.isEnabled() and "faceme models download lama" in panel.repair.toolTip()
    assert "LaMa" in panel.repair.toolTip()
    assert not panel.colourise.isEnabled() and "DDColor" in panel.colourise.toolTip()
    assert not panel.upscale.model().item(panel.upscale.findData(2)).isEnabled()
    assert panel.fade.isEnabled()  # fading needs no model

    assert page.whole_photo.show_damage.isEnabled()
    page.whole_photo.show_damage.setChecked(True)
    wait_idle(qtbot, window)
    assert page._damage is not None and "Damage found on" in page.status.text(), page.status.text()
    from app.qimage import to_numpy

    shown, plain = to_numpy(page.faces_view.image()), to_numpy(page.analysis.preview)
    marked = np.any(shown != plain, axis=2)
    assert marked.any() and np.isclose(marked.mean(), page._damage.share, atol=0.02)
    page.whole_photo.show_damage.setChecked(False)
    assert page.faces_view.image() is page.analysis.preview
    for row in range(page.face_list.count()):  # no face: only the whole photo is repaired
        page.face_list.item(row).setCheckState(Qt.CheckState.Unchecked)
    assert not page.restore_button.isEnabled()
    page.whole_photo.fade.setChecked(True)
    page.whole_photo.fade_strength.setValue(100)
    assert page.restore_button.isEnabled()
    qtbot.mouseClick(page.restore_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window, 120)
    outcome = page.outcome
    assert outcome is not None, page.status.text()
    assert outcome.options["recipe"]["fade"] == 1.0 and outcome.repaired_steps == ["fade"]
    before = np.asarray(page.analysis.image.pixels[..., :3], dtype=np.int16)
    after = np.asarray(outcome.pixels[..., :3], dtype=np.int16)
    assert after.shape == before.shape and outcome.scale == 1
    assert np.abs(after - before).mean() > 2.0  # the fading was corrected
    assert "fade" in page.status.text() and page.compare.after_image() is not None
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    assert page.saved_path is not None and page.saved_path.is_file() and page.saved_path != photo
    window.close()
