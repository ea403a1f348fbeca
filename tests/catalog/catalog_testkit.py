"""Helpers shared by tests/catalog and tests/people: real dlib analysis, memoised across tests."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
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


ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from engine.cli import main; sys.exit(main())"


def cli_env() -> dict:
    """The environment of a `faceme` child process: this checkout's engine, and no default catalog (a test
    names its own)."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "FACEME_CATALOG": "/nonexistent/never-used.sqlite3"}


def faceme_cli(*args, timeout=120) -> subprocess.CompletedProcess:
    """Run `faceme ARGS` as a real process."""
    return subprocess.run([sys.executable, "-c", CLI, *map(str, args)], cwd=ROOT, env=cli_env(), capture_output=True,
                          text=True, timeout=timeout)


def filled_catalog(path: Path, photos: int = 40) -> Path:
    """A real catalog (WAL mode, as every catalog) with rows in the main tables, closed: one file."""
    from engine.catalog.models import Face, Person, Photo

    catalog = open_catalog(path)
    rng = np.random.default_rng(0)
    with catalog.transaction() as session:
        for i in range(photos):
            photo = Photo(path=f"/album/{i:03d}.jpg", size=1000 + i, mtime_ns=i, content_hash=f"{i:064x}")
            photo.faces.append(Face(x1=1, y1=2, x2=30, y2=40, score=0.9, landmarks=[[1, 2]] * 5,
                                    embedding=Face.pack(rng.normal(size=128)), embedding_model="dlib/resnet-128"))
            session.add(photo)
        session.add(Person(name="Ann", embedding_model="dlib/resnet-128"))
    catalog.close()
    return path


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


def scan_two_people_with_the_cli(shared: Path, tmp_path: Path, run_cli, analyzer, monkeypatch):
    """3 LFW photos each of Dick Cheney and Winona Ryder in `tmp_path/album`, scanned by `faceme scan`
    in-process with `analyzer` (the memoised real dlib one, to keep tests short). Returns (catalog file,
    Cheney's photos, the scan's stdout)."""
    import engine.catalog.scanner as scanner_module

    album = tmp_path / "album"
    cheney = add_photos(shared, album, "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:3])
    add_photos(shared, album, "Winona_Ryder", lfw_numbers(shared, "Winona_Ryder")[:3])
    db = tmp_path / "c.sqlite3"
    monkeypatch.setattr(scanner_module.Scanner, "analyzer", property(lambda self: analyzer))
    code, out, err = run_cli("scan", album, "--catalog", db)
    assert code == 0, err
    return db, cheney, out


def three_photo_job(shared: Path, tmp_path: Path, catalog, analyzer) -> tuple[int, list[str]]:
    """A batch job (1 step) over 3 LFW photos of Dick Cheney in `tmp_path/album`, output to
    `tmp_path/out`: (job id, the photos' names)."""
    from engine.catalog import jobs
    from engine.restore.options import RestoreOptions

    album = tmp_path / "album"
    photos = add_photos(shared, album, "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:3])
    job_id = jobs.start_or_resume(catalog, [album], tmp_path / "out", RestoreOptions(steps=1), analyzer=analyzer)
    return job_id, [p.name for p in photos]


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
