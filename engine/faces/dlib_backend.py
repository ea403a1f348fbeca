"""The embedded default face analyser: dlib's HOG detector, landmarks and 128-d ResNet embeddings.

It needs no download: the detector is built into the `dlib-bin` wheel and the landmark and
embedding models are the `.dat` files of the `face-recognition-models` wheel. That package is
located with `importlib.util.find_spec` and never imported (its `__init__` imports `pkg_resources`,
which recent setuptools no longer ship).

Landmarks follow the engine's 5-point convention (image-left eye centre, image-right eye centre,
nose tip, image-left mouth corner, image-right mouth corner). dlib's 5-point model has no mouth
points, so landmarks come from the 68-point model of the same package: eye centres are the means
of the six points around each eye (36–41, 42–47), the nose tip is point 30, the mouth corners are
points 48 and 54. The embedding uses the 5-point model's alignment, which is what dlib's ResNet was
trained with. Embeddings are L2-normalised (dlib's raw descriptors are not: their norms vary) and
named "dlib/resnet-128"; embeddings of different models are never compared.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.errors import ModelPackError
from engine.faces.types import Face

log = logging.getLogger(__name__)

EMBEDDING_MODEL = "dlib/resnet-128"
EMBEDDING_DIM = 128

_SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
_SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
_RESNET = "dlib_face_recognition_resnet_model_v1.dat"


def find_dlib_models_dir() -> Path:
    """The folder holding face-recognition-models' `.dat` files, found without importing it."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelPackError("the embedded face models are not installed", part="dlib",
                             hint="pip install face-recognition-models")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    for name in (_SHAPE_5, _SHAPE_68, _RESNET):
        if not (folder / name).is_file():
            raise ModelPackError(f"{name} is missing from the embedded face models", folder / name,
                                 part="dlib", hint="reinstall face-recognition-models")
    return folder


def _landmarks_from_68(points: np.ndarray) -> np.ndarray:
    """Our 5 points from dlib's 68 (iBUG 300-W order)."""
    return np.stack([
        points[36:42].mean(axis=0),  # eye on the image's left (the subject's right eye)
        points[42:48].mean(axis=0),
        points[30],                  # nose tip
        points[48],                  # mouth corner on the image's left
        points[54],
    ]).astype(np.float32)


def frontal_face_detector(cache_dir: Path | None = None):
    """dlib's HOG face detector. dlib builds it from a compressed string compiled into the library
    (0.4 s, most of a scan worker's start); its serialised form loads in 2 ms, so it is kept in the
    cache folder, per dlib version, and rebuilt whenever that file is missing or doesn't load."""
    import dlib

    from engine.settings import default_cache_dir

    path = (cache_dir or default_cache_dir()) / f"dlib-{dlib.__version__}-frontal_face_detector.svm"
    if path.is_file():
        try:
            return dlib.fhog_object_detector(str(path))
        except RuntimeError as exc:  # unreadable or damaged: built again below
            log.info("rebuilding the cached face detector %s: %s", path, exc)
    detector = dlib.get_frontal_face_detector()
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        detector.save(str(partial))  # dlib says RuntimeError when it can't write
        os.replace(partial, path)  # whole or not at all, whoever writes it at the same time
    except (OSError, RuntimeError) as exc:
        log.debug("face detector not cached at %s: %s", path, exc)
        with contextlib.suppress(OSError):
            partial.unlink()
    return detector


