"""The reference path point by point as the release computes it (spec: "Reference preprocessing").

Each test fails on the engine's earlier behaviour (BGR-fed InsightFace, 640 px first, largest face,
box clipped to the photo, rounded output after the colour fix)."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from engine.faceme.pipeline import rgb_output
from engine.faceme.references import (REFERENCE_DETECTION_SIZES, crop_for_clip, detect_reference_face,
                                      prepare_reference)
from engine.faces.insightface_backend import InsightFaceAnalyzer
from engine.faces.types import Face


@pytest.fixture(scope="module")
def analyzer(tiny_pack):
    return InsightFaceAnalyzer(tiny_pack / "insightface" / "antelopev2", providers=["CPUExecutionProvider"])


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_insightface_is_handed_the_rgb_array_and_arcface_embeds_it(analyzer, ref_paths, monkeypatch):
    from insightface.utils import face_align

    image = _rgb(ref_paths[1])
    seen = []
    detect = analyzer.detector.detect

    def recording_detect(img, *args, **kwargs):
        seen.append((np.array(img), kwargs.get("input_size")))
        return detect(img, *args, **kwargs)

    monkeypatch.setattr(analyzer.detector, "detect", recording_detect)
    reference = prepare_reference(analyzer, ref_paths[1])
    assert np.array_equal(seen[0][0], image)  # the RGB array itself, not its BGR conversion
    # ArcFace of the 5-point alignment of that same RGB array (InsightFace treats it as BGR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        aligned = face_align.norm_crop(image, landmark=reference.face.landmarks, image_size=112)
    raw = analyzer.recognizer.get_feat(aligned).reshape(-1)
    np.testing.assert_allclose(reference.arcface, raw / np.linalg.norm(raw), atol=1e-5)
    bgr_fed = analyzer.detect(image, det_size=512)[0].embedding  # the standard (BGR-fed) embedding
    assert np.abs(reference.arcface - bgr_fed).max() > 1e-3


def test_detector_sizes_512_first_then_640_to_320_then_256(analyzer, ref_paths):
    assert REFERENCE_DETECTION_SIZES == (512, 640, 576, 512, 448, 384, 320, 256)
    image = _rgb(ref_paths[0])
    tried = []
    blind_above_384 = SimpleNamespace(  # the real analyzer, blind at the larger sizes
        detect=lambda img, det_size: tried.append(det_size) or ([] if det_size > 384 else
                                                                 analyzer.detect(img, det_size=det_size)))
    face = detect_reference_face(blind_above_384, image, "ref.png")
    assert tried == [512, 640, 576, 448, 384]  # 512 is not run twice: the same input finds the same
    assert face.size > 50


def _face(box, score, seed):
    embedding = np.random.default_rng(seed).normal(size=512).astype(np.float32)
    landmarks = np.array([[box[0] + 5, box[1] + 5]] * 5, np.float32)
    return Face(box=box, score=score, landmarks=landmarks, embedding=embedding / np.linalg.norm(embedding),
                embedding_model="test")


class TwoFaces:
    """Detector output in InsightFace's order: a small face with the higher score first."""

    def __init__(self):
        self.faces = [_face((10.0, 10.0, 40.0, 44.0), 0.95, 1), _face((50.0, 8.0, 120.0, 90.0), 0.80, 2)]

    def detect(self, img, det_size=None):
        return list(self.faces)


def test_the_first_face_returned_is_used_not_the_largest():
    image = np.full((100, 130, 3), 90, np.uint8)
    analyzer = TwoFaces()
    reference = prepare_reference(analyzer, image)
    assert reference.face is analyzer.faces[0]
    assert reference.face.area < analyzer.faces[1].area
    np.testing.assert_array_equal(reference.arcface, analyzer.faces[0].embedding)


def test_clip_crop_is_pil_crop_of_the_float_box_black_outside_the_photo():
    image = np.random.default_rng(0).integers(1, 255, (32, 32, 3), dtype=np.uint8)
    box = (-10.4, 5.6, 30.5, 40.2)  # past the left and bottom edges; PIL rounds (30.5 → 30, banker's)
    crop = crop_for_clip(image, box)
    assert crop.shape == (40 - 6, 30 - (-10), 3)
    np.testing.assert_array_equal(crop, np.asarray(Image.fromarray(image).crop(box)))
    assert not crop[:, :10].any() and not crop[32 - 6:].any()  # black where the box leaves the photo
    np.testing.assert_array_equal(crop[:32 - 6, 10:], image[6:32, 0:30])


def test_prepare_reference_keeps_the_part_of_the_box_outside_the_photo():
    image = np.full((100, 130, 3), 200, np.uint8)
    analyzer = TwoFaces()
    analyzer.faces = [_face((-12.3, 60.2, 38.7, 121.6), 0.9, 3)]
    reference = prepare_reference(analyzer, image)
    assert reference.clip_crop.shape == (122 - 60, 39 + 12, 3)
    assert not reference.clip_crop[:, :12].any() and not reference.clip_crop[40:].any()
    assert (reference.clip_crop[:40, 12:] == 200).all()


def test_output_is_truncated_after_the_colour_fix():
    from engine.faceme.color_fix import wavelet_color_fix

    rng = np.random.default_rng(5)
    decoded = torch.from_numpy(rng.uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32))
    lq = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    got = rgb_output(decoded, lq, color_fix=True)
    rounded = ((decoded + 1) * 127.5).round() / 255  # the decode, rounded to uint8 first
    lq01 = torch.from_numpy(lq).permute(2, 0, 1)[None].float() / 255
    fixed = wavelet_color_fix(rounded, lq01).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255
    np.testing.assert_array_equal(got, fixed.astype(np.uint8))
    assert (got != np.round(fixed)).mean() > 0.3  # truncation, not rounding
    plain = rgb_output(decoded, lq, color_fix=False)
    rounded_decode = (((decoded[0] + 1) * 127.5).round()).permute(1, 2, 0).byte().numpy()
    # without the fix, the release's float64 round trip of the rounded decode, truncated (issue 22, item 4)
    np.testing.assert_array_equal(plain, ((rounded_decode / 255.0 * 2.0 - 1.0) * 127.5 + 127.5).astype(np.uint8))
