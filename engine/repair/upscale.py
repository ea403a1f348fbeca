"""Whole-photo super-resolution (×2 / ×4) in overlapping tiles with a feathered blend.

Each tile of the photo is run with `overlap` pixels of context on every side that has a neighbour.
Of each result, the outer half of that context is dropped (pixels there saw the tile's edge, not the
photo), and the other half is blended with the neighbour's across a linear ramp, so the weights of
the tiles covering a pixel sum to one. When `overlap / 2` is at least the network's reach (its
receptive field's radius, in input pixels), every pixel that is kept saw exactly what it would have
seen untiled, and tiled equals untiled within float rounding; beyond that reach the ramp hides what
differs. The tile size comes from a memory budget (`tile_for_budget`). The factor asked for may be
below the model's (a ×4 model for ×2): its output is then reduced with area averaging.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report

#: a CPU's default working-set budget for one upscaling (activations, not the photo itself)
DEFAULT_BUDGET_BYTES = 1 << 30
DEFAULT_OVERLAP = 32
MIN_TILE = 64


@dataclass(frozen=True)
class Tiling:
    """`tile`: side of a tile's kept core, in input pixels; `overlap`: context per side."""

    tile: int
    overlap: int = DEFAULT_OVERLAP


def _feature_width(descriptor) -> int:
    """The widest feature map of the network (its parameters' largest output width)."""
    widths = [p.shape[0] for p in descriptor.model.parameters() if p.ndim == 4]
    return max(widths) if widths else 64


def tile_for_budget(descriptor, budget_bytes: int = DEFAULT_BUDGET_BYTES, overlap: int = DEFAULT_OVERLAP) -> Tiling:
    """A tile size whose activations fit `budget_bytes`: about six float32 feature maps of the widest
    width at the input size (RRDB blocks keep the input and four growth maps alive), plus the output
    at `scale`² the pixels."""
    scale = int(descriptor.scale)
    per_pixel = 4 * (6 * _feature_width(descriptor) + 3 * scale * scale * 2)
    side = int(math.sqrt(max(budget_bytes, 1) / per_pixel)) - 2 * overlap
    return Tiling(tile=max(MIN_TILE, side // 8 * 8), overlap=overlap)


def _to_tensor(pixels: np.ndarray, device):
    import torch

    return torch.from_numpy(np.ascontiguousarray(pixels[..., :3])).to(device).permute(2, 0, 1)[None].float() / 255.0


def run_model(descriptor, pixels: np.ndarray) -> np.ndarray:
    """The model's output for `pixels` (H×W×3 uint8) as float32 H·s×W·s×3 in 0..1 (not rounded)."""
    import torch

    device = next(descriptor.model.parameters()).device
    with torch.inference_mode():
        out = descriptor(_to_tensor(pixels, device))
    return out[0].permute(1, 2, 0).clamp(0.0, 1.0).float().cpu().numpy()


def _starts(length: int, tile: int) -> list[int]:
    count = max(1, math.ceil(length / tile))
    step = length / count
    return [round(i * step) for i in range(count)] + [length]


def _ramp(length: int, fade_start: int, fade_end: int) -> np.ndarray:
    """Weights along one axis of a kept tile region: 1 inside, a linear ramp over the first
    `fade_start` and the last `fade_end` pixels (0 where there is no neighbour to fade into)."""
    w = np.ones(length, np.float32)
    fade_start, fade_end = min(fade_start, length), min(fade_end, length)  # a tile smaller than its fades
    if fade_start:
        w[:fade_start] = (np.arange(fade_start, dtype=np.float32) + 0.5) / fade_start
    if fade_end:
        w[length - fade_end:] = np.minimum(w[length - fade_end:], (np.arange(fade_end, 0, -1, dtype=np.float32) - 0.5)
                                           / fade_end)
    return w


def upscale_tiled(descriptor, pixels: np.ndarray, tiling: Tiling, progress: ProgressCallback | None = None,
                  cancel: CancelCheck | None = None) -> np.ndarray:
    """The model's output for the whole photo, computed tile by tile (float32, 0..1, H·s×W·s×3)."""
    scale = int(descriptor.scale)
    h, w = pixels.shape[:2]
    ys, xs = _starts(h, tiling.tile), _starts(w, tiling.tile)
    half = tiling.overlap // 2
    out = np.zeros((h * scale, w * scale, 3), np.float32)
    weight = np.zeros((h * scale, w * scale, 1), np.float32)
    total, done = (len(ys) - 1) * (len(xs) - 1), 0
    for y0, y1 in zip(ys, ys[1:]):
        for x0, x1 in zip(xs, xs[1:]):
            check_cancelled(cancel, "upscaling")
            # input with context, the region kept (core ± half the context), and the fades
            cy0, cy1 = max(0, y0 - tiling.overlap), min(h, y1 + tiling.overlap)
            cx0, cx1 = max(0, x0 - tiling.overlap), min(w, x1 + tiling.overlap)
            ky0, ky1 = max(0, y0 - half), min(h, y1 + half)
            kx0, kx1 = max(0, x0 - half), min(w, x1 + half)
            result = run_model(descriptor, pixels[cy0:cy1, cx0:cx1])
            kept = result[(ky0 - cy0) * scale:(ky1 - cy0) * scale, (kx0 - cx0) * scale:(kx1 - cx0) * scale]
            wy = _ramp(kept.shape[0], 2 * half * scale if ky0 > 0 else 0, 2 * half * scale if ky1 < h else 0)
            wx = _ramp(kept.shape[1], 2 * half * scale if kx0 > 0 else 0, 2 * half * scale if kx1 < w else 0)
            tile_weight = (wy[:, None] * wx[None, :])[..., None]
            out[ky0 * scale:ky1 * scale, kx0 * scale:kx1 * scale] += kept * tile_weight
            weight[ky0 * scale:ky1 * scale, kx0 * scale:kx1 * scale] += tile_weight
            done += 1
            report(progress, done, total, f"upscaling: tile {done} of {total}")
    return out / np.maximum(weight, 1e-12)


def upscale(pixels: np.ndarray, descriptor, factor: int, tiling: Tiling | None = None,
            budget_bytes: int = DEFAULT_BUDGET_BYTES, progress: ProgressCallback | None = None,
            cancel: CancelCheck | None = None) -> np.ndarray:
    """`pixels` (H×W×3 uint8; an alpha channel is resized alongside) enlarged `factor` times by the
    model (`descriptor`, a spandrel image model whose scale is at least `factor`), as uint8."""
    import cv2

    from engine.errors import UsageError

    scale = int(descriptor.scale)
    if factor < 1 or factor > scale:
        raise UsageError(f"this upscaler enlarges {scale}×; it cannot give {factor}×")
    tiling = tiling or tile_for_budget(descriptor, budget_bytes)
    result = upscale_tiled(descriptor, pixels[..., :3], tiling, progress, cancel)
    h, w = pixels.shape[:2]
    if factor != scale:
        result = cv2.resize(result, (w * factor, h * factor), interpolation=cv2.INTER_AREA)
    out = np.clip(np.round(result * 255.0), 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        alpha = cv2.resize(pixels[..., 3], (w * factor, h * factor), interpolation=cv2.INTER_CUBIC)
        out = np.concatenate([out, alpha[..., None]], axis=2)
    return out
