"""Face detection and ArcFace run on onnxruntime's CUDA provider when the runtime offers it
(onnxruntime-gpu) and the user's device allows it, else on the CPU; the identity check keeps its own
recogniser. This machine has the CPU build: `onnxruntime.get_available_providers` is made to offer
CUDA (the one boundary replaced), the real sessions are created through the users' code path, and
onnxruntime itself falls back to the CPU, which the analyser must say."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import onnxruntime
import pytest
from PIL import Image

CUDA_OFFERED = ["CUDAExecutionProvider", "CPUExecutionProvider"]
LOGGER = "engine.faces.insightface_backend"


@pytest.fixture
def cuda_offered(monkeypatch):
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(CUDA_OFFERED))


def test_analyser_follows_the_settings_device_and_says_when_cuda_did_not_start(cuda_offered, tiny_pack, shared,
                                                                              caplog):
    from engine.faces.choice import make_face_analyzer
    from engine.restore.plan import detect_faces
    from engine.settings import Settings

    photo = np.asarray(Image.open(shared / "data" / "celebref_refs" / "00005" / "hq" / "0.png").convert("RGB"))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        on_gpu = make_face_analyzer("antelopev2", tiny_pack, device=Settings(device="auto").device)
    assert on_gpu.providers == CUDA_OFFERED
    # the CPU build cannot start CUDA: the sessions run on the CPU, and the log says why faces are slow
    assert on_gpu.active_providers == {"detection": ["CPUExecutionProvider"],
                                       "recognition": ["CPUExecutionProvider"]}
    assert "could not start its CUDA provider" in caplog.text
    faces = detect_faces(on_gpu, photo)
    assert len(faces) == 1 and faces[0].embedding.shape == (512,)

    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        on_cpu = make_face_analyzer("antelopev2", tiny_pack, device=Settings(device="cpu").device)
    assert on_cpu.providers == ["CPUExecutionProvider"]
    assert "could not start" not in caplog.text and "detection on CPUExecutionProvider" in caplog.text
    np.testing.assert_allclose(detect_faces(on_cpu, photo)[0].embedding, faces[0].embedding, atol=1e-5)


def test_identity_check_keeps_its_own_recogniser_on_the_gpu(cuda_offered, tmp_path, shared, tiny_pack):
    """FaceMe's analyser (antelopev2, as from_pack makes it for a CUDA device) and the check's
    (buffalo_l, as shared_check makes it) both ask for CUDA, on sessions of their own."""
    from engine.faces.insightface_backend import InsightFaceAnalyzer, providers_for_device
    from engine.models.layout import part_dir
    from engine.restore.identity_check import independent_check

    buffalo = part_dir(tmp_path, "buffalo_l")
    buffalo.mkdir(parents=True)
    shutil.copyfile(shared / "models" / "insightface_scrfd" / "det_500m.onnx", buffalo / "det_10g.onnx")
    shutil.copyfile(part_dir(tiny_pack, "antelopev2") / "glintr100.onnx", buffalo / "w600k_r50.onnx")

    faceme = InsightFaceAnalyzer(part_dir(tiny_pack, "antelopev2"), providers=providers_for_device("cuda"))
    check = independent_check(tmp_path)
    assert faceme.providers[0] == check.recognizer.providers[0] == "CUDAExecutionProvider"
    assert check.recognizer is not faceme and check.recognizer.recognizer.session is not faceme.recognizer.session
    assert check.model == "insightface/buffalo_l/w600k_r50" != faceme.embedding_model
