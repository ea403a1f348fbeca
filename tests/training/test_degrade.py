"""The training degradation pinned to the spec (paper Eq. 6 with the released ranges)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from training import degrade as D

ROOT = Path(__file__).resolve().parents[2]


def face_like(size: int = 128) -> np.ndarray:
    """A smooth, textured RGB test image (no file needed)."""
    y, x = np.mgrid[0:size, 0:size] / size
    r = 0.5 + 0.4 * np.sin(6 * x) * np.cos(4 * y)
    g = 0.5 + 0.3 * np.cos(5 * x + 2 * y)
    b = 0.4 + 0.3 * np.sin(3 * y)
    return D.to_uint8(np.stack([r, g, b], -1))


def test_released_ranges_are_the_defaults():
    r = D.DegradationRanges()
    assert r.kernel_size == 41
    assert r.anisotropic_prob == 0.5
    assert r.blur_sigma == (0.2, 10.0)
    assert r.downsample == (1.0, 16.0)
    assert r.noise_sigma == (0.0, 15.0)
    assert r.jpeg_quality == (30, 100)


def test_sampled_parameters_stay_in_the_released_ranges():
    params = [D.sample_degradation(seed) for seed in range(3000)]
    assert all(p.kernel_size == 41 for p in params)
    assert all(0.2 <= p.sigma_x <= 10 and 0.2 <= p.sigma_y <= 10 for p in params)
    assert all(1 <= p.downsample <= 16 for p in params)
    assert all(0 <= p.noise_sigma <= 15 for p in params)
    assert all(30 <= p.jpeg_quality <= 100 and isinstance(p.jpeg_quality, int) for p in params)
    iso = [p for p in params if not p.anisotropic]
    aniso = [p for p in params if p.anisotropic]
    # p = 0.5 each: 3000 draws, 5 standard deviations ≈ ±137
    assert abs(len(iso) - 1500) < 140
    assert all(p.sigma_x == p.sigma_y and p.rotation == 0 for p in iso)
    assert all(-math.pi <= p.rotation <= math.pi for p in aniso)
    assert np.std([p.rotation for p in aniso]) > 1.5  # spread over the circle, not a constant
    # the ranges are covered, not just respected
    assert min(p.downsample for p in params) < 1.2 and max(p.downsample for p in params) > 15.5
    assert {30, 100} <= {p.jpeg_quality for p in params}


def test_same_seed_same_result_and_different_seed_different_result():
    image = face_like()
    a, b = D.degrade(image, 7), D.degrade(image, 7)
    c = D.degrade(image, 8)
    assert a.params == b.params
    np.testing.assert_array_equal(a.image, b.image)
    assert a.params != c.params
    assert not np.array_equal(a.image, c.image)
    # a generator works as well as an int seed
    d = D.degrade(image, np.random.default_rng(7))
    assert d.params == a.params


def test_output_size_and_range():
    for shape in ((128, 128), (96, 80)):
        image = face_like(128)[: shape[0], : shape[1]]
        out = D.degrade(image, 3).image
        assert out.shape == image.shape and out.dtype == np.float32
        assert out.min() >= 0 and out.max() <= 1
    assert D.degrade(face_like(64), 3, out_size=(512, 512)).image.shape == (512, 512, 3)


def test_the_five_steps_run_in_the_papers_order(monkeypatch):
    calls = []

    def record(name, fn):
        def wrapper(*args, **kwargs):
            calls.append((name, args[0].shape[:2]))
            return fn(*args, **kwargs)
        return wrapper

    for name in ("blur", "downsample", "add_gaussian_noise", "jpeg_compress", "upsample"):
        monkeypatch.setattr(D, name, record(name, getattr(D, name)))
    params = D.DegradationParams(41, False, 2.0, 2.0, 0.0, 4.0, 5.0, 1, 60)
    D.apply_degradation(face_like(128), params)
    assert [c[0] for c in calls] == ["blur", "downsample", "add_gaussian_noise", "jpeg_compress", "upsample"]
    # blur at full size, noise and JPEG at the downsampled size, then back up
    assert [c[1] for c in calls] == [(128, 128), (128, 128), (32, 32), (32, 32), (32, 32)]


def test_degenerate_parameters_leave_the_image_almost_unchanged():
    image = face_like()
    mild = D.DegradationParams(41, False, 0.2, 0.2, 0.0, 1.0, 0.0, 0, 100)
    out = D.apply_degradation(image, mild)
    assert np.abs(out - image / 255.0).mean() < 1.5 / 255


def test_noise_step_alone_has_the_sampled_sigma():
    flat = np.full((256, 256, 3), 128, np.uint8)
    noisy = D.add_gaussian_noise(flat / 255.0, 15.0, seed=0)
    assert np.std(noisy - flat / 255.0) * 255 == pytest.approx(15.0, rel=0.02)
    # every channel has its own noise
    assert not np.allclose(noisy[..., 0], noisy[..., 1])


def test_downsample_factor_sets_the_intermediate_size():
    assert D.downsample(np.zeros((512, 512, 3), np.float32), 16.0).shape == (32, 32, 3)
    assert D.downsample(np.zeros((512, 512, 3), np.float32), 3.3).shape == (155, 155, 3)


def test_jpeg_step_quantises_like_a_jpeg_file():
    image = face_like() / 255.0
    low, high = D.jpeg_compress(image, 30), D.jpeg_compress(image, 100)
    assert np.abs(high - image).mean() < np.abs(low - image).mean()
    assert np.all(np.rint(low * 255) == low * 255)  # decoded 8-bit values


def test_gaussian_kernel_shapes():
    iso = D.gaussian_kernel(41, 3.0, 3.0, 0.0)
    assert iso.shape == (41, 41) and iso.sum() == pytest.approx(1.0, abs=1e-5)
    ax = np.arange(-20, 21)
    g = np.exp(-ax**2 / (2 * 9.0))
    np.testing.assert_allclose(iso, np.outer(g, g) / np.outer(g, g).sum(), atol=1e-7)
    aniso = D.gaussian_kernel(41, 1.0, 5.0, 0.0)
    rotated = D.gaussian_kernel(41, 1.0, 5.0, math.pi / 2)
    np.testing.assert_allclose(rotated, aniso.T, atol=1e-6)
    # wider along y than along x before rotation
    assert aniso[20, 20 + 4] < aniso[20 + 4, 20]


def test_blur_step_uses_the_sampled_kernel():
    impulse = np.zeros((121, 121, 3), np.float32)  # borders far enough that reflections add nothing
    impulse[60, 60] = 1.0
    kernel = D.gaussian_kernel(41, 2.0, 6.0, 0.7)
    np.testing.assert_allclose(D.blur(impulse, kernel)[40:81, 40:81, 0], kernel[::-1, ::-1], atol=1e-7)


def test_the_committed_grid_exists():
    from PIL import Image

    grid = ROOT / "docs" / "images" / "degradation_grid.png"
    assert grid.is_file()
    with Image.open(grid) as im:
        assert im.size == (6 * 224, 4 * 224)