def _before_upsampling(scanned_pixels: int, upsample: int) -> int:
    """Pixels of an image that HOG, doubling it `upsample` times, scans as `scanned_pixels`."""
    return max(1, scanned_pixels // 4 ** upsample)


def _within(face: Face, width: int, height: int) -> Face:
    x1, y1, x2, y2 = face.box
    return replace(face, box=(min(max(x1, 0.0), width), min(max(y1, 0.0), height),
                              min(max(x2, 0.0), width), min(max(y2, 0.0), height)))


_loaded: dict[Path, tuple] = {}
_loaded_lock = threading.Lock()


def load_models(folder: Path) -> tuple:
    """(HOG detector, 5-point and 68-point shape predictors, ResNet) from `folder`, loaded once per
    process: analysers share them, and scan workers forked from a process that loaded them
    (engine.faces.dlib_preload) start with them in memory, shared copy-on-write."""
    import dlib

    folder = Path(folder)
    with _loaded_lock:
        if folder not in _loaded:
            log.info("loading dlib face models from %s", folder)
            _loaded[folder] = (frontal_face_detector(), dlib.shape_predictor(str(folder / _SHAPE_5)),
                               dlib.shape_predictor(str(folder / _SHAPE_68)),
                               dlib.face_recognition_model_v1(str(folder / _RESNET)))
        return _loaded[folder]


class DlibFaceAnalyzer:
    """Detect faces, find their landmarks and embed them with dlib. Models load on first use.

    `upsample` is how many times the HOG detector doubles the image before looking (1 finds faces
    down to about 40 px). Detection runs in up to two passes: first on the photo reduced so that the
    image HOG scans (after upsampling) has at most `first_pass_pixels`; then, only when that pass
    found no face or a face near its smallest detectable size (the photo may hold smaller ones), again
    at `max_detect_pixels` — the one-pass budget of earlier versions, whose results it then gives.
    Portraits and most family photos stop after the cheap pass (bench/detection.py measures what the
    second pass adds). `first_pass_pixels=None` runs the `max_detect_pixels` pass only. Small faces in
    huge photos are the price of the cap; they are the faces too small to restore anyway. `min_score`
    is the HOG SVM margin below which detections are dropped (dlib's own default is 0).

    `decode_pixels` tells a caller how large an image the first pass can use, so that a JPEG can be
    decoded at reduced size (engine.imageio.read_image_reduced); such a caller passes `detect` a way to
    get a larger decode (`larger`), which only photos that need the second pass ask for. Without it the
    second pass scans what it is given.
    """

    embedding_model = EMBEDDING_MODEL
    #: `detect` takes `larger` (see engine.faces.photo_analysis.FaceAnalyzer)
    looks_closer = True
    #: HOG's scanning window: the smallest face it finds in the image it scans
    HOG_WINDOW = 80

    def __init__(self, upsample: int = 1, max_detect_pixels: int = 4_000_000, min_score: float = 0.0,
                 models_dir: Path | None = None, first_pass_pixels: int | None = 1_000_000):
        self.upsample = upsample
        self.max_detect_pixels = max_detect_pixels
        self.first_pass_pixels = first_pass_pixels
        self.min_score = min_score
        self._models_dir = models_dir
        self._lock = threading.Lock()
        self._detector = None
        self._shape5 = None
        self._shape68 = None
        self._resnet = None

    @property
    def decode_pixels(self) -> int:
        """Pixels of the largest image the first detection pass scans before upsampling: a caller may
        decode a photo this small (engine.imageio.read_image_reduced) if it hands `detect` a way to get
        more (`larger`) for the second pass."""
        return _before_upsampling(self.first_pass_pixels if self._two_passes else self.max_detect_pixels,
                                  self.upsample)

    @property
    def second_pass_pixels(self) -> int:
        """Pixels of the largest image the second pass scans before upsampling."""
        return _before_upsampling(self.max_detect_pixels, self.upsample)

    @property
    def _two_passes(self) -> bool:
        return self.first_pass_pixels is not None and self.first_pass_pixels < self.max_detect_pixels

    def __getstate__(self) -> dict:
        # the settings travel to worker processes; the loaded models are re-loaded there
        state = dict(self.__dict__)
        state.update(_lock=None, _detector=None, _shape5=None, _shape68=None, _resnet=None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _load(self) -> None:
        if self._resnet is not None:
            return
        with self._lock:
            if self._resnet is not None:
                return
            self._detector, self._shape5, self._shape68, self._resnet = load_models(
                self._models_dir or find_dlib_models_dir())

    @staticmethod
    def _as_rgb8(image_rgb: np.ndarray) -> np.ndarray:
        image = np.asarray(image_rgb)
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
        if image.shape[2] == 4:
            image = image[:, :, :3]
        if image.dtype != np.uint8:
            raise ValueError(f"expected uint8 pixels, got {image.dtype}")
        return np.ascontiguousarray(image)

    def detect(self, image_rgb: np.ndarray, upsample: int | None = None, embed: bool = True,
               larger: Callable[[int], np.ndarray] | None = None) -> list[Face]:
        """All faces (box, HOG score, 5 landmarks and, unless `embed` is False, the L2-normalised
        embedding), largest first, in `image_rgb`'s pixels.

        `larger(min_pixels)`: the same photo with at least `min_pixels` pixels (or all it has), asked
        for only when the second pass runs and `image_rgb` is smaller than that pass can use; the pass
        then runs on it (the boxes and landmarks come back in `image_rgb`'s pixels)."""
        faces = self._find(image_rgb, upsample, larger)
        if not embed:
            return faces
        embeddings = self.embed_many(image_rgb, faces)
        return [replace(f, embedding=e, embedding_model=EMBEDDING_MODEL) for f, e in zip(faces, embeddings)]

    def _find(self, image_rgb: np.ndarray, upsample: int | None,
              larger: Callable[[int], np.ndarray] | None = None) -> list[Face]:
        self._load()
        image = self._as_rgb8(image_rgb)
        upsample = self.upsample if upsample is None else upsample
        scanned_whole = False  # the first pass scanned the image at its own size: a second would repeat it
        if self._two_passes:
            faces, smallest_seen = self._find_at(image, upsample, self.first_pass_pixels)
            if faces and all(min(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= 2 * smallest_seen for f in faces):
                return faces
            scanned_whole = image.shape[0] * image.shape[1] * 4 ** upsample <= self.first_pass_pixels
        wanted = _before_upsampling(self.max_detect_pixels, upsample)
        if larger is not None and image.shape[0] * image.shape[1] < wanted:
            bigger = self._as_rgb8(larger(wanted))
            factor = image.shape[1] / bigger.shape[1]
            if factor < 1.0:
                h, w = image.shape[:2]
                return [_within(face.scaled(factor), w, h)
                        for face in self._find_at(bigger, upsample, self.max_detect_pixels)[0]]
        if scanned_whole:
            return faces
        return self._find_at(image, upsample, self.max_detect_pixels)[0]

    def _find_at(self, image: np.ndarray, upsample: int, budget: int) -> tuple[list[Face], float]:
        """Faces found scanning at most `budget` pixels (after upsampling), largest first, and the
        smallest face size (in `image` pixels) this pass can find."""
        import dlib

        h, w = image.shape[:2]
        scale = 1.0
        scanned_pixels = h * w * 4 ** upsample
        if scanned_pixels > budget:
            scale = (budget / scanned_pixels) ** 0.5
        if scale < 1.0:
            import cv2

            small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        else:
            small = image
        rects, scores, _ = self._detector.run(small, upsample, 0.0)
        faces = []
        for rect, score in zip(rects, scores):
            if score < self.min_score:
                continue
            box = (rect.left() / scale, rect.top() / scale, (rect.right() + 1) / scale,
                   (rect.bottom() + 1) / scale)
            full_rect = dlib.rectangle(int(round(box[0])), int(round(box[1])),
                                       int(round(box[2])) - 1, int(round(box[3])) - 1)
            shape = self._shape68(image, full_rect)
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
            x1, y1, x2, y2 = (float(np.clip(box[0], 0, w)), float(np.clip(box[1], 0, h)),
                              float(np.clip(box[2], 0, w)), float(np.clip(box[3], 0, h)))
            faces.append(Face(box=(x1, y1, x2, y2), score=float(score),
                              landmarks=_landmarks_from_68(points)))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces, self.HOG_WINDOW / 2 ** upsample / scale

    def embed(self, image_rgb: np.ndarray, face: Face) -> np.ndarray:
        """The L2-normalised 128-d embedding of `face` (float32).

        The 5-point shape is re-fitted inside the face's box, so faces found by another detector can
        be embedded too.
        """
        return self.embed_many(image_rgb, [face])[0]

    def embed_many(self, image_rgb: np.ndarray, faces: list[Face]) -> list[np.ndarray]:
        import dlib

        if not faces:
            return []
        self._load()
        image = self._as_rgb8(image_rgb)
        shapes = dlib.full_object_detections()
        for face in faces:
            x1, y1, x2, y2 = face.box
            rect = dlib.rectangle(int(round(x1)), int(round(y1)), int(round(x2)) - 1, int(round(y2)) - 1)
            shapes.append(self._shape5(image, rect))
        vectors = self._resnet.compute_face_descriptor(image, shapes)
        out = []
        for vector in vectors:
            embedding = np.asarray(vector, dtype=np.float32)
            embedding /= max(float(np.linalg.norm(embedding)), 1e-12)
            out.append(embedding)
        return out
