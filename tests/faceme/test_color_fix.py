"""The wavelet colour fix keeps the LQ's low frequencies and the restored image's detail."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.faceme.color_fix import wavelet_blur, wavelet_color_fix, wavelet_decompose


def _load(path) -> torch.Tensor:
    pixels = np.asarray(Image.open(path).convert("RGB").resize((256, 256), Image.BICUBIC))
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1


@pytest.fixture(scope="module")
def photos(crops_dir):
    return [_load(p) for p in sorted(crops_dir.glob("*.png"))[:12]]


def test_kernel_dilation_and_padding():
    impulse = torch.zeros(1, 1, 33, 33)
    impulse[0, 0, 16, 16] = 16.0
    for dilation in (1, 2, 4, 8):
        out = wavelet_blur(impulse, dilation)[0, 0]
        taps = out[16 - dilation:16 + dilation + 1:dilation, 16 - dilation:16 + dilation + 1:dilation]
        assert taps.tolist() == [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
        assert out.sum() == 16.0 and int((out != 0).sum()) == 9
    constant = torch.full((1, 3, 20, 20), 0.3)
    torch.testing.assert_close(wavelet_blur(constant, 8), constant)  # replicate padding: no dark border
    image = torch.rand(1, 3, 40, 40)
    high, low = wavelet_decompose(image, 5)
    torch.testing.assert_close(high + low, image)
    blurred = image
    for level in range(5):
        blurred = wavelet_blur(blurred, 2 ** level)
    torch.testing.assert_close(low, blurred)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, 11), cast=st.lists(st.floats(-0.4, 0.4), min_size=3, max_size=3),
       gain=st.floats(0.7, 1.3))
def test_a_colour_cast_is_undone(photos, index, cast, gain):
    """restored = gain · lq + cast (diffusion colour drift): the fix gives back lq's colours."""
    lq = photos[index]
    drifted = gain * lq + torch.tensor(cast).view(1, 3, 1, 1)
    fixed = wavelet_color_fix(drifted, lq)
    lq_high, lq_low = wavelet_decompose(lq)
    _, fixed_low = wavelet_decompose(fixed)
    torch.testing.assert_close(fixed, gain * lq_high + lq_low, rtol=0, atol=1e-4)
    if gain == 1.0:
        torch.testing.assert_close(fixed, lq, rtol=0, atol=1e-4)
    # the output's low frequencies are the LQ's, not the drifted ones
    drift_error = (wavelet_decompose(drifted)[1] - lq_low).abs().mean()
    assert (fixed_low - lq_low).abs().mean() < 0.25 * drift_error + 1e-3


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=st.integers(0, 11), b=st.integers(0, 11))
def test_detail_from_restored_colours_from_lq(photos, a, b):
    restored, lq = photos[a], photos[b]
    fixed = wavelet_color_fix(restored, lq)
    # coarse colours (32 px blocks) follow the LQ ...
    coarse = lambda x: F.avg_pool2d(x, 32)  # noqa: E731
    before = (coarse(restored) - coarse(lq)).abs().mean()
    after = (coarse(fixed) - coarse(lq)).abs().mean()
    assert after <= 0.35 * before + 1e-3
    # ... while the finest detail is the restored image's
    fine = lambda x: x - wavelet_blur(x, 1)  # noqa: E731
    if a != b:
        detail_error = (fine(fixed) - fine(restored)).abs().mean()
        assert detail_error < 0.15 * (fine(lq) - fine(restored)).abs().mean()
