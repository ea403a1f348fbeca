"""Scratches, creases and dust → a damage mask (uint8, 255 where the print is damaged).

The detector (`scratch_detector`) sees the photo in grey, reduced so its longer side is at most
`working_side` and both sides are multiples of 16; its probabilities are enlarged back to the photo's
size, thresholded at the release's 0.4 and the mask grown by `grow` pixels (a scratch's soft edge is
damage too, and LaMa needs to see past it). A mask the user drew or corrected (`read_mask`) replaces
the detector's: white is damage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import UsageError
from engine.progress import CancelCheck, check_cancelled
from engine.repair.scratch_detector import SIDE_MULTIPLE, THRESHOLD


@dataclass(frozen=True)
class MaskSettings:
    working_side: int = 1024
    threshold: float = THRESHOLD
    grow: int = 2


def _working_size(h: int, w: int, side: int) -> tuple[int, int]:
    scale = min(1.0, side / max(h, w))
    return (max(SIDE_MULTIPLE, round(h * scale / SIDE_MULTIPLE) * SIDE_MULTIPLE),
            max(SIDE_MULTIPLE, round(w * scale / SIDE_MULTIPLE) * SIDE_MULTIPLE))


def damage_probability(pixels: np.ndarray, detector, settings: MaskSettings = MaskSettings(),
                       cancel: CancelCheck | None = None) -> np.ndarray:
    """The detector's damage probability per photo pixel (float32 H×W in 0..1)."""
    import cv2
    import torch

    h, w = pixels.shape[:2]
    gray = cv2.cvtColor(np.ascontiguousarray(pixels[..., :3]), cv2.COLOR_RGB2GRAY)
    wh, ww = _working_size(h, w, settings.working_side)
    small = cv2.resize(gray, (ww, wh), interpolation=cv2.INTER_AREA if ww < w else cv2.INTER_CUBIC)
    check_cancelled(cancel, "finding damage")
    device = next(detector.parameters()).device
    x = (torch.from_numpy(small).float().to(device) / 255.0 - 0.5) / 0.5
    with torch.inference_mode():
        prob = torch.sigmoid(detector(x[None, None]))[0, 0].float().cpu().numpy()
    return cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)


def detect_damage(pixels: np.ndarray, detector, settings: MaskSettings = MaskSettings(),
                  cancel: CancelCheck | None = None) -> np.ndarray:
    """The damage mask of `pixels` (uint8 H×W, 255 = damaged)."""
    mask = damage_probability(pixels, detector, settings, cancel) >= settings.threshold
    return grow_mask(mask.astype(np.uint8) * 255, settings.grow)


def grow_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    import cv2

    if pixels <= 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask, kernel)


def read_mask(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """A mask file (any image; white or any bright value = damage) as uint8 H×W of `size` (h, w).
    UsageError naming the file when its size is not the photo's."""
    from engine.imageio import read_image

    path = Path(path)
    loaded = read_image(path)
    if loaded.pixels.shape[:2] != tuple(size):
        raise UsageError(f"the mask is {loaded.width}×{loaded.height} but the photo is {size[1]}×{size[0]}; "
                         "a damage mask must have the photo's size", path)
    gray = loaded.pixels[..., :3].max(axis=2)
    return np.where(gray >= 128, 255, 0).astype(np.uint8)


def mask_iou(predicted: np.ndarray, reference: np.ndarray) -> float:
    """Intersection over union of two masks (nonzero = damage); 1.0 when both are empty."""
    a, b = predicted > 0, reference > 0
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


#: the damage overlay's colour (RGB) and opacity over the photo (the GUI shows the mask this way)
DAMAGE_COLOUR, DAMAGE_OPACITY = (230, 40, 40), 0.6


def paint_damage(pixels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`pixels` (H×W×3 uint8) with the non-zero pixels of `mask` (H×W) tinted DAMAGE_COLOUR."""
    out = pixels.astype(np.float32)
    marked = mask > 0
    out[marked] = out[marked] * (1 - DAMAGE_OPACITY) + np.float32(DAMAGE_OPACITY) * np.asarray(DAMAGE_COLOUR,
                                                                                                np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
