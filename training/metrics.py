"""The paper's metrics (Table 1), each as a plain function on RGB uint8 images.

- PSNR on RGB (pyiqa's `psnr`: test_y_channel False), data range 255.
- SSIM on the Y channel of YCbCr (pyiqa's `ssim`: test_y_channel True): Gaussian window σ = 1.5
  (11 taps), population covariances, the borders the window does not cover left out — the BasicSR /
  pyiqa formulation, here through scikit-image.
- LMD: mean Euclidean distance (pixels) between the 68 dlib landmarks of the restored image and of the
  ground truth.
- IDS: cosine similarity of the ArcFace embeddings (antelopev2 through the engine's InsightFace backend).
- LPIPS, MUSIQ, FID: through pyiqa when it can be imported (it needs torchvision) and its weights are
  present; otherwise skipped with the reason (`LearnedMetrics.unavailable`).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape} vs {b.shape}")


def psnr(restored: np.ndarray, gt: np.ndarray) -> float:
    """10·log10(255² / MSE) over all RGB values; inf for identical images."""
    _check_pair(restored, gt)
    mse = float(np.mean((restored.astype(np.float64) - gt.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an RGB uint8 image, in [16, 235] (MATLAB's rgb2ycbcr, as BasicSR/pyiqa)."""
    rgb = image.astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def ssim(restored: np.ndarray, gt: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    _check_pair(restored, gt)
    return float(structural_similarity(rgb_to_y(restored), rgb_to_y(gt), data_range=255.0, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False))


def landmark_distance(landmarks_a: np.ndarray, landmarks_b: np.ndarray) -> float:
    """Mean Euclidean distance between corresponding landmarks."""
    a, b = np.asarray(landmarks_a, np.float64), np.asarray(landmarks_b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"landmark sets differ: {a.shape} vs {b.shape}")
    return float(np.linalg.norm(a - b, axis=-1).mean())


def lmd(restored: np.ndarray, gt: np.ndarray) -> float:
    """LMD between two aligned face crops, 68 dlib landmarks each."""
    from training.landmarks import aligned_face_landmarks

    _check_pair(restored, gt)
    return landmark_distance(aligned_face_landmarks(restored), aligned_face_landmarks(gt))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


class IdentitySimilarity:
    """IDS: ArcFace cosine similarity between a restored face and its ground truth.

    Each image's largest face is detected; when the restoration is too damaged for the detector the
    ground truth's landmarks are used for it (both are crops with the same alignment), and counted."""

    def __init__(self, analyzer):
        self.analyzer = analyzer
        self.fallbacks = 0

    def largest_face(self, image: np.ndarray):
        from engine.restore.plan import detect_faces

        faces = detect_faces(self.analyzer, image)  # smaller detector inputs until one finds a face
        return max(faces, key=lambda f: f.area) if faces else None

    def __call__(self, restored: np.ndarray, gt: np.ndarray) -> float | None:
        gt_face = self.largest_face(gt)
        if gt_face is None:
            return None
        restored_face = self.largest_face(restored)
        if restored_face is None:
            self.fallbacks += 1
            restored_embedding = self.analyzer.embed(restored, gt_face)
        else:
            restored_embedding = restored_face.embedding
        return cosine(restored_embedding, gt_face.embedding)


class LearnedMetrics:
    """LPIPS, MUSIQ and FID through pyiqa, when it can run here; `unavailable` says why not."""

    NAMES = ("LPIPS", "MUSIQ", "FID")

    def __init__(self, device: str = "cpu"):
        self.metrics: dict = {}
        self.unavailable: dict[str, str] = {}
        if importlib.util.find_spec("pyiqa") is None:
            reason = ("pyiqa is not installed (`pip install pyiqa` — it needs torchvision, which does not "
                      "import beside the pinned CPU torch)")
            self.unavailable = {name: reason for name in self.NAMES}
            return
        try:
            import pyiqa
        except Exception as exc:  # torchvision missing or not matching this torch, typically
            reason = f"pyiqa cannot be imported here ({exc.__class__.__name__}: {exc})"
            self.unavailable = {name: reason for name in self.NAMES}
            return
        for name, key in (("LPIPS", "lpips"), ("MUSIQ", "musiq"), ("FID", "fid")):
            try:
                self.metrics[name] = pyiqa.create_metric(key, device=device)
            except Exception as exc:  # weights that cannot be downloaded, mostly
                self.unavailable[name] = f"pyiqa could not create {key} ({exc.__class__.__name__}: {exc})"

    @staticmethod
    def _tensor(image: np.ndarray):
        import torch

        return torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]

    def lpips(self, restored: np.ndarray, gt: np.ndarray) -> float | None:
        metric = self.metrics.get("LPIPS")
        return None if metric is None else float(metric(self._tensor(restored), self._tensor(gt)))

    def musiq(self, restored: np.ndarray) -> float | None:
        metric = self.metrics.get("MUSIQ")
        return None if metric is None else float(metric(self._tensor(restored)))

    def fid(self, restored_dir: str, reference_dir: str) -> float | None:
        metric = self.metrics.get("FID")
        return None if metric is None else float(metric(restored_dir, reference_dir))


def mean(values: Sequence[float | None]) -> tuple[float | None, int]:
    """(mean of the values that exist, how many there were)."""
    present = [v for v in values if v is not None and np.isfinite(v)]
    return (float(np.mean(present)) if present else None), len(present)
