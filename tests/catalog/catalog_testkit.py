"""Helpers shared by tests/catalog and tests/people: real dlib analysis, memoised across tests."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.catalog.db import open_catalog
from engine.faces.dlib_backend import DlibFaceAnalyzer

_ANALYZER: DlibFaceAnalyzer | None = None
_CACHE: dict[str, list] = {}


class MemoDlibAnalyzer:
    """The real dlib analyser; results are remembered per pixel content, so tests that scan the same
    photos again don't pay for dlib twice. `calls` counts the photos actually analysed (decoded)."""

    embedding_model = "dlib/resnet-128"

    def __init__(self):
        global _ANALYZER
        if _ANALYZER is None:
            _ANALYZER = DlibFaceAnalyzer()
        self.inner = _ANALYZER
        self.calls = 0

    def detect(self, image_rgb: np.ndarray, embed: bool = True):
        self.calls += 1
        key = hashlib.sha1(np.ascontiguousarray(image_rgb).tobytes()).hexdigest() + str(image_rgb.shape)
        if key not in _CACHE:
            _CACHE[key] = self.inner.detect(image_rgb)
        return list(_CACHE[key])  # with embeddings either way: the scan keeps a face's own

    def embed(self, image_rgb, face):
        return self.inner.embed(image_rgb, face)


def lfw_photo(shared: Path, identity: str, number: int) -> Path:
    return shared / "data" / "lfw_subset" / "images" / identity / f"{identity}_{number:04d}.jpg"


def lfw_numbers(shared: Path, identity: str) -> list[int]:
    folder = shared / "data" / "lfw_subset" / "images" / identity
    return sorted(int(p.stem.rsplit("_", 1)[1]) for p in folder.glob("*.jpg"))


def add_photos(shared: Path, folder: Path, identity: str, numbers: list[int]) -> list[Path]:
    """Copy LFW photos of `identity` into `folder` (names kept); returns the new paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in numbers:
        source = lfw_photo(shared, identity, n)
        target = folder / source.name
        shutil.copy2(source, target)
        paths.append(target)
    return paths


# Fixtures shared by tests/catalog and tests/people (each conftest imports them).
@pytest.fixture
def analyzer():
    return MemoDlibAnalyzer()


@pytest.fixture
def catalog(tmp_path):
    cat = open_catalog(tmp_path / "catalog.sqlite3")
    yield cat
    cat.close()


def wait_for_photos(db: Path, proc, count: int, timeout: float = 120, on_tick=None) -> None:
    """Wait until the catalog at `db` has `count` photo rows while `proc` (a scan) still runs."""
    import sqlite3
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if on_tick is not None:
            on_tick()
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as con:
                    if con.execute("select count(*) from photos").fetchone()[0] >= count:
                        return
            except sqlite3.OperationalError:
                pass  # schema not there yet
        assert proc.poll() is None, "the scan finished before it could be killed"
