"""Fixtures for the desktop app's tests: an isolated environment, a window, a small real album."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from app_testkit import make_window, wait_idle

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest.importorskip("PySide6")

#: 3 people × 3 small photos of deepface_ids (MIT): enough for people, merges and splits, and scanned in
#: seconds (the whole set of 38 large photos takes about a minute on two cores)
ALBUM_PHOTOS = ("person_01/img5", "person_01/img11", "person_01/img6", "person_03/img51", "person_03/img50",
                "person_03/img8", "person_05/img62", "person_05/img16", "person_05/img17")


@pytest.fixture
def env(tmp_path, monkeypatch) -> Path:
    """Settings, catalog, models and log folders of this test only."""
    for name, sub in (("FACEME_CONFIG_DIR", "config"), ("FACEME_LOG_DIR", "log"), ("FACEME_MODELS", "models")):
        monkeypatch.setenv(name, str(tmp_path / sub))
    monkeypatch.setenv("FACEME_CATALOG", str(tmp_path / "catalog.sqlite3"))
    monkeypatch.setenv("FACEME_DEVICE", "cpu")
    return tmp_path


@pytest.fixture
def window(qtbot, env):
    w = make_window(qtbot, env)
    wait_idle(qtbot, w)
    yield w
    w.close()


@pytest.fixture(scope="session")
def shared_model():
    """One FaceMe model for every test window of the session (the app shares one per process too)."""
    from app.model_service import SharedModel

    model = SharedModel()
    yield model
    model.release()


@pytest.fixture(scope="session")
def album_source(shared) -> list[Path]:
    base = shared / "data" / "deepface_ids" / "images"
    return [base / f"{name}.jpg" for name in ALBUM_PHOTOS]


def make_album(folder: Path, photos: list[Path]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for photo in photos:
        (folder / f"{photo.parent.name}_{photo.name}").symlink_to(photo)
    return folder


@pytest.fixture(scope="session")
def scanned(tmp_path_factory, album_source, qapp, request):
    """The album scanned once through the app's own Library page (add album → scan), kept as a template.

    Returns what the scan showed (progress events, the people found) and the template folder; tests that
    change people copy the template (`scanned_env`)."""
    from pytestqt.qtbot import QtBot

    root = tmp_path_factory.mktemp("scanned")
    album = make_album(root / "album", album_source)
    env = root / "env"
    saved = {k: os.environ.get(k) for k in ("FACEME_CONFIG_DIR", "FACEME_LOG_DIR", "FACEME_MODELS", "FACEME_CATALOG")}
    os.environ.update(FACEME_CONFIG_DIR=str(env / "config"), FACEME_LOG_DIR=str(env / "log"),
                      FACEME_MODELS=str(env / "models"), FACEME_CATALOG=str(env / "catalog.sqlite3"))
    try:
        qtbot = QtBot(request)
        window = make_window(qtbot, env)
        progress: list[tuple[int, int, str]] = []
        library = window.library
        original = library._scan_progress
        library._scan_progress = lambda d, t, m: (progress.append((d, t, m)), original(d, t, m))
        window.handle_dropped_paths([album])  # a folder dropped on the window becomes an album
        wait_idle(qtbot, window, 240)
        window.show_page("people")
        wait_idle(qtbot, window)
        people = [c for c in window.people.cards]
        result = {"album": album, "env": env, "progress": progress, "people": people,
                  "photos": list(library.photos), "scan": library.last_scan,
                  "albums": list(window.context.preferences.albums)}
        window.close()
        window.deleteLater()
        qtbot.wait(50)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return result


@pytest.fixture
def scanned_env(scanned, env) -> Path:
    """This test's environment starts from a copy of the scanned catalog and settings."""
    template: Path = scanned["env"]
    for name in ("catalog.sqlite3", "catalog.sqlite3.thumbnails", "config"):
        source = template / name
        if source.is_dir():
            shutil.copytree(source, env / name, dirs_exist_ok=True)
        elif source.exists():
            shutil.copy2(source, env / name)
    for suffix in ("-wal", "-shm"):
        extra = template / f"catalog.sqlite3{suffix}"
        if extra.exists():
            shutil.copy2(extra, env / f"catalog.sqlite3{suffix}")
    settings = env / "config" / "studio.json"
    data = json.loads(settings.read_text())
    data.update(catalog_url=f"sqlite:///{env / 'catalog.sqlite3'}", models_dir=str(env / "models"))
    settings.write_text(json.dumps(data))
    return env
