"""Analysing one photo for the album scan, in whichever process runs it: decode (at reduced size where
the detector can't use more), find, embed and grade its faces, make its thumbnail.

The scan (engine.catalog.scanner) runs this in worker processes forked from a forkserver, and this
module is what that server imports: it must stay light (no database, no clustering, no torch) so that
the server is ready soon. The scan's pool starts it on its first photo; `faceme scan` starts it
earlier with `start_worker_server`, without waiting, so that its start-up — Python, these imports,
dlib's models (≈ 1 s) — overlaps the command's own (imports, opening the catalog). The scanner alone
writes to the catalog; nothing here touches it.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from engine.errors import FaceMeError
from engine.faces.types import PAIR_IOU, box_iou
from engine.faces.types import Face as DetectedFace

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 256
#: a face narrower than this in reduced-size pixels is graded and embedded from a decode where it is
#: this wide (the sharpness measure looks at 128 px, engine.people.quality.SHARPNESS_SIDE; dlib's
#: 150 px chip holds the face at about 100 px)
DETAIL_MIN_FACE_PX = 128
#: what the scan's forkserver imports before it forks a worker: this module, and either dlib's models
#: (loaded) or InsightFace's and onnxruntime's modules (0.5 s of imports; its sessions are made in each
#: worker: onnxruntime's thread pools don't survive a fork)
WORKER_PRELOAD = ["engine.faces.photo_analysis"]
DLIB_PRELOAD = ["engine.faces.dlib_preload"]
INSIGHTFACE_PRELOAD = ["onnxruntime", "insightface.model_zoo"]


class FaceAnalyzer(Protocol):
    """What the scan needs of a face analyser: `detect` (with `embed=False` it leaves the embeddings to
    `embed`) and `embed`. Optional: `decode_pixels` (the most pixels its detector can use — a two-pass
    detector's first pass — so a JPEG may be decoded smaller); `looks_closer = True` when `detect` takes
    `larger=callable(min_pixels) -> pixels`, a way to get the same photo at a higher resolution for a
    second detection pass, so that a photo is decoded large only when that is needed (DlibFaceAnalyzer)."""

    embedding_model: str

    def detect(self, image_rgb: np.ndarray, embed: bool = True) -> list[DetectedFace]: ...

    def embed(self, image_rgb: np.ndarray, face: DetectedFace) -> np.ndarray: ...


@dataclass
class PhotoAnalysis:
    """What analysing one photo gives (made in a worker process, stored by the writer)."""

    info: object
    faces: list[tuple[DetectedFace, object]]
    thumbnail: np.ndarray | None
    width: int
    height: int
    orientation: int
    camera: str | None
    #: when the photo was taken, by the EXIF and names (engine.photo_dates.PhotoDate; None: unknown)
    date: object = None
    #: per face (as `faces`), the age it looks by the analyser's age estimator (`age_model`), else None
    ages: list[float | None] = field(default_factory=list)
    age_model: str | None = None


def decode_pixels_for(analyzer: FaceAnalyzer) -> int | None:
    """How many pixels of a photo to decode for the analyser (None: all). Its own `decode_pixels` when it
    says; for a detector with a square input (SCRFD's `det_size`), twice its side on each axis, so that
    faces it finds have twice the detector's resolution for landmarks and embedding."""
    wanted = getattr(analyzer, "decode_pixels", None)
    if wanted:
        return int(wanted)
    det_size = getattr(analyzer, "det_size", None)
    return 4 * int(det_size) ** 2 if det_size else None


class _PhotoPixels:
    """One photo's pixels at the resolutions asked for, each decoded at most once: the first at reduced
    size, larger ones (a second detection pass, the embedding of a small face) only when asked for."""

    def __init__(self, path: str, image) -> None:
        self.path = path
        self.first = image
        self._largest = image

    def at_least(self, min_pixels: int):
        """(pixels, scale back to the full photo) with at least `min_pixels` pixels where the photo has
        that many (never less than the first decode)."""
        from engine.imageio import read_image_reduced

        have = self._largest.pixels.shape[0] * self._largest.pixels.shape[1]
        if have < min_pixels and self._largest.scale > 1.0:
            self._largest = read_image_reduced(self.path, int(min_pixels))
        return self._largest.pixels, self._largest.scale

    def for_face(self, photo_box: Sequence[float]):
        """(pixels, scale) in which the face `photo_box` (full-photo coordinates) is at least
        DETAIL_MIN_FACE_PX wide and high, or as large as the photo has it."""
        side = max(1.0, min(photo_box[2] - photo_box[0], photo_box[3] - photo_box[1]))
        full = self.first.full_width * self.first.full_height
        return self.at_least(min(full, math.ceil(full * (DETAIL_MIN_FACE_PX / side) ** 2)))


def analyse_photo(path: str, analyzer: FaceAnalyzer, thumbnails: bool = True,
                  keep: Sequence[tuple[tuple[float, ...], list]] = ()) -> PhotoAnalysis:
    """Decode `path` (at reduced size where the analyser allows), find and embed its faces (boxes and
    landmarks in full-size photo coordinates), grade them and make the thumbnail.

    A face smaller than DETAIL_MIN_FACE_PX in the reduced pixels is graded and embedded from a decode
    large enough for it (the full photo at most).

    `keep`: (box, 5 landmarks) of faces another model found that the user has decided about; each that
    no detected face overlaps (IoU ≥ PAIR_IOU) is embedded where it is, score 0, so that a re-analysis
    keeps it."""
    from engine.photo_dates import date_of_file
    from engine.imageio import make_thumbnail, read_image, read_image_reduced, read_photo_info
    from engine.people.quality import face_quality

    info = read_photo_info(path)
    decode_pixels = decode_pixels_for(analyzer)
    if decode_pixels:
        image = read_image_reduced(path, decode_pixels)
        scale, width, height = image.scale, image.full_width, image.full_height
    else:
        image = read_image(path)
        scale, width, height = 1.0, image.width, image.height
    pixels = image.pixels
    source = _PhotoPixels(path, image) if scale > 1.0 else None
    if source is None:
        found = analyzer.detect(pixels)
    else:  # embedded below, each face once, small ones from a larger decode
        closer = {"larger": lambda n: source.at_least(n)[0]} if getattr(analyzer, "looks_closer", False) else {}
        found = analyzer.detect(pixels, embed=False, **closer)
    analysed = []
    for face in found:
        photo_face = replace(face.scaled(scale), embedding_model=analyzer.embedding_model)
        if source is not None and min(face.width, face.height) < DETAIL_MIN_FACE_PX:
            # too few reduced pixels to grade and embed it faithfully: a larger decode, once, for such faces
            larger, larger_scale = source.for_face(photo_face.box)
            there = photo_face.scaled(1.0 / larger_scale)
            quality = face_quality(larger, there.box, there.landmarks, scale=larger_scale)
            photo_face = replace(photo_face, embedding=analyzer.embed(larger, there))
        else:
            quality = face_quality(pixels, face.box, face.landmarks, scale=scale)
            if face.embedding is None:
                photo_face = replace(photo_face, embedding=analyzer.embed(pixels, face))
        analysed.append((photo_face, quality))
    for box, landmarks in keep:
        if any(box_iou(face.box, tuple(box)) >= PAIR_IOU for face, _ in analysed):
            continue
        photo_face = DetectedFace(box=tuple(float(v) for v in box), score=0.0,
                                  landmarks=np.asarray(landmarks, np.float32), embedding_model=analyzer.embedding_model)
        target, target_scale = source.for_face(photo_face.box) if source is not None else (pixels, 1.0)
        there = photo_face.scaled(1.0 / target_scale)
        analysed.append((replace(photo_face, embedding=analyzer.embed(target, there)),
                         face_quality(target, there.box, there.landmarks, scale=target_scale)))
    thumbnail = make_thumbnail(image, THUMBNAIL_SIZE) if thumbnails else None
    camera = " ".join(v for v in (info.camera_make, info.camera_model) if v) or None
    age_model = getattr(analyzer, "age_model", None)
    ages = [analyzer.apparent_age(pixels, face.scaled(1.0 / scale)) if age_model else None for face, _ in analysed]
    return PhotoAnalysis(info=info, faces=analysed, thumbnail=thumbnail, width=width, height=height,
                         orientation=image.orientation, camera=camera, date=date_of_file(path), ages=ages,
                         age_model=age_model)


def uses_dlib(analyzer: FaceAnalyzer) -> bool:
    from engine.faces.dlib_backend import DlibFaceAnalyzer

    return type(analyzer) is DlibFaceAnalyzer


def worker_recipe(analyzer: FaceAnalyzer):
    """A picklable callable that builds an equivalent analyser in a worker process, or None when the
    analyser can't be rebuilt there (it then runs in the scanning process)."""
    import pickle

    from engine.faces.dlib_backend import DlibFaceAnalyzer

    if type(analyzer) is DlibFaceAnalyzer:
        blob = pickle.dumps(analyzer)
        return functools.partial(pickle.loads, blob)
    try:
        from engine.faces.insightface_backend import InsightFaceAnalyzer
    except ImportError:  # insightface not installed
        return None
    if type(analyzer) is InsightFaceAnalyzer:
        if any("CUDA" in str(p) or "Tensorrt" in str(p) for p in analyzer.providers):
            return None  # one GPU session beats several processes sharing one GPU
        return functools.partial(InsightFaceAnalyzer, analyzer.pack_dir, providers=list(analyzer.providers),
                                 det_size=analyzer.det_size, det_thresh=analyzer.det_thresh, threads=1)
    return None


def default_workers() -> int:
    """Scan workers when none are asked for: one per core."""
    return max(1, os.cpu_count() or 1)


def worker_context(dlib: bool = True):
    """The multiprocessing context scan workers start from: a forkserver that has imported this module
    (and, with `dlib`, loaded dlib's models, else imported InsightFace) where the platform has one
    (never plain fork: the scanning process may run threads — the app, SQLAlchemy's pool), else spawn.
    The preload is fixed when the server starts: the first multi-process scan of a process decides it."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # taken into account only by a forkserver not yet running in this process
    context.set_forkserver_preload(WORKER_PRELOAD + (DLIB_PRELOAD if dlib else INSIGHTFACE_PRELOAD))
    return context


def start_worker_server(dlib: bool = True) -> None:
    """Start the forkserver scan workers fork from, without waiting for its imports and models: a
    caller that knows a multi-process scan is coming calls this before its own start-up work."""
    from multiprocessing import forkserver

    if worker_context(dlib).get_start_method() == "forkserver":
        forkserver.ensure_running()


_analyzer_here: FaceAnalyzer | None = None
_thumbnails_here = True


def _exit_with(parent_pid: int) -> None:
    """A worker's watchdog: a scan killed with kill -9 can't shut its pool down, and the workers'
    queue never reports it (they hold both of its ends), so each worker ends itself when the scan is gone."""
    import threading

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:  # the pid was reused by another user's process: ours is gone
                os._exit(0)

    if os.name == "posix":
        threading.Thread(target=watch, name="scan-parent-watch", daemon=True).start()


def worker_start(recipe, thumbnails: bool, parent_pid: int) -> None:
    """A worker process's initializer: build the analyser from `recipe`, end with the scan `parent_pid`."""
    global _analyzer_here, _thumbnails_here
    import cv2

    _exit_with(parent_pid)
    import signal

    # Ctrl-C reaches the whole process group: the scanning process stops the pool, the workers
    # just end with it (no traceback per worker)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    cv2.setNumThreads(1)  # one photo per process: the processes are the parallelism
    _analyzer_here = recipe()
    _thumbnails_here = thumbnails
    load = getattr(_analyzer_here, "_load", None)
    if load is not None:
        load()  # models load while the writer hashes the first photos


def worker_analyse(path: str, keep=()) -> PhotoAnalysis | str:
    """In a worker: the analysis, or the message of an unreadable file."""
    try:
        return analyse_photo(path, _analyzer_here, _thumbnails_here, keep)
    except FaceMeError as exc:
        return exc.message
