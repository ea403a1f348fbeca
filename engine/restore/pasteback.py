"""Putting a restored face crop back into the photo without a seam.

What is pasted is the restored crop itself (not a residual on top of the original, which would carry
the original's blur and noise back into the face). Three things keep the border invisible:

1. A soft mask in crop space, a rounded square inset from the crop's edge with a smooth fall-off
   (`MaskShape`). Because the crop is a fixed multiple of the face size, the erosion and the feather
   are in proportion to the face in the photo, for a 20-pixel face as for a 2000-pixel one.
2. Tone matching at the seam: the crop and the photo under it are split into detail (high) and tone
   (low, Gaussian blur of `tone_sigma` x crop size). Detail switches over at the narrow mask; tone
   switches over a much wider band (`tone_feather`), so a difference in brightness or colour between
   the restored face and its surroundings fades in over a large part of the crop instead of making a
   step. In the middle of the face both masks are 1: there the result is the restored face exactly.
3. The blended crop goes back with the supersampled inverse warp of `engine.faces.align`, and only
   where the mask is non-zero; everything else in the photo stays byte-identical.

An optional face-parsing mask (crop space, 0..1, e.g. skin + hair from a parsing model) multiplies both
masks; no parsing model ships with the app, so `restore_photo` passes one only when a parser is given.

Overlapping faces are pasted one after another onto the same canvas; each blends against the canvas
as it is at that moment, so a later face never un-does an earlier one outside its own mask. Faces at
the image edge: only the part of the crop inside the photo is written. Grayscale photos: the restored
face is turned into its luma before pasting so the photo stays gray.

Memory: only the face's region of the photo is ever converted to float, and a large region (a face
bigger than the crop) is processed in bands of rows; no full-resolution float copy of the photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from engine.faces.align import FaceAlignment, Region, warp_from_crop, warp_to_crop

#: Pixels per band when a face's region is pasted in pieces (bounds the float working set to a few
#: arrays of this many pixels, about 6 MB each for RGB float32).
BAND_PIXELS = 500_000

#: ITU-R BT.601 luma, as Pillow's "L" conversion.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class MaskShape:
    """The soft paste mask, in fractions of the crop size (so in proportion to the face).

    `inset`: distance from the crop edge to where the mask reaches 0; `feather`: width of the ramp
    from 0 to 1 for the face detail; `tone_feather`: width of the (wider) ramp for the tone;
    `corner`: corner radius of the rounded square; `tone_sigma`: the blur that separates tone from
    detail.
    """

    inset: float = 0.02
    feather: float = 0.07
    tone_feather: float = 0.22
    corner: float = 0.18
    tone_sigma: float = 0.025


DEFAULT_MASK = MaskShape()


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def rounded_square_mask(size: int, inset: float, feather: float, corner: float) -> np.ndarray:
    """A (size, size) float32 mask: 0 outside a rounded square `inset` from the edges, rising
    smoothly to 1 over `feather` (all in pixels)."""
    centre = (size - 1) / 2.0
    coords = np.abs(np.arange(size, dtype=np.float32) - centre)
    half = centre - inset - corner
    qx = (coords - half)[None, :]
    qy = (coords - half)[:, None]
    outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
    inside = np.minimum(np.maximum(qx, qy), 0.0)
    signed_distance = outside + inside - corner  # < 0 inside the rounded square
    return _smoothstep(-signed_distance / max(feather, 1e-6)).astype(np.float32)


def crop_masks(size: int, shape: MaskShape = DEFAULT_MASK,
               parsing_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(detail mask, tone mask) for a crop of `size`, each (size, size) float32 in [0, 1]."""
    detail = rounded_square_mask(size, shape.inset * size, shape.feather * size, shape.corner * size)
    tone = rounded_square_mask(size, shape.inset * size, shape.tone_feather * size, shape.corner * size)
    if parsing_mask is not None:
        parsing = np.clip(np.asarray(parsing_mask, dtype=np.float32), 0.0, 1.0)
        if parsing.shape != (size, size):
            parsing = cv2.resize(parsing, (size, size), interpolation=cv2.INTER_LINEAR)
        detail = detail * parsing
        tone = tone * parsing
    return detail, np.minimum(tone, detail)


