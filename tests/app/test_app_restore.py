"""Restore page: first run without a model pack, and a real restoration with the tiny pack."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QPoint, QTimer, Qt

from app_testkit import make_window, wait_idle, window_with_dropped_photo


def _photo(shared):
    return shared / "data" / "deepface_ids" / "images" / "person_11" / "img25.jpg"


def test_restore_without_a_model_pack_leads_to_the_models_page(qtbot, env, shared):
    window = make_window(qtbot, env)
    window.handle_dropped_paths([_photo(shared)])  # an image dropped anywhere opens in Restore
    assert window.current_page() is window.restore
    wait_idle(qtbot, window)
    page = window.restore
    assert page.analysis is not None and len(page.analysis.faces) == 1
    assert page.restore_button.isEnabled()
    qtbot.mouseClick(page.restore_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    assert window.current_page() is window.models
    assert "needs the model pack" in window.models.summary_title.text()
    assert "Still needed" in window.models.why.text()
    states = {row.name: row.state for row in window.models.rows}
    assert states["faceme-controlnet"] == "missing"
    assert any(row.non_commercial for row in window.models.rows)
    window.close()


class GapMeter:
    """Measures the longest time the GUI event loop went without running a 10 ms timer; a watcher
    thread notes what the GUI thread was doing when it was late (for the failure message)."""

    def __init__(self):
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.last = None
        self.longest = 0.0
        self.ticks = 0
        self.late_stacks: list[str] = []
        self._running = False

    def _watch(self):
        import sys
        import threading
        import traceback

        gui = threading.main_thread().ident
        while self._running:
            time.sleep(0.02)
            if self.last is not None and time.perf_counter() - self.last > 0.08 and len(self.late_stacks) < 5:
                frames = sys._current_frames()
                self.late_stacks.append("\n".join(
                    f"[{'GUI' if ident == gui else ident}]\n" + "".join(traceback.format_stack(frame)[-6:])
                    for ident, frame in frames.items() if ident != threading.get_ident()))

    def _tick(self):
        now = time.perf_counter()
        if self.last is not None:
            self.longest = max(self.longest, now - self.last)
        self.last = now
        self.ticks += 1

    def start(self):
        import threading

        self.last = time.perf_counter()
        self.timer.start()
        self._running = True
        threading.Thread(target=self._watch, daemon=True).start()

    def stop(self):
        self.timer.stop()
        self._running = False


@pytest.mark.slow
def test_drop_restore_compare_and_save_with_the_tiny_pack_without_freezing(qtbot, env, shared, tiny_pack,
                                                                         shared_model):
    window = window_with_dropped_photo(qtbot, env, tiny_pack, _photo(shared), model=shared_model)
    page = window.restore
    faces = page.analysis.faces
    assert faces and all(f.restore for f in faces if f.restorable)
    assert all(mark.checked == f.restore for mark, f in zip(page.faces_view.faces(), faces))
    # restore only the largest face: untick the others in the list (as a user would)
    largest = max(range(len(faces)), key=lambda i: faces[i].box[2] - faces[i].box[0])
    for row in range(page.face_list.count()):
        if row != largest:
            page.face_list.item(row).setCheckState(Qt.CheckState.Unchecked)
    assert [f.restore for f in faces] == [i == largest for i in range(len(faces))]
    assert [m.checked for m in page.faces_view.faces()] == [f.restore for f in faces]
    page.steps.setValue(2)
    page.seed.setValue(7)

    meter = GapMeter()
    meter.start()
    qtbot.mouseClick(page.restore_button, Qt.MouseButton.LeftButton)
    assert page.progress.isVisible()
    wait_idle(qtbot, window, 240)
    meter.stop()
    assert page.outcome is not None, page.status.text()
    assert meter.ticks > 20
    print(f"longest GUI event-loop gap during the restoration: {meter.longest * 1000:.0f} ms "
          f"over {meter.ticks} ticks")
    assert meter.longest < 0.100, (f"the GUI froze for {meter.longest * 1000:.0f} ms; it was doing:\n"
                                   + "\n---\n".join(meter.late_stacks))

    # the before/after view shows the result, and the divider can be dragged
    assert window.restore.canvas_stack.currentWidget() is page.compare
    assert page.compare.after_image() is not None and not page.compare.after_image().isNull()
    assert page.compare.after_image().size() == page.compare.image().size()
    page.compare.resize(800, 600)
    x = int(page.compare.width() * page.compare.divider())
    y = page.compare.height() // 2
    qtbot.mousePress(page.compare, Qt.MouseButton.LeftButton, pos=QPoint(x, y))
    qtbot.mouseMove(page.compare, QPoint(200, y))
    qtbot.mouseRelease(page.compare, Qt.MouseButton.LeftButton, pos=QPoint(200, y))
    assert abs(page.compare.divider() - 200 / page.compare.width()) < 0.02

    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    saved = page.saved_path
    assert saved == env / "out" / "img25_restored.jpg"
    assert saved.is_file() and saved.stat().st_size > 0
    assert page.open_folder_button.isEnabled()
    assert window.context.model.loads == 1
    window.close()


def test_models_page_imports_a_part_from_disk(qtbot, env, tiny_pack):
    window = make_window(qtbot, env)
    window.show_page("models")
    wait_idle(qtbot, window)
    page = window.models
    assert {r.name: r.state for r in page.rows}["faceme-mix"] == "missing"
    card = page.cards["faceme-mix"]
    assert card.import_.isEnabled()
    page.import_part("faceme-mix", tiny_pack / "faceme" / "mix")  # what the folder chooser leads to
    wait_idle(qtbot, window)
    assert {r.name: r.state for r in page.rows}["faceme-mix"] == "present"
    assert (env / "models" / "faceme" / "mix" / "mix.safetensors").is_file()
    window.close()
