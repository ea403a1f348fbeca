"""Issue 22, item 4: without the colour fix, each output level is what the release writes.

The release takes its rounded decode back through float64, `(pixel / 255. * 2. - 1.) * 127.5 + 127.5`,
and truncates with `astype(uint8)`; float64 rounding puts seven levels just below a whole number.
Every one of the 256 levels is checked against that expression, evaluated here on Python floats."""

from __future__ import annotations

import numpy as np
import torch

from engine.faceme.pipeline import rgb_output


def test_every_level_without_the_colour_fix_is_the_releases():
    levels = np.arange(256, dtype=np.uint8)
    image = np.stack([levels.reshape(16, 16)] * 3, axis=-1)
    decoded = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1.0  # rounds back to `levels`
    out = rgb_output(decoded, image, color_fix=False)
    release = [int((float(v) / 255.0 * 2.0 - 1.0) * 127.5 + 127.5) for v in range(256)]
    assert out[..., 0].reshape(-1).tolist() == release
    assert all(np.array_equal(out[..., 0], out[..., c]) for c in (1, 2))
    lower = [v for v in range(256) if release[v] != v]
    assert lower == [10, 18, 26, 34, 42, 50, 58] and all(release[v] == v - 1 for v in lower)


def test_the_colour_fix_path_is_unchanged():
    """With the colour fix the release's [0, 1] path (clamped, truncated) is kept as it was."""
    from engine.faceme.color_fix import wavelet_color_fix

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    lq = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    decoded = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    restored = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    fixed = wavelet_color_fix(restored, torch.from_numpy(lq).permute(2, 0, 1)[None].float() / 255.0).clamp(0, 1)
    expected = (fixed[0] * 255.0).floor().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(rgb_output(decoded, lq, color_fix=True), expected)
