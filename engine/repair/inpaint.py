"""The damage mask filled by LaMa; every pixel outside the mask is returned as it was, byte for byte.

LaMa sees each damaged region with `context` pixels of photo around it (regions closer than twice that
share one window), never the whole photo at once: the cost follows the damage, not the
megapixels. A window larger than `max_side` is processed reduced to it and its fill enlarged back
(only the masked pixels take it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report


@dataclass(frozen=True)
class InpaintSettings:
    context: int = 64
    max_side: int = 1024


def damage_windows(mask: np.ndarray, context: int) -> list[tuple[int, int, int, int]]:
    """Windows (y0, y1, x0, x1) covering every damaged pixel with `context` around it: the bounding
    boxes of the mask grown by `context` (damage closer than twice that shares a window)."""
    import cv2

    grown = cv2.dilate((mask > 0).astype(np.uint8), np.ones((2 * context + 1, 2 * context + 1), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    return sorted((int(y), int(y + bh), int(x), int(x + bw)) for x, y, bw, bh, _area in stats[1:count])


def _fill(descriptor, window: np.ndarray, window_mask: np.ndarray) -> np.ndarray:
    import torch

    device = next(descriptor.model.parameters()).device
    # a copy: the window may be a view of a read-only photo, which torch refuses to wrap without a warning
    image = torch.from_numpy(np.array(window, copy=True)).to(device).permute(2, 0, 1)[None].float() / 255.0
    mask = torch.from_numpy((window_mask > 0).astype(np.float32)).to(device)[None, None]
    with torch.inference_mode():
        out = descriptor(image, mask)
    return np.clip(np.round(out[0].permute(1, 2, 0).float().cpu().numpy() * 255.0), 0, 255).astype(np.uint8)


def inpaint(pixels: np.ndarray, mask: np.ndarray, descriptor, settings: InpaintSettings = InpaintSettings(),
            progress: ProgressCallback | None = None, cancel: CancelCheck | None = None) -> np.ndarray:
    """`pixels` (H×W×3 or ×4 uint8) with the pixels where `mask` (H×W) is nonzero replaced by LaMa's
    fill; all others (and the alpha channel) unchanged."""
    import cv2

    out = pixels.copy()
    rgb = np.ascontiguousarray(pixels[..., :3])
    windows = damage_windows(mask, settings.context)
    for n, (y0, y1, x0, x1) in enumerate(windows, start=1):
        check_cancelled(cancel, "inpainting")
        window, window_mask = rgb[y0:y1, x0:x1], mask[y0:y1, x0:x1]
        side = max(window.shape[:2])
        if side > settings.max_side:
            f = settings.max_side / side
            size = (max(16, round(window.shape[1] * f)), max(16, round(window.shape[0] * f)))
            small = cv2.resize(window, size, interpolation=cv2.INTER_AREA)
            small_mask = cv2.resize(window_mask, size, interpolation=cv2.INTER_NEAREST)
            filled = cv2.resize(_fill(descriptor, small, grow_small(small_mask)), (window.shape[1], window.shape[0]),
                                interpolation=cv2.INTER_CUBIC)
        else:
            filled = _fill(descriptor, window, window_mask)
        damaged = window_mask > 0
        out[y0:y1, x0:x1, :3][damaged] = filled[damaged]
        report(progress, n, len(windows), f"inpainting: region {n} of {len(windows)}")
    return out


def grow_small(mask: np.ndarray) -> np.ndarray:
    """A reduced mask grown by a pixel, so no damaged pixel escapes the reduction."""
    import cv2

    return cv2.dilate(mask, np.ones((3, 3), np.uint8))