def to_luma(rgb: np.ndarray) -> np.ndarray:
    """(…, 3) RGB -> (…, 3) gray with the same value in each channel, float32."""
    gray = rgb.astype(np.float32) @ LUMA
    return np.repeat(gray[..., None], 3, axis=-1)


def _low_pass(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of `sigma` pixels, computed at a quarter of the resolution (the tone is smooth;
    4x cheaper per axis and the same to within a grey level)."""
    factor = 4 if sigma >= 8 else 1
    if factor == 1:
        return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    height, width = image.shape[:2]
    small = cv2.resize(image, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / factor, borderType=cv2.BORDER_REFLECT_101)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def blend_crop(restored: np.ndarray, under: np.ndarray, detail_mask: np.ndarray, tone_mask: np.ndarray,
               tone_sigma: float) -> np.ndarray:
    """Restored crop over the crop of the photo under it: detail by `detail_mask`, tone (Gaussian
    low-pass of `tone_sigma` pixels) by `tone_mask`. float32 in and out."""
    restored_low = _low_pass(restored, tone_sigma)
    under_low = _low_pass(under, tone_sigma)
    d = detail_mask[..., None] if restored.ndim == 3 else detail_mask
    t = tone_mask[..., None] if restored.ndim == 3 else tone_mask
    detail = d * (restored - restored_low) + (1.0 - d) * (under - under_low)
    tone = t * restored_low + (1.0 - t) * under_low
    return detail + tone


def paste_face(canvas: np.ndarray, restored: np.ndarray, alignment: FaceAlignment, *,
               shape: MaskShape = DEFAULT_MASK, parsing_mask: np.ndarray | None = None,
               grayscale: bool = False, under: np.ndarray | None = None) -> Region | None:
    """Paste `restored` (size x size x 3 uint8, aligned by `alignment`) into `canvas` in place.

    `canvas`: the photo, H x W x 3 uint8 (H x W gray works too). `under`: the crop of `canvas` as it
    is now (`warp_to_crop(canvas, alignment)`), when the caller has it: it is not warped again.
    Returns the photo region that was written, or None when the crop lies wholly outside the photo.
    """
    size = alignment.size
    if restored.shape[:2] != (size, size):
        raise ValueError(f"restored crop is {restored.shape[:2]}, expected {(size, size)}")
    region = alignment.region(canvas.shape)
    if region is None:
        return None
    gray_canvas = canvas.ndim == 2 or canvas.shape[2] == 1
    face = restored[..., :3].astype(np.float32)
    if grayscale or gray_canvas:
        face = to_luma(face)
    under = (warp_to_crop(canvas, alignment) if under is None else under).astype(np.float32)
    if gray_canvas:  # gray in, gray out: work in RGB on the crop only, never on a copy of the photo
        under = _as_rgb(under)
    detail_mask, tone_mask = crop_masks(size, shape, parsing_mask)
    blended = blend_crop(face, under, detail_mask, tone_mask, shape.tone_sigma * size)
    np.clip(blended, 0.0, 255.0, out=blended)
    if gray_canvas:
        blended = blended[..., 0]
    _paste_region(canvas, blended, detail_mask, alignment, region)
    return region


def _as_rgb(gray: np.ndarray) -> np.ndarray:
    plane = gray if gray.ndim == 2 else gray[..., 0]
    return np.repeat(plane[..., None], 3, axis=-1)


def _paste_region(canvas: np.ndarray, blended: np.ndarray, mask: np.ndarray, alignment: FaceAlignment,
                  region: Region) -> None:
    """Write `blended` (crop space, float) into `canvas` over `region` through the soft `mask`."""
    x0, y0, x1, y1 = region
    # A supersampled warp low-passes across band borders: give each band a few rows of context.
    context = 4 if alignment.scale > 1 else 0
    band_rows = max(16, BAND_PIXELS // max(x1 - x0, 1))
    for top in range(y0, y1, band_rows):
        bottom = min(top + band_rows, y1)
        lo, hi = max(top - context, y0), min(bottom + context, y1)
        band = (x0, lo, x1, hi)
        alpha = warp_from_crop(mask, alignment, band, interpolation=cv2.INTER_LINEAR)
        alpha = np.clip(alpha, 0.0, 1.0)[top - lo:bottom - lo]
        if not np.any(alpha > 0):
            continue
        values = warp_from_crop(blended, alignment, band)[top - lo:bottom - lo]
        target = canvas[top:bottom, x0:x1]
        original = target.astype(np.float32)
        if values.ndim == 3 and original.ndim == 2:
            values = values[..., 0]
        if original.ndim == 3:
            if values.ndim == 2:
                values = values[..., None]
            alpha = alpha[..., None]
            if original.shape[2] == 1:
                values = values[..., :1]
        values -= original
        values *= alpha
        values += original
        target[...] = np.clip(np.rint(values, out=values), 0, 255).astype(canvas.dtype)


def warp_reads(alignment: FaceAlignment, image_shape: tuple[int, ...], margin: int = 4) -> Region:
    """The photo pixels `warp_to_crop` may read for this crop: its footprint with the interpolation's
    reach, and, where the crop runs past an edge, the mirror image of that part (BORDER_REFLECT_101)."""
    height, width = image_shape[:2]
    corners = alignment.crop_corners_in_photo()

    def axis(low: float, high: float, size: int) -> tuple[int, int]:
        lo, hi = int(math.floor(low)) - margin, int(math.ceil(high)) + margin
        if lo < 0:
            hi = max(hi, -lo)
        if hi > size - 1:
            lo = min(lo, 2 * (size - 1) - hi)
        return max(lo, 0), min(hi + 1, size)

    x0, x1 = axis(corners[:, 0].min(), corners[:, 0].max(), width)
    y0, y1 = axis(corners[:, 1].min(), corners[:, 1].max(), height)
    return x0, y0, x1, y1


def _meet(a: Region, b: Region) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def paste_faces(image: np.ndarray, faces: list[tuple[np.ndarray, FaceAlignment]], *,
                shape: MaskShape = DEFAULT_MASK, grayscale: bool = False,
                parsing_masks: list[np.ndarray | None] | None = None,
                unrestored: list[np.ndarray | None] | None = None) -> np.ndarray:
    """A copy of `image` with every (restored crop, alignment) pasted, smallest face first so that a
    larger (usually nearer) face wins where two overlap.

    `unrestored`: each face's crop of `image` (`warp_to_crop(image, alignment)`, as the restoration cut
    it). A face whose pixels no earlier paste has touched blends against that crop instead of warping
    the photo again (the same pixels: a warp reads only `warp_reads`); one that overlaps an earlier
    face is warped from the canvas as it is then."""
    canvas = image.copy()
    order = sorted(range(len(faces)), key=lambda i: faces[i][1].scale, reverse=True)
    reusable = canvas.ndim == 3 and canvas.shape[2] == 3 and canvas.dtype == np.uint8
    written: list[Region] = []
    for i in order:
        restored, alignment = faces[i]
        parsing = parsing_masks[i] if parsing_masks is not None else None
        under = unrestored[i] if unrestored is not None and reusable else None
        if under is not None and (under.shape != (alignment.size, alignment.size, 3) or
                                  any(_meet(warp_reads(alignment, canvas.shape), w) for w in written)):
            under = None
        region = paste_face(canvas, restored, alignment, shape=shape, parsing_mask=parsing, grayscale=grayscale,
                            under=under)
        if region is not None:
            written.append(region)
    return canvas
