"""Alignment: the similarity fit, the templates, the warps and their inverse, faces at the border."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.faces.align import (
    ARCFACE_TEMPLATE_112,
    FFHQ_TEMPLATE_512,
    align_face,
    arcface_alignment,
    estimate_similarity,
    invert_affine,
    warp_from_crop,
    warp_to_crop,
)


def _similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


@pytest.mark.parametrize("angle,scale", [(0.0, 1.0), (0.4, 3.7), (-2.5, 0.21), (math.pi, 1.3)])
def test_similarity_fit_recovers_a_known_transform(angle, scale):
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 500, size=(5, 2))
    truth = _similarity(angle, scale, 31.5, -12.25)
    np.testing.assert_allclose(estimate_similarity(src, _apply(truth, src)), truth, atol=1e-9)


def test_similarity_fit_never_reflects():
    src = FFHQ_TEMPLATE_512.copy()
    mirrored = src * [-1, 1]
    matrix = estimate_similarity(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_templates_are_the_published_points():
    assert FFHQ_TEMPLATE_512.shape == (5, 2) and ARCFACE_TEMPLATE_112.shape == (5, 2)
    np.testing.assert_allclose(FFHQ_TEMPLATE_512[0], (192.98138, 239.94708))
    np.testing.assert_allclose(FFHQ_TEMPLATE_512[4], (313.08905, 371.15118))
    np.testing.assert_allclose(ARCFACE_TEMPLATE_112[2], (56.0252, 71.7366))


def test_alignment_maps_landmarks_onto_the_template_and_back():
    truth = _similarity(0.3, 0.25, 700.0, 180.0)  # a face of ~30 px eye distance, tilted
    landmarks = _apply(truth, FFHQ_TEMPLATE_512)
    alignment = align_face(landmarks)
    np.testing.assert_allclose(_apply(alignment.matrix, landmarks), FFHQ_TEMPLATE_512, atol=1e-6)
    np.testing.assert_allclose(_apply(alignment.inverse, FFHQ_TEMPLATE_512), landmarks, atol=1e-6)
    np.testing.assert_allclose(invert_affine(alignment.inverse), alignment.matrix, atol=1e-9)
    assert alignment.scale == pytest.approx(4.0)
    arcface_landmarks = _apply(truth, ARCFACE_TEMPLATE_112)
    small = arcface_alignment(arcface_landmarks)
    np.testing.assert_allclose(_apply(small.matrix, arcface_landmarks), ARCFACE_TEMPLATE_112, atol=1e-6)
    assert small.size == 112


def test_bad_landmarks_are_refused():
    with pytest.raises(ValueError):
        align_face(np.zeros((4, 2)))
    with pytest.raises(ValueError):
        align_face(np.full((5, 2), np.nan))


def _textured(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([128 + 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0),
                      128 + 50 * np.cos((xx + yy) / 17.0),
                      100 + 0.2 * xx], axis=-1)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("scale", [0.4, 1.0, 2.5, 7.0])
def test_crop_and_back_reproduces_a_smooth_photo(scale):
    image = _textured(900, 1200)
    landmarks = _apply(_similarity(0.2, 1 / scale, 600.0, 450.0), FFHQ_TEMPLATE_512 - 256)
    alignment = align_face(landmarks)
    assert alignment.scale == pytest.approx(scale, rel=1e-6)
    crop = warp_to_crop(image, alignment)
    assert crop.shape == (512, 512, 3) and crop.dtype == np.uint8
    region = alignment.region(image.shape)
    x0, y0, x1, y1 = region
    back = warp_from_crop(crop, alignment, region)
    inner = (slice((y1 - y0) // 3, 2 * (y1 - y0) // 3), slice((x1 - x0) // 3, 2 * (x1 - x0) // 3))
    error = np.abs(back[inner] - image[y0:y1, x0:x1][inner].astype(np.float32))
    assert error.mean() < 1.0


def test_face_at_the_border_is_padded_by_reflection_and_clipped():
    image = _textured(300, 400)
    # a face whose crop hangs over the top-left corner
    landmarks = _apply(_similarity(0.0, 0.3, 10.0, 5.0), FFHQ_TEMPLATE_512 - 256)
    alignment = align_face(landmarks)
    crop = warp_to_crop(image, alignment)
    assert crop.min() > 0  # reflected content, no black wedge
    x0, y0, x1, y1 = alignment.region(image.shape)
    assert (x0, y0) == (0, 0) and x1 <= 400 and y1 <= 300
    corners = alignment.crop_corners_in_photo()
    assert corners[:, 0].min() < 0 and corners[:, 1].min() < 0
    assert alignment.region((300, 400, 3)) is not None
    far = align_face(landmarks + 5000)
    assert far.region(image.shape) is None


def test_gray_and_single_channel_images_keep_their_channels():
    image = _textured(200, 200)[..., :1]
    alignment = align_face(_apply(_similarity(0.0, 0.3, 100.0, 100.0), FFHQ_TEMPLATE_512 - 256))
    assert warp_to_crop(image, alignment).shape == (512, 512, 1)
    assert warp_to_crop(image[..., 0], alignment).shape == (512, 512)
