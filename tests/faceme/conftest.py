"""Fixtures of the FaceMe engine tests: the tiny pack loaded once, real crops and reference photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def pipeline(tiny_pack):
    from engine.faceme.pipeline import FaceMePipeline

    return FaceMePipeline.from_pack(tiny_pack, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def crops_dir(shared) -> Path:
    return shared / "data" / "realworld_degraded" / "crops"


@pytest.fixture(scope="session")
def lq_path(crops_dir) -> Path:
    return sorted(crops_dir.glob("*.png"))[0]


@pytest.fixture(scope="session")
def lq_image(lq_path) -> np.ndarray:
    return np.asarray(Image.open(lq_path).convert("RGB"))


@pytest.fixture(scope="session")
def ref_paths(shared) -> list[Path]:
    """Two real HQ reference photos of one CelebRef identity."""
    folder = shared / "data" / "celebref_refs" / "00005" / "hq"
    return [folder / "0.png", folder / "1.png"]


@pytest.fixture(scope="session")
def identity(pipeline, ref_paths):
    return pipeline.encode_identity(ref_paths)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These tiny models run fastest on one thread; with two, a busy 2-core machine (other test
    processes, xdist workers) makes OpenMP spin-waits cost 5–10× the compute. Restored afterwards."""
    import os

    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("FACEME_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(before)
