"""Settings → GPU memory: saved, passed to the engine, and a change reloads the model in that mode."""

from __future__ import annotations

from app_testkit import make_window, wait_idle


def test_memory_setting_reloads_the_model_in_low_mode_with_the_tiny_pack(qtbot, env, tiny_pack, monkeypatch):
    from app.model_service import load_restoration_service

    monkeypatch.setenv("FACEME_CACHE", str(env / "cache"))
    loaded = []

    def loader(settings, progress):
        service = load_restoration_service(settings, progress)  # the app's own loader, on the tiny pack
        loaded.append(service.pipeline.memory_mode)
        return service

    window = make_window(qtbot, env, model_loader=loader)
    wait_idle(qtbot, window)
    window.context.preferences.models_dir = str(tiny_pack)
    window.show_page("settings")
    page = window.settings_page
    page.load()
    assert page.memory.currentData() == "auto"
    model = window.context.model
    model.preload(window.context.settings)
    assert loaded == ["full"]  # auto on the CPU
    page.memory.setCurrentIndex(page.memory.findData("low"))
    page.save_button.click()
    wait_idle(qtbot, window)
    assert model.loaded_for is None  # released: the next job loads in the new mode
    assert '"memory": "low"' in window.context.preferences_path.read_text()
    with model.use(window.context.settings) as service:
        restored = service.pipeline(pipeline_crop(), steps=1, seed=0)
    assert loaded == ["full", "low"] and restored.shape == (512, 512, 3)
    window.close()


def pipeline_crop():
    import numpy as np

    return np.full((512, 512, 3), 128, np.uint8)
