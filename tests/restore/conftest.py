"""Fixtures for whole-photo restoration tests: the real photos and their SCRFD faces, found once."""

from __future__ import annotations

from pathlib import Path

import pytest

PHOTO_FOLDERS = ("data/group_photos/images", "data/realworld_degraded/whole")


@pytest.fixture(scope="session")
def photo_paths(shared) -> list[Path]:
    """Every photo of ../shared/data/group_photos/images and ../shared/data/realworld_degraded/whole."""
    paths = sorted(p for folder in PHOTO_FOLDERS for p in (shared / folder).iterdir() if p.is_file())
    assert len(paths) >= 40, "the shared photo folders look incomplete"
    return paths


@pytest.fixture(scope="session")
def scrfd_analyzer(tiny_pack):
    """The InsightFace backend on the tiny pack's antelopev2 folder: the REAL SCRFD det_500m detector
    (real boxes and landmarks) with a tiny ArcFace (its embeddings mean nothing)."""
    from engine.faces.insightface_backend import InsightFaceAnalyzer
    from engine.models.layout import part_dir

    return InsightFaceAnalyzer(part_dir(tiny_pack, "antelopev2"), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="session")
def photo_faces(photo_paths, scrfd_analyzer):
    """{photo path: (oriented RGB pixels, faces found by SCRFD at 640)}, computed once per session."""
    from engine.imageio import read_image

    found = {}
    for path in photo_paths:
        pixels = read_image(path).pixels
        found[path] = (pixels, scrfd_analyzer.detect(pixels))
    return found
