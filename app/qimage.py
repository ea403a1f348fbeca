"""Conversions between the engine's numpy pictures (H×W×3 RGB uint8) and Qt images."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def to_qimage(pixels: np.ndarray) -> QImage:
    """A QImage that owns a copy of `pixels` (RGB or grayscale uint8). Safe to build in a worker."""
    array = np.ascontiguousarray(pixels)
    if array.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {array.dtype}")
    if array.ndim == 2:
        h, w = array.shape
        image = QImage(array.data, w, h, array.strides[0], QImage.Format.Format_Grayscale8)
    elif array.ndim == 3 and array.shape[2] == 3:
        h, w, _ = array.shape
        image = QImage(array.data, w, h, array.strides[0], QImage.Format.Format_RGB888)
    elif array.ndim == 3 and array.shape[2] == 4:
        h, w, _ = array.shape
        image = QImage(array.data, w, h, array.strides[0], QImage.Format.Format_RGBA8888)
    else:
        raise ValueError(f"expected H×W, H×W×3 or H×W×4 pixels, got shape {array.shape}")
    return image.copy()  # detach from the numpy buffer


def to_numpy(image: QImage) -> np.ndarray:
    """RGB uint8 pixels of a QImage (a copy)."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w = rgb.height(), rgb.width()
    buffer = np.frombuffer(rgb.constBits(), dtype=np.uint8, count=rgb.bytesPerLine() * h)
    return buffer.reshape(h, rgb.bytesPerLine())[:, : w * 3].reshape(h, w, 3).copy()


#: the longest side of a picture shown on screen (the full photo stays in the worker's data)
PREVIEW_SIZE = 2048


def preview_image(pixels: np.ndarray, max_side: int = PREVIEW_SIZE) -> tuple[QImage, float]:
    """(a QImage of at most `max_side` pixels a side, its pixels per photo pixel). Safe in a worker."""
    from PySide6.QtCore import Qt

    h, w = pixels.shape[:2]
    image = to_qimage(pixels)
    scale = 1.0
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        image = image.scaled(round(w * scale), round(h * scale), Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
    return image, scale
