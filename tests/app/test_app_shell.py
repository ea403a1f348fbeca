"""The window, its pages and menus, workers, errors in plain words, the shared model service."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app_testkit import wait_idle


def test_every_page_is_reachable_from_the_side_bar(qtbot, window):
    keys = [window.nav.item(row).data(0x0100) for row in range(window.nav.count())]
    assert keys == ["library", "people", "references", "restore", "queue", "models", "settings"]
    for row, key in enumerate(keys):
        window.nav.setCurrentRow(row)
        assert window.current_page().key == key
    wait_idle(qtbot, window)


def test_help_opens_the_log_file(qtbot, window, monkeypatch):
    from PySide6.QtGui import QDesktopServices

    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", staticmethod(lambda url: opened.append(url) or True))
    window.open_log_action.trigger()
    assert opened and Path(opened[0].toLocalFile()) == window.context.log_path
    assert window.context.log_path.is_file()
    import logging

    logging.getLogger("app.test").warning("a line for the log")
    assert "a line for the log" in window.context.log_path.read_text()


def test_a_folder_dropped_on_the_window_becomes_an_album(qtbot, window, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    folder = tmp_path / "Holidays 1972"
    folder.mkdir()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    event = QDropEvent(QPointF(400, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    assert event.isAccepted()
    assert window.context.preferences.albums == [str(folder)]
    assert window.current_page() is window.library
    wait_idle(qtbot, window)
    assert [window.library.albums.item(i).text() for i in range(window.library.albums.count())] == \
        ["All photos", "Holidays 1972"]
    saved = (window.context.preferences_path).read_text()
    assert "Holidays 1972" in saved


def test_dropping_something_that_is_not_a_photo_explains_what_works(qtbot, window, tmp_path):
    note = tmp_path / "notes.txt"
    note.write_text("not a photo")
    window.handle_dropped_paths([note])
    assert window.banner.isVisible() and "Drop a photo" in window.banner.body.text()


def test_errors_are_shown_in_plain_words_with_the_file_and_what_to_do(qtbot, window, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    window.handle_dropped_paths([bad])
    wait_idle(qtbot, window)
    assert window.banner.isVisible()
    text = window.banner.title.text() + "\n" + window.banner.body.text()
    assert "could not be read" in text and str(bad) in text and "original was not changed" in text


def test_describe_maps_engine_errors():
    from app.messages import describe
    from engine.errors import ImageWriteError, ModelPackError

    m = describe(ModelPackError("FaceMe ControlNet is missing", part="faceme-controlnet", hint="download it"),
                 "Restoring")
    assert m.go_to == "models" and "faceme-controlnet" in m.title and "Models page" in m.todo
    w = describe(ImageWriteError("disk full", "/x/out.jpg"))
    assert w.file == Path("/x/out.jpg") and "Save as" in w.todo
    other = describe(RuntimeError("boom"))
    assert "Log file" in other.todo and "boom" in other.what


def test_jobs_report_on_the_gui_thread_and_can_be_paused_and_cancelled(qtbot):
    from app.workers import JobRunner

    runner = JobRunner()
    seen = []
    gate = threading.Event()

    def work(progress, cancel):
        for n in range(1000):
            progress(n, 1000, f"step {n}")
            if n == 5:
                gate.set()
            if cancel():
                return "stopped early"
            threading.Event().wait(0.002)
        return "ran to the end"

    def on_progress(done, total, message):
        seen.append(threading.current_thread() is threading.main_thread())

    cancelled = []
    job = runner.run(work, "counting", on_progress=on_progress, on_cancelled=lambda: cancelled.append(True))
    assert gate.wait(10)
    job.pause()
    assert job.is_paused
    qtbot.wait(100)
    count = len(seen)
    qtbot.wait(150)
    assert len(seen) <= count + 1  # paused: no more steps
    job.resume()
    qtbot.wait(30)
    job.cancel()
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=5000)
    assert cancelled == [True] and job.outcome == "cancelled"
    assert seen and all(seen)

    results, failures = [], []
    runner.run(lambda p, c: 42, "answering", on_result=results.append)
    from engine.errors import NoFaceError

    def fails(p, c):
        raise NoFaceError("no face in this reference", "/photos/ref.jpg")

    runner.run(fails, "Reading references", on_failed=failures.append)
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=5000)
    assert results == [42]
    assert failures and failures[0].file == Path("/photos/ref.jpg") and "no face" in failures[0].title
    assert runner.shutdown(1000)


def test_one_model_is_shared_and_a_device_change_reloads_it():
    """The service's own logic (the real FaceMe loader is exercised by the restore test)."""
    from app.model_service import SharedModel
    from engine.settings import Settings

    loaded = []

    def loader(settings, progress):
        loaded.append(settings.device)
        return object()

    model = SharedModel(loader)
    cpu = Settings(models_dir=Path("/m"), device="cpu")
    with model.use(cpu) as first:
        pass
    with model.use(cpu) as second:
        pass
    assert first is second and loaded == ["cpu"]
    with model.use(Settings(models_dir=Path("/m"), device="cuda")) as third:
        pass
    assert third is not first and loaded == ["cpu", "cuda"]
    model.release()
    assert model.loaded_for is None


@pytest.mark.parametrize("naming,expected", [("{stem}_restored", "a/restored/p_restored.jpg"),
                                             ("-faceme", "a/restored/p-faceme.jpg")])
def test_output_naming(naming, expected):
    from app.preferences import Preferences

    assert Preferences(naming=naming).output_path_for(Path("a/p.jpg")) == Path(expected)


def test_switching_the_device_in_settings_reloads_the_model_cleanly(qtbot, env):
    """Settings → Device → Save drops the loaded model; the next job loads it for the new device."""
    from app_testkit import make_window

    loaded = []
    window = make_window(qtbot, env, model_loader=lambda settings, progress: loaded.append(settings.device) or object())
    wait_idle(qtbot, window)
    model = window.context.model
    model.preload(window.context.settings)
    assert loaded == ["cpu"]
    window.show_page("settings")
    page = window.settings_page
    page.device.setCurrentIndex(page.device.findData("auto"))
    page.save_button.click()
    wait_idle(qtbot, window)
    assert model.loaded_for is None
    assert '"device": "auto"' in window.context.preferences_path.read_text()
    model.preload(window.context.settings)
    assert loaded == ["cpu", "auto"]
    window.close()


def test_no_display_gives_a_plain_message_instead_of_a_qt_abort():
    import os
    import subprocess
    import sys

    from app.__main__ import has_display

    assert not has_display({}, "linux")
    assert has_display({"DISPLAY": ":0"}, "linux") and has_display({"WAYLAND_DISPLAY": "w"}, "linux")
    assert has_display({"QT_QPA_PLATFORM": "offscreen"}, "linux") and has_display({}, "win32")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    if not sys.platform.startswith("linux"):
        return
    out = subprocess.run([sys.executable, "-m", "app"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 1
    assert "needs a graphical desktop" in out.stderr and "faceme info" in out.stderr
