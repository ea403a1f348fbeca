"""Fading and colour casts: contrast and neutral balance restored from the photo's own statistics.

No model and no invented colour: each channel's levels are stretched between low and high
percentiles (a faded print lost its blacks and whites, and a cast moves each channel's range
differently), then a white-point / grey-world balance removes what cast is left (gains that make the
brightest pixels and the mid-tones neutral, measured after the levels), then optionally a local
contrast step (CLAHE on lightness only, so colours keep their hue). `strength` blends the result with
the input: 0 is the input, 1 the full correction. A grey photo stays grey.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FadeSettings:
    """`low` / `high`: percentiles (of each channel) that become black and white; `white_share`: the
    brightest share of pixels whose mean is taken as white; `grey_world`: how much of the balance comes
    from the mean (grey world) rather than the white point; `local_contrast`: CLAHE clip limit, 0 off."""

    strength: float = 1.0
    low: float = 0.1
    high: float = 99.9
    white_share: float = 0.01
    grey_world: float = 0.5
    local_contrast: float = 0.0

    def __post_init__(self):
        from engine.errors import UsageError

        if not 0.0 <= self.strength <= 1.0:
            raise UsageError(f"the fade correction's strength must be between 0 and 1 (got {self.strength})")
        if not 0.0 <= self.low < self.high <= 100.0:
            raise UsageError(f"fade percentiles must satisfy 0 <= low < high <= 100 (got {self.low}, {self.high})")


def _sample(pixels: np.ndarray, limit: int = 1_000_000) -> np.ndarray:
    """At most `limit` pixels (a regular subsample) as float32 N×3: statistics, not every pixel."""
    flat = pixels.reshape(-1, pixels.shape[-1])
    step = max(1, flat.shape[0] // limit)
    return flat[::step].astype(np.float32)


def correction_curves(pixels: np.ndarray, settings: FadeSettings = FadeSettings()) -> np.ndarray:
    """The per-channel 256-entry curves (levels then balance) for `pixels` (H×W×3 uint8), as float32
    values in 0..255 (3×256)."""
    sample = _sample(pixels[..., :3])
    gray = bool(np.all(sample[:, 0] == sample[:, 1]) and np.all(sample[:, 1] == sample[:, 2]))
    lo = np.percentile(sample, settings.low, axis=0)
    hi = np.percentile(sample, settings.high, axis=0)
    if gray:  # one curve for all three: a grey photo stays grey
        lo, hi = np.full(3, lo.min()), np.full(3, hi.max())
    hi = np.maximum(hi, lo + 8.0)  # a flat channel is not stretched into noise
    levels = np.clip((sample - lo) / (hi - lo), 0.0, 1.0)
    x = np.arange(256, dtype=np.float32)[None, :]
    curves = np.clip((x - lo[:, None]) / (hi - lo)[:, None], 0.0, 1.0)
    if not gray:
        # white point: the brightest pixels made neutral by a gain per channel
        luma = levels.mean(axis=1)
        bright = levels[luma >= np.quantile(luma, 1.0 - settings.white_share)]
        white = bright.mean(axis=0) if len(bright) else np.ones(3)
        gains = np.clip(white.min() / np.maximum(white, 1e-3), 0.5, 1.0)  # never brighten past white
        levels = levels * gains
        curves = curves * gains[:, None]
        # grey world on the mid-tones: a power per channel (black and white stay where they are) that
        # moves each channel's mean toward the mean of the three, by `grey_world`
        mean = np.clip(levels.mean(axis=0), 0.02, 0.98)
        target = np.clip(mean.mean(), 0.02, 0.98)
        powers = np.log(target) / np.log(mean)
        powers = np.exp(settings.grey_world * np.log(np.clip(powers, 0.5, 2.0)))
        curves = np.clip(curves, 0.0, 1.0) ** powers[:, None]
    return (np.clip(curves, 0.0, 1.0) * 255.0).astype(np.float32)


def _local_contrast(rgb: np.ndarray, clip_limit: float) -> np.ndarray:
    """CLAHE on L* only (OpenCV's Lab), so the hue of every pixel is kept."""
    import cv2

    tiles = max(2, min(16, round(max(rgb.shape[:2]) / 256)))
    clahe = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(tiles, tiles))
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return np.repeat(clahe.apply(np.ascontiguousarray(rgb[..., 0]))[..., None], 3, axis=2)  # stays grey
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def correct_fade(pixels: np.ndarray, settings: FadeSettings = FadeSettings()) -> np.ndarray:
    """`pixels` (H×W×3 uint8, or ×4: alpha kept) with levels, balance and (optionally) local contrast
    restored, blended with the input by `settings.strength`."""
    if settings.strength == 0.0:
        return pixels.copy()
    rgb = np.ascontiguousarray(pixels[..., :3])
    lut = np.clip(np.round(correction_curves(rgb, settings)), 0, 255).astype(np.uint8)
    corrected = np.empty_like(rgb)
    for c in range(3):
        corrected[..., c] = lut[c][rgb[..., c]]
    if settings.local_contrast > 0:
        corrected = _local_contrast(corrected, settings.local_contrast)
    if settings.strength == 1.0:
        out = corrected
    else:
        out = np.round(settings.strength * corrected.astype(np.float32)
                       + (1.0 - settings.strength) * rgb.astype(np.float32)).astype(np.uint8)
    if pixels.shape[-1] == 4:
        return np.concatenate([out, pixels[..., 3:]], axis=-1)
    return out


def delta_e2000(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference per pixel between two sRGB uint8 images (scikit-image's)."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    return deltaE_ciede2000(rgb2lab(a[..., :3]), rgb2lab(b[..., :3]))
