"""InsightFace face analysis (SCRFD detector + ArcFace recognition) on onnxruntime.

A thin wrapper over insightface 2.1's `model_zoo`: every `*.onnx` file in a pack folder is routed by
its ONNX signature (SCRFD by its ≥5 outputs, ArcFace by its square ≥112 px input), exactly as
`FaceAnalysis` does, but on sessions created here with the providers passed in. Input images are RGB
uint8 (the engine's convention); InsightFace works in BGR, so the conversion happens here only.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.errors import ModelPackError
from engine.faces.types import Face

log = logging.getLogger(__name__)

DEFAULT_PROVIDER_ORDER = ("CUDAExecutionProvider", "CPUExecutionProvider")


def default_providers(preferred: Sequence[str] = DEFAULT_PROVIDER_ORDER) -> list[str]:
    """`preferred` filtered by what this onnxruntime build offers (CPU is always there)."""
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    chosen = [p for p in preferred if p in available]
    return chosen or ["CPUExecutionProvider"]


def providers_for_device(device) -> list[str]:
    """onnxruntime providers for models that go with a torch model on `device` ("auto", "cpu", "cuda",
    "cuda:1" or a torch.device): CUDA first only where the model may run on CUDA, else the CPU alone."""
    name = str(device)
    if name == "auto" or name.startswith("cuda"):
        return default_providers()
    return ["CPUExecutionProvider"]


def _pack_error(message: str, path: Path, part: str) -> ModelPackError:
    from engine.models.layout import PARTS

    hint = f"get it: {PARTS[part].where_to_get}" if part in PARTS else None
    return ModelPackError(message, path, part=part, hint=hint)


def _bgr(image_rgb: np.ndarray) -> np.ndarray:
    image = np.asarray(image_rgb)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    return np.ascontiguousarray(image[..., 2::-1])


class InsightFaceAnalyzer:
    """Detect faces and compute ArcFace embeddings with an InsightFace model pack folder.

    `pack_dir` holds a detector (SCRFD) and a recognition model (ArcFace) as ONNX files, e.g. the
    antelopev2 pack (`scrfd_10g_bnkps.onnx`, `glintr100.onnx`). A gender/age model (`genderage.onnx`)
    gives `apparent_age`; other ONNX files in the folder (landmarks) are ignored. `threads`: onnxruntime's threads per session (None: its
    default, one per core); scan workers use 1, since the worker processes are the parallelism and more
    threads than cores only make them wait for each other.
    """

    def __init__(self, pack_dir: Path, providers: Sequence | None = None, det_size: int = 640,
                 det_thresh: float = 0.5, threads: int | None = None):
        import onnxruntime
        from insightface.model_zoo import model_zoo

        from engine.models.integrity import check_model_file

        self.pack_dir = Path(pack_dir)
        self.providers = list(providers) if providers is not None else default_providers()
        self.det_size = int(det_size)
        self.det_thresh = float(det_thresh)
        session_options = onnxruntime.SessionOptions()
        if threads is not None:
            session_options.intra_op_num_threads = int(threads)
            session_options.inter_op_num_threads = 1
        part = self.pack_dir.name
        self._part = part
        files = sorted(self.pack_dir.glob("*.onnx")) if self.pack_dir.is_dir() else []
        if not files:
            raise _pack_error("InsightFace model pack not found (no .onnx files)", self.pack_dir, part=part)
        self.detector = None
        self.recognizer = None
        #: InsightFace's gender/age model (genderage.onnx) when the pack has one: apparent ages
        self.age_estimator = None
        self.age_model: str | None = None
        for onnx_file in files:
            # Before any session exists: the file must be the one its install recorded (hash).
            check_model_file(onnx_file)
            try:
                model = model_zoo.get_model(str(onnx_file), providers=self.providers, sess_options=session_options)
            except Exception as exc:  # onnxruntime raises its own types for corrupt files
                raise _pack_error(f"not a loadable ONNX model ({exc.__class__.__name__}: {exc})",
                                     onnx_file, part=part) from exc
            task = getattr(model, "taskname", None)
            if task == "detection" and self.detector is None:
                self.detector = model
                self._detector_file = onnx_file
            elif task == "recognition" and self.recognizer is None:
                self.recognizer = model
                self._recognizer_file = onnx_file
            elif task == "genderage" and self.age_estimator is None:
                self.age_estimator = model
                self.age_model = f"insightface/{part}/{onnx_file.stem}"
            else:
                log.debug("%s: not used (task %s)", onnx_file, task)
        if self.detector is None:
            raise _pack_error("no face detector (SCRFD) in the pack", self.pack_dir, part=part)
        if self.recognizer is None:
            raise _pack_error("no ArcFace recognition model in the pack", self.pack_dir, part=part)
        self.active_providers = self._active_providers()
        self.detector.prepare(0, input_size=(self.det_size, self.det_size), det_thresh=self.det_thresh)
        self.embedding_model = f"insightface/{part}/{self._recognizer_file.stem}"

    def detect(self, image_rgb: np.ndarray, det_size: int | None = None, embed: bool = True) -> list[Face]:
        """All faces (box, score, 5 landmarks and, unless `embed` is False, the L2-normalised embedding),
        largest detector score first."""
        return self.detect_at_sizes(image_rgb, (int(det_size or self.det_size),), embed)[1]

    def detect_at_sizes(self, image_rgb: np.ndarray, sizes: Sequence[int],
                        embed: bool = True) -> tuple[int | None, list[Face]]:
        """(the first detector input size of `sizes` at which faces are found, those faces as `detect`
        gives them), or (None, []) when no size finds one. The photo is converted to BGR once for all
        the sizes, not once per size."""
        bgr = _bgr(image_rgb)
        for size in sizes:
            boxes, landmarks = self.detector.detect(bgr, input_size=(int(size), int(size)),
                                                    det_thresh=self.det_thresh)
            if boxes.shape[0]:
                return int(size), self._faces(bgr, boxes, landmarks, embed)
        return None, []

    def _faces(self, bgr: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray | None, embed: bool) -> list[Face]:
        faces = []
        for i in range(boxes.shape[0]):
            kps = landmarks[i].astype(np.float32) if landmarks is not None else None
            if kps is None:
                raise _pack_error("the detector gives no landmarks (an SCRFD *_kps model is needed)",
                                     self._detector_file, part=self.pack_dir.name)
            embedding = self._embed_bgr(bgr, kps) if embed else None
            faces.append(Face(box=tuple(float(v) for v in boxes[i, :4]), score=float(boxes[i, 4]),
                              landmarks=kps, embedding=embedding, embedding_model=self.embedding_model))
        return faces

    def embed(self, image_rgb: np.ndarray, face: Face) -> np.ndarray:
        """The L2-normalised ArcFace embedding of `face` (InsightFace's 5-point 112×112 alignment)."""
        return self._embed_bgr(_bgr(image_rgb), np.asarray(face.landmarks, np.float32))

    def apparent_age(self, image_rgb: np.ndarray, face: Face) -> float | None:
        """The age `face` looks, in years, by the pack's genderage model (None when the pack has none):
        InsightFace's crop (the box's centre, 1.5 × its larger side, at the model's 96 px), its output
        [gender logits (2), age / 100]."""
        if self.age_estimator is None:
            return None
        import cv2
        from insightface.utils import face_align

        model = self.age_estimator
        side = int(model.input_size[0])
        x1, y1, x2, y2 = (float(v) for v in face.box)
        scale = side / (max(x2 - x1, y2 - y1, 1.0) * 1.5)
        crop, _ = face_align.transform(_bgr(image_rgb), ((x1 + x2) / 2, (y1 + y2) / 2), side, scale, 0)
        blob = cv2.dnn.blobFromImage(crop, 1.0 / model.input_std, (side, side),
                                     (model.input_mean, model.input_mean, model.input_mean), swapRB=True)
        prediction = np.asarray(model.session.run(model.output_names, {model.input_name: blob})[0]).reshape(-1)
        return float(np.clip(prediction[2] * 100.0, 0.0, 120.0))

    def _active_providers(self) -> dict[str, list[str]]:
        """Where each session really runs. onnxruntime drops a provider it cannot start (the CUDA one
        of onnxruntime-gpu without its CUDA / cuDNN libraries) with a warning of its own only; this
        says it in our log, once per analyser."""
        active = {task: list(model.session.get_providers()) for task, model in
                  (("detection", self.detector), ("recognition", self.recognizer))
                  if getattr(model, "session", None) is not None}
        asked = [p[0] if isinstance(p, (tuple, list)) else str(p) for p in self.providers]
        if "CUDAExecutionProvider" in asked and not any("CUDAExecutionProvider" in p for p in active.values()):
            log.warning("%s: onnxruntime could not start its CUDA provider (CUDA or cuDNN libraries missing?); "
                        "faces are analysed on the CPU", self.pack_dir)
        else:
            log.info("%s: %s", self.pack_dir, ", ".join(f"{task} on {p[0]}" for task, p in active.items() if p))
        return active

    def _embed_bgr(self, bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        from insightface.utils import face_align

        with warnings.catch_warnings():
            # scikit-image ≥ 0.26 deprecates SimilarityTransform.estimate, which face_align calls.
            warnings.simplefilter("ignore", FutureWarning)
            aligned = face_align.norm_crop(bgr, landmark=landmarks, image_size=self.recognizer.input_size[0])
        raw = np.asarray(self.recognizer.get_feat(aligned), np.float32).reshape(-1)
        norm = float(np.linalg.norm(raw))
        return raw / norm if norm > 0 else raw
