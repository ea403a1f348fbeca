"""Thumbnails for the virtualised grids, read on a background thread, newest request first.

Views ask for thumbnails only for the rows they paint, so with 10,000 photos only the visible ones are
decoded; scrolling away makes older requests wait behind the new ones (last in, first out) and the
oldest are dropped when too many are pending.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QImage

from app.qimage import to_qimage

log = logging.getLogger(__name__)

#: load(path, size) -> RGB uint8 pixels no larger than size×size
ThumbnailReader = Callable[[Path, int], np.ndarray]

_MAX_PENDING = 400


def engine_thumbnail(path: Path, size: int) -> np.ndarray:
    from engine.imageio import make_thumbnail

    return make_thumbnail(path, size)


class _Loop(QObject):
    loaded = Signal(object, QImage)  # key, image
    failed = Signal(object, str)
    dropped = Signal(object)  # pushed out of the queue by newer requests: ask again when visible again

    def __init__(self, reader: ThumbnailReader):
        super().__init__()
        self._reader = reader
        self._pending: OrderedDict[object, tuple[Path, int, tuple | None]] = OrderedDict()
        self._wake = threading.Condition()
        self._stop = False

    def request(self, key, path: Path, size: int, crop: tuple | None = None) -> None:
        with self._wake:
            self._pending.pop(key, None)
            self._pending[key] = (Path(path), size, crop)
            while len(self._pending) > _MAX_PENDING:
                old_key, _ = self._pending.popitem(last=False)
                self.dropped.emit(old_key)
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stop = True
            self._pending.clear()
            self._wake.notify()

    @Slot()
    def run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stop:
                    self._wake.wait()
                if self._stop:
                    return
                key, (path, size, crop) = self._pending.popitem(last=True)
            try:
                pixels = self._reader(path, size) if crop is None else _face_crop(path, crop)
                image = to_qimage(pixels)
                if max(image.width(), image.height()) > size:
                    image = image.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                         Qt.TransformationMode.SmoothTransformation)
                self.loaded.emit(key, image)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
                log.warning("thumbnail of %s failed: %s", path, exc)
                self.failed.emit(key, str(exc))


_recent: OrderedDict[Path, np.ndarray] = OrderedDict()


def _pixels(path: Path) -> np.ndarray:
    """The photo's pixels, keeping the last few: a group photo's faces are cropped one after another."""
    from engine.imageio import read_image

    pixels = _recent.pop(path, None)
    if pixels is None:
        pixels = read_image(path).pixels
    _recent[path] = pixels
    while len(_recent) > 3:
        _recent.popitem(last=False)
    return pixels


def _face_crop(path: Path, box: tuple) -> np.ndarray:
    """A square crop around a face box (x1, y1, x2, y2 in full-image pixels)."""
    pixels = _pixels(path)
    h, w = pixels.shape[:2]
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half = max(x2 - x1, y2 - y1) * 0.8
    left, top = int(max(0, cx - half)), int(max(0, cy - half))
    right, bottom = int(min(w, cx + half)), int(min(h, cy + half))
    return np.ascontiguousarray(pixels[top:bottom, left:right])


class ThumbnailLoader(QObject):
    """One background thread that turns (path, size) requests into QImages."""

    loaded = Signal(object, QImage)
    failed = Signal(object, str)
    dropped = Signal(object)

    def __init__(self, reader: ThumbnailReader = engine_thumbnail, parent: QObject | None = None):
        super().__init__(parent)
        self._loop = _Loop(reader)
        self._thread = QThread()
        self._thread.setObjectName("thumbnails")
        self._loop.moveToThread(self._thread)
        self._thread.started.connect(self._loop.run)
        self._loop.loaded.connect(self._relay_loaded)
        self._loop.failed.connect(self._relay_failed)
        self._loop.dropped.connect(self.dropped)
        self._thread.start()

    def request(self, key, path: Path, size: int, crop: tuple | None = None) -> None:
        self._loop.request(key, path, size, crop)

    @Slot(object, QImage)
    def _relay_loaded(self, key, image: QImage) -> None:
        self.loaded.emit(key, image)

    @Slot(object, str)
    def _relay_failed(self, key, reason: str) -> None:
        self.failed.emit(key, reason)

    def shutdown(self) -> None:
        self._loop.stop()
        self._thread.quit()
        self._thread.wait(5000)
