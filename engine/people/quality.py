"""How good a face is as a reference: size, sharpness, frontalness — measured once, at scan time.

Every measure is in 0..1 so the reasons shown to the user read the same for every photo:
- size: the face's larger side; 256 px and above counts as full marks (FaceMe works on 512 px crops
  of the whole head, where a 256 px face box fills about half the crop).
- sharpness: variance of the Laplacian of the face, resampled to a fixed 128 px so faces of every
  size are judged alike, mapped through v / (v + 100) (about 0.5 for a slightly soft face).
- frontalness: from the 5 landmarks. Yaw is the nose's offset from the eyes' midpoint in units of the
  eye distance (0 frontal, about ±0.5 near profile); roll is the eye line's tilt. Occlusion is not
  measured (no model for it here); a strongly occluded face usually also loses detector score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FULL_SIZE_PX = 256.0
SHARPNESS_HALF = 100.0
#: the side (pixels) sharpness is measured at: a face smaller than this in the pixels given is enlarged,
#: which blurs it, so callers with a larger decode at hand grade small faces there
SHARPNESS_SIDE = 128


@dataclass(frozen=True)
class FaceQuality:
    size: float         # 0..1
    sharpness: float    # 0..1
    frontalness: float  # 0..1
    yaw: float          # signed, about -0.5 .. 0.5
    score: float        # 0..1, the combined quality

    @property
    def reasons(self) -> list[str]:
        parts = []
        parts.append("large face" if self.size >= 0.9 else "medium face" if self.size >= 0.5 else "small face")
        parts.append("sharp" if self.sharpness >= 0.6 else "slightly soft" if self.sharpness >= 0.35 else "blurry")
        # directions as seen in the photo; about 0.3 is a three-quarter view, 0.5 and more near profile
        side = "left" if self.yaw < 0 else "right"
        parts.append("frontal" if abs(self.yaw) < 0.08 else
                     f"turned {side}" if abs(self.yaw) < 0.3 else f"strongly turned {side}")
        return parts


def pose(landmarks: np.ndarray) -> tuple[float, float]:
    """(yaw, roll in radians) from 5 landmarks."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    left_eye, right_eye, nose = pts[0], pts[1], pts[2]
    eye_vec = right_eye - left_eye
    eye_dist = float(np.hypot(*eye_vec))
    if eye_dist < 1e-6:
        return 0.0, 0.0
    roll = float(np.arctan2(eye_vec[1], eye_vec[0]))
    # the nose's offset along the eye line, from the eyes' midpoint
    along = float(np.dot(nose - (left_eye + right_eye) / 2, eye_vec / eye_dist))
    return along / eye_dist, roll


def sharpness_of(image_rgb: np.ndarray, box: tuple[float, float, float, float]) -> float:
    import cv2

    h, w = image_rgb.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return 0.0
    crop = image_rgb[y1:y2, x1:x2]
    gray = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY) if crop.ndim == 3 else crop
    gray = cv2.resize(gray, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    variance = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    return variance / (variance + SHARPNESS_HALF)


def face_quality(image_rgb: np.ndarray, box: tuple[float, float, float, float],
                 landmarks: np.ndarray, scale: float = 1.0) -> FaceQuality:
    """`box` and `landmarks` in `image_rgb`'s pixels; `scale` is the factor from those pixels to the
    photo's full size (a photo decoded at reduced size), by which the face's size is judged."""
    size = min(max(box[2] - box[0], box[3] - box[1]) * scale / FULL_SIZE_PX, 1.0)
    sharp = sharpness_of(image_rgb, box)
    yaw, roll = pose(landmarks)
    frontal = float(np.clip(1.0 - 2.0 * abs(yaw), 0.0, 1.0) * np.clip(1.0 - abs(roll) / 0.8, 0.0, 1.0))
    # geometric mean: a face must be decent on every count to rank high
    score = float((max(size, 1e-3) * max(sharp, 1e-3) * max(frontal, 1e-3)) ** (1 / 3))
    return FaceQuality(size=float(size), sharpness=float(sharp), frontalness=frontal, yaw=float(yaw), score=score)
