"""Reference photos → identity tokens (one per photo), as the FaceMe release prepares them.

Per reference: detect faces (640 px detector input, retried at 576 … 256 when nothing is found), keep
the largest; ArcFace embedding of it (5-point 112×112 alignment, L2-normalised); CLIP features of the
bounding-box crop (no alignment, standard CLIP preprocessing); Mix(clip, arcface) → one token.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.errors import NoFaceError
from engine.faces.types import Face
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report

log = logging.getLogger(__name__)

#: Detector input sizes tried in turn until a face is found.
DETECTION_SIZES = tuple(range(640, 255, -64))

Reference = str | Path | np.ndarray


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as oriented RGB uint8 (H, W, 3); ImageReadError naming the file otherwise."""
    from engine.imageio import read_image

    return read_image(path).pixels


@dataclass(frozen=True)
class ReferenceFace:
    """One reference's face and the inputs of the identity encoder."""

    source: str
    face: Face
    arcface: np.ndarray  # (512,) L2-normalised
    clip_crop: np.ndarray  # RGB uint8 bounding-box crop


def detect_largest_face(analyzer, image_rgb: np.ndarray, source: str,
                        sizes: Sequence[int] = DETECTION_SIZES) -> Face:
    """The largest detected face, trying each detector input size until one finds a face."""
    for size in sizes:
        faces = analyzer.detect(image_rgb, det_size=size)
        if faces:
            if size != sizes[0]:
                log.debug("%s: face found at detector size %d", source, size)
            return max(faces, key=lambda f: f.area)
    raise NoFaceError("no face found in the reference photo", source)


def bounding_box_crop(image_rgb: np.ndarray, face: Face) -> np.ndarray:
    """The face's bounding box (rounded, clipped to the image), no alignment."""
    height, width = image_rgb.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in face.box)
    x1, y1 = max(x1, 0), max(y1, 0)
    x2, y2 = min(x2, width), min(y2, height)
    if x2 <= x1 or y2 <= y1:
        raise NoFaceError("the detected face box lies outside the image")
    return np.ascontiguousarray(image_rgb[y1:y2, x1:x2])


def prepare_reference(analyzer, reference: Reference, index: int = 0) -> ReferenceFace:
    if isinstance(reference, np.ndarray):
        source, image = f"reference #{index + 1}", reference
    else:
        source, image = str(reference), read_rgb(reference)
    try:
        face = detect_largest_face(analyzer, image, source)
    except NoFaceError as exc:
        raise NoFaceError(exc.message, source) from None
    arcface = face.embedding if face.embedding is not None else analyzer.embed(image, face)
    arcface = np.asarray(arcface, np.float32)
    arcface = arcface / max(float(np.linalg.norm(arcface)), 1e-12)
    return ReferenceFace(source, face, arcface, bounding_box_crop(image, face))


@torch.no_grad()
def encode_references(references: Sequence[ReferenceFace], id_encoder, mix) -> torch.Tensor:
    """Identity tokens (N, token_dim) on the Mix's device and dtype."""
    from engine.faceme.id_encoder import clip_preprocess

    param = next(mix.parameters())
    enc_param = next(id_encoder.parameters())
    pixels = torch.from_numpy(np.stack([clip_preprocess(r.clip_crop, id_encoder.image_size) for r in references]))
    clip = id_encoder(pixels.to(device=enc_param.device, dtype=enc_param.dtype))
    arcface = torch.from_numpy(np.stack([r.arcface for r in references]))
    return mix(clip.to(device=param.device, dtype=param.dtype), arcface.to(device=param.device, dtype=param.dtype))


def identity_tokens(references: Sequence[Reference], analyzer, id_encoder, mix,
                    progress: ProgressCallback | None = None, cancel: CancelCheck | None = None) -> torch.Tensor:
    """N reference photos (paths or RGB arrays) → N identity tokens, in order."""
    prepared = []
    for i, reference in enumerate(references):
        check_cancelled(cancel, "reference preparation")
        prepared.append(prepare_reference(analyzer, reference, i))
        report(progress, i + 1, len(references), "references")
    if not prepared:
        raise ValueError("no references given")
    return encode_references(prepared, id_encoder, mix)
