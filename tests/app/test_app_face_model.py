"""One face model per catalog, the GUI half (issue 19, item 1): the Library names the catalog's face
model, offers to move the album to a better installed InsightFace pack with an estimate, asks first, runs
it as a job that shows progress and can be stopped and continued, and never re-analyses by itself (not
at start, not when a pack is installed, not on a scan). People keep their names."""

from __future__ import annotations

import re

import pytest
from app_testkit import make_window, wait_idle


def _names(window) -> set[str]:
    from app import catalog_views

    return {c.name for c in catalog_views.list_people(window.context.catalog()) if not c.is_unknown}


def _catalog_model(window) -> str:
    from engine.catalog.face_model import catalog_face_model

    return catalog_face_model(window.context.catalog())


def test_library_names_the_face_model_and_reanalyses_only_when_asked(qtbot, scanned_env, tiny_pack):
    from app import catalog_views, people_actions

    window = make_window(qtbot, scanned_env)
    wait_idle(qtbot, window)
    library, prefs = window.library, window.context.preferences
    prefs.scan_workers = 1  # analysed in the test's process: quick to start, and a stop lands between photos
    assert library.face_model_label.text() == "Faces found with dlib"
    assert library.face_model_label.isVisible() and library.reanalyse_button.isHidden()  # no pack installed
    person = next(c for c in catalog_views.list_people(window.context.catalog()) if not c.is_unknown)
    people_actions.rename(window.context.catalog(), person.id, "Rose")

    # a pack is installed (its folder chosen in Settings): offered, not done
    window.show_page("settings")
    window.settings_page.models_dir.setText(str(tiny_pack))
    window.settings_page.save_button.click()
    wait_idle(qtbot, window)
    assert "Faces found with dlib" in window.settings_page.face_model.text()
    window.show_page("library")
    wait_idle(qtbot, window)
    assert _catalog_model(window) == "dlib/resnet-128" and not library.is_reanalysing()  # installing is no start
    assert library.reanalyse_button.isVisible()
    assert library.reanalyse_button.text() == "Re-analyse the album with antelopev2 (better accuracy, about 1 minute)"
    assert "estimate" in library.reanalyse_button.toolTip()

    library.scan()  # a scan uses the catalog's model: still dlib
    wait_idle(qtbot, window, 120)
    assert _catalog_model(window) == "dlib/resnet-128" and library.reanalyse_button.isVisible()

    asked = []
    library.confirm_reanalysis = lambda pack, minutes: asked.append((pack, minutes)) or False
    library.reanalyse_button.click()  # the user says no
    wait_idle(qtbot, window)
    assert asked == [("antelopev2", 1)] and _catalog_model(window) == "dlib/resnet-128"
    assert not prefs.reanalysis_pending

    # yes, then Cancel on the progress row: what was done is kept, and the Library offers to go on
    library.confirm_reanalysis = lambda pack, minutes: True
    shown = []
    original = library._reanalysis_progress

    def progress(done, total, message):
        shown.append(library.progress.text.text())
        original(done, total, message)
        library.progress.cancel.click()

    library._reanalysis_progress = progress
    library.reanalyse_button.click()
    assert library.is_reanalysing() and library.progress.isVisible() and not library.scan_button.isEnabled()
    wait_idle(qtbot, window, 120)
    assert shown and prefs.reanalysis_pending == "antelopev2"
    assert re.fullmatch(r"\d of 9 photos still use the built-in face model — re-analyse to finish",
                        library.face_model_label.text()), library.face_model_label.text()
    assert library.reanalyse_button.text().startswith("Continue re-analysing the album with antelopev2")
    assert not library.scan_button.isEnabled()  # a plain scan would not carry the rest's people over

    library._reanalysis_progress = original
    library.reanalyse_button.click()  # continues where it stopped
    wait_idle(qtbot, window, 240)
    assert not prefs.reanalysis_pending and _catalog_model(window).startswith("insightface/antelopev2/")
    assert library.face_model_label.text() == "Faces found with antelopev2"
    assert library.reanalyse_button.isHidden() and library.scan_button.isEnabled()
    assert "Rose" in _names(window)
    window.close()


def test_a_reanalysis_stopped_in_a_terminal_says_how_many_photos_are_left_in_the_app_and_the_cli(
        qtbot, scanned_env, tiny_pack, run_cli, monkeypatch):
    """Issue 19: `faceme catalog reanalyse` stopped part-way (Ctrl-C): the Library, `faceme catalog check` and
    `faceme info` all say how many photos still use the old model and offer to finish; nothing goes on by
    itself."""
    from engine.catalog.db import open_catalog
    from engine.catalog.scanner import album_roots, reanalyse_album
    from engine.errors import CancelledError
    from engine.faces.choice import make_face_analyzer

    db = scanned_env / "catalog.sqlite3"
    catalog = open_catalog(db)
    seen = []
    try:
        with pytest.raises(CancelledError):
            reanalyse_album(catalog, album_roots(catalog), make_face_analyzer("antelopev2", tiny_pack), workers=1,
                            progress=lambda d, t, m: seen.append(d), cancel=lambda: len(seen) >= 4)
    finally:
        catalog.close()
    code, out, err = run_cli("catalog", "check", "--catalog", db)
    left = re.search(r"(\d) of 9 photos still use the built-in face model", out)
    assert code == 0 and left and "`faceme catalog reanalyse --model antelopev2` finishes it" in out, (out, err)
    monkeypatch.setenv("FACEME_CATALOG", str(db))
    code, out, err = run_cli("info", "--models", tiny_pack)
    assert code == 0 and f"{left.group(0)}: a re-analysis stopped part-way" in out, (out, err)

    window = make_window(qtbot, scanned_env)
    window.context.preferences.models_dir = str(tiny_pack)  # the pack is installed
    wait_idle(qtbot, window)
    library = window.library
    library.refresh_face_model()
    wait_idle(qtbot, window)
    assert library.face_model_label.text() == f"{left.group(0)} — re-analyse to finish"
    assert library.reanalyse_button.isVisible() and not library.is_reanalysing()
    assert library.reanalyse_button.text() == "Continue re-analysing the album with antelopev2 (about 1 minute)"
    assert not window.context.preferences.reanalysis_pending  # the app did not start it: only offers to go on
    assert run_cli("catalog", "check", "--catalog", db)[1].count(left.group(0)) == 1  # nothing moved meanwhile
    window.close()


def test_the_estimate_grows_with_the_photos_and_shrinks_with_the_workers():
    from app.catalog_views import FaceModelView

    view = FaceModelView("dlib/resnet-128", "antelopev2", photos=3000)
    assert view.better_pack == "antelopev2"
    assert view.minutes("antelopev2", 1) == 40 and view.minutes("antelopev2", 4) == 10
    assert FaceModelView("dlib/resnet-128", "antelopev2", photos=3).minutes("antelopev2", 2) == 1
    # nothing to offer: the same model, an empty catalog, or a pack less preferred than the catalog's
    assert FaceModelView("insightface/antelopev2/glintr100", "antelopev2", 10).better_pack is None
    assert FaceModelView(None, "antelopev2", 0).better_pack is None
    assert FaceModelView("insightface/antelopev2/glintr100", "buffalo_l", 10).better_pack is None
    assert FaceModelView("insightface/buffalo_l/w600k_r50", "antelopev2", 10).better_pack == "antelopev2"
