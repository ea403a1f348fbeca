"""Fixtures of the training tests: small real face folders, a tiny config, precomputed embeddings."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY_CONFIG = ROOT / "training" / "configs" / "tiny.yaml"

#: A few photos of three people of deepface_ids (MIT): enough identities and pools for tiny runs.
FACE_PHOTOS = ("person_01/img1.jpg", "person_01/img2.jpg", "person_01/img4.jpg",
               "person_05/img16.jpg", "person_05/img17.jpg", "person_05/img59.jpg",
               "person_10/img18.jpg", "person_10/img19.jpg")


@pytest.fixture(scope="session")
def faces_256(shared, tmp_path_factory) -> Path:
    """Aligned 256 px crops (dlib landmarks, FFHQ template), folder per identity."""
    from training.prepare import aligned_crop, write_rgb

    out = tmp_path_factory.mktemp("faces256")
    for rel in FACE_PHOTOS:
        write_rgb((out / rel).with_suffix(".png"), aligned_crop(shared / "data" / "deepface_ids" / "images" / rel, 256))
    return out


@pytest.fixture(scope="session")
def faces_64(faces_256, tmp_path_factory) -> Path:
    """The same faces at the tiny config's 64 px."""
    import cv2

    from training.prepare import list_images, read_rgb, write_rgb

    out = tmp_path_factory.mktemp("faces64")
    for path in list_images(faces_256):
        small = cv2.resize(read_rgb(path), (64, 64), interpolation=cv2.INTER_AREA)
        write_rgb(out / path.relative_to(faces_256), small)
    return out


@pytest.fixture(scope="session")
def embeddings_64(tiny_pack, faces_64, tmp_path_factory) -> Path:
    """ArcFace + CLIP embeddings of faces_64 through the engine's reference path (tiny pack)."""
    from training.data import build_index
    from training.embeddings import EngineReferenceEmbedder, precompute
    from training.models import load_reference_models

    out = tmp_path_factory.mktemp("emb64")
    index = build_index("identity_folders", faces_64, None)
    analyzer, id_encoder = load_reference_models(tiny_pack)
    precompute(index.images, out, EngineReferenceEmbedder(analyzer, id_encoder), shard_size=4)
    return out


@pytest.fixture
def tiny_config(tiny_pack, faces_64, embeddings_64, tmp_path):
    """tiny.yaml pointed at the test pack, faces and a fresh output folder; overrides as --set strings."""
    from training.config import load_config

    def make(*overrides: str):
        base = [f"models_dir={tiny_pack}", f"output_dir={tmp_path / 'run'}", f"data.gt_dir={faces_64}",
                f"data.embeddings_dir={embeddings_64}", "run.log_with=none"]
        return load_config(TINY_CONFIG, base + list(overrides))

    return make


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: the tiny models gain nothing from more, and on a shared 2-core machine
    OpenMP threads waiting for each other cost far more than they bring. Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
