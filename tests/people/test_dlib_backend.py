"""The embedded dlib analyser: the engine's landmark convention, unit embeddings, identity signal."""

from __future__ import annotations

import numpy as np
import pytest

from engine.faces.dlib_backend import EMBEDDING_MODEL, DlibFaceAnalyzer, find_dlib_models_dir
from engine.imageio import read_image


@pytest.fixture(scope="module")
def dlib_analyzer():
    return DlibFaceAnalyzer()


def test_models_are_found_without_importing_the_package():
    import sys

    folder = find_dlib_models_dir()
    assert (folder / "dlib_face_recognition_resnet_model_v1.dat").is_file()
    assert "face_recognition_models" not in sys.modules


def test_faces_landmarks_and_embeddings(shared, dlib_analyzer):
    ids = shared / "data" / "deepface_ids" / "images"
    image = read_image(ids / "person_01" / "img1.jpg").pixels  # 1382 × 1868: detected on a reduced copy
    faces = dlib_analyzer.detect(image)
    assert len(faces) == 1
    face = faces[0]
    x1, y1, x2, y2 = face.box
    assert face.embedding_model == EMBEDDING_MODEL and face.embedding.shape == (128,)
    assert abs(float(np.linalg.norm(face.embedding)) - 1.0) < 1e-5
    (lex, ley), (rex, rey), (nx, ny), (lmx, lmy), (rmx, rmy) = face.landmarks
    assert x1 <= lex < nx < rex <= x2 and lmx < rmx  # image-left first
    assert max(ley, rey) < ny < min(lmy, rmy) <= y2  # eyes above the nose above the mouth
    # embed() on the detected face gives the detection's embedding (the same alignment)
    assert np.allclose(dlib_analyzer.embed(image, face), face.embedding, atol=1e-5)
    # identity: the same person is closer than another person
    same = dlib_analyzer.detect(read_image(ids / "person_01" / "img2.jpg").pixels)[0].embedding
    other_dir = sorted(p for p in ids.iterdir() if p.name != "person_01")[0]
    other = dlib_analyzer.detect(read_image(sorted(other_dir.glob("*.jpg"))[0]).pixels)[0].embedding
    assert float(face.embedding @ same) > 0.92 > float(face.embedding @ other)


def test_no_face_and_bad_input(dlib_analyzer):
    assert dlib_analyzer.detect(np.full((120, 160, 3), 128, np.uint8)) == []
    with pytest.raises(ValueError):
        dlib_analyzer.detect(np.zeros((10, 10, 3), np.float32))
