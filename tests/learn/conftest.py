"""Fixtures for learning a person (issue 21): an album of real LFW photos of two people, scanned once with
the real dlib analyser, and the tiny model pack's pipeline (random weights: the figures it gives mean
nothing; what is tested is the machinery — fit, resume, check, storage, restoration)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "catalog"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from catalog_testkit import MemoDlibAnalyzer  # noqa: E402
from learn_testkit import ANN, BOB, BOB_PHOTOS, copy_catalog  # noqa: E402


@pytest.fixture(scope="session")
def learn_album(shared, tmp_path_factory) -> Path:
    """A closed catalog file: Ann = the largest face of each of 10 photos of ANN (confirmed), Bob = that of
    6 photos of BOB. Tests copy it (`album_copy`) before changing it."""
    from sqlalchemy import select

    from engine.catalog.db import open_catalog
    from engine.catalog.models import Photo
    from engine.catalog.scanner import scan
    from engine.people import corrections

    root = tmp_path_factory.mktemp("learn-album")
    images = shared / "data" / "lfw_subset" / "images"
    for who, count in ((ANN, None), (BOB, BOB_PHOTOS)):
        (root / "album" / who).mkdir(parents=True)
        for photo in sorted((images / who).glob("*.jpg"))[:count]:
            shutil.copy2(photo, root / "album" / who / photo.name)
    catalog = open_catalog(root / "catalog.sqlite3")
    try:
        scan(catalog, [root / "album"], analyzer=MemoDlibAnalyzer())
        with catalog.transaction() as session:
            for name, who in (("Ann", ANN), ("Bob", BOB)):
                photos = session.scalars(select(Photo).where(Photo.path.like(f"%/{who}/%"))).all()
                faces = [max(p.faces, key=lambda f: (f.x2 - f.x1) * (f.y2 - f.y1)) for p in photos if p.faces]
                person = corrections.new_person(session, faces[0].embedding_model, name)
                corrections.confirm(session, person, faces)
    finally:
        catalog.close()
    return root / "catalog.sqlite3"


@pytest.fixture
def album_copy(learn_album, tmp_path) -> Path:
    return copy_catalog(learn_album, tmp_path / "copy")


@pytest.fixture(scope="session")
def service(tiny_pack):
    """The process's restoration service on the tiny pack (its pipeline, fingerprint and identity check)."""
    from engine.restore.service import get_service

    return get_service(Path(tiny_pack).resolve(), "cpu", "auto")


@pytest.fixture(scope="session")
def ann_faces(learn_album):
    """(Ann's face split, the fit set's aligned 512 crops, the held-out set's)."""
    from engine.catalog.db import open_catalog
    from engine.learn.faces import aligned_crops, choose_faces
    from engine.people.corrections import find_person

    catalog = open_catalog(learn_album)
    try:
        with catalog.session() as session:
            split = choose_faces(session, find_person(session, "Ann"))
    finally:
        catalog.close()
    return split, aligned_crops(split.fit), aligned_crops(split.held_out)
