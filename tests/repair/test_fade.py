"""Fading correction on real photos faded with known curves: colour error (CIEDE2000) to the original."""

import numpy as np
import pytest

from engine.repair.fade import FadeSettings, correct_fade, delta_e2000


def fade(pixels, black, white, gamma):
    x = pixels.astype(np.float32) / 255.0
    b, w, g = (np.asarray(v, np.float32) for v in (black, white, gamma))
    return np.clip(np.round((b + (w - b) * x ** g) * 255.0), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photo(shared):
    from engine.imageio import read_image

    pixels = read_image(shared / "data/group_photos/images/deepface_couple.jpg").pixels
    return np.ascontiguousarray(pixels[::10, ::10])  # colour statistics, not detail: a small sample


@pytest.mark.parametrize("black, white, gamma", [
    ((0.10, 0.05, 0.10), (0.95, 0.80, 0.92), (0.9, 1.1, 0.95)),  # magenta cast
    ((0.12, 0.10, 0.04), (0.97, 0.90, 0.72), (0.95, 1.0, 1.2)),  # yellowed
    ((0.15, 0.15, 0.15), (0.85, 0.85, 0.85), (1.0, 1.0, 1.0)),  # washed out
])
def test_correction_halves_the_colour_error_of_a_known_fade(photo, black, white, gamma):
    faded = fade(photo, black, white, gamma)
    before = delta_e2000(photo, faded).mean()
    after = delta_e2000(photo, correct_fade(faded)).mean()
    assert after < 0.6 * before, (before, after)


def test_strength_blends_and_zero_changes_nothing(photo):
    faded = fade(photo, (0.1, 0.05, 0.1), (0.95, 0.8, 0.92), (1, 1, 1))
    assert np.array_equal(correct_fade(faded, FadeSettings(strength=0.0)), faded)
    full = delta_e2000(photo, correct_fade(faded)).mean()
    half = delta_e2000(photo, correct_fade(faded, FadeSettings(strength=0.5))).mean()
    assert full < half < delta_e2000(photo, faded).mean()


def test_a_grey_photo_stays_grey_and_alpha_is_kept(photo):
    grey = np.repeat((photo.mean(axis=2) * 0.6 + 40).astype(np.uint8)[..., None], 3, axis=2)
    rgba = np.concatenate([grey, np.full(grey.shape[:2] + (1,), 200, np.uint8)], axis=2)
    out = correct_fade(rgba, FadeSettings(local_contrast=1.5))
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    assert (out[..., 3] == 200).all()
    assert np.percentile(out[..., 0], 99.9) - np.percentile(out[..., 0], 0.1) > 240  # levels restored
