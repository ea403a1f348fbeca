"""Reference photos → identity tokens (one per photo), exactly as the FaceMe release prepares them.

Per reference (the spec's "Reference preprocessing"; the released Mix learned from embeddings made
this way, so every detail below is part of the weights):
1. InsightFace is handed the **RGB** array. InsightFace reads BGR; the release feeds it RGB anyway, so
   detection and ArcFace see swapped channels, and so must we (`release_faces`).
2. Detector input 512 px first (the size the release prepares the analyzer with), then, while no face
   is found, 640, 576, … 320 and finally 256 (`REFERENCE_DETECTION_SIZES`).
3. The FIRST face returned is used (InsightFace orders faces by detection score), not the largest.
4. ArcFace: that face's embedding (5-point 112×112 alignment on the RGB-fed image), L2-normalised.
5. CLIP: `PIL.Image.crop` of the photo with the float box as detected: PIL rounds the box, and the
   part of a box that runs past the photo's edge is black, not clipped (`crop_for_clip`); then standard
   CLIP preprocessing; Mix(clip, arcface) → one token.

Face matching (engine.restore.plan.detect_faces) detects the standard way instead (BGR-correct,
640 px first, every face): it compares embeddings made that way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.errors import NoFaceError
from engine.faces.types import Face
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report

log = logging.getLogger(__name__)

#: The release's reference detection: the analyzer is prepared at 512, which is tried first; then
#: 640 → 320 step 64, then 256. (512 comes twice; a retry at a size already tried finds nothing new,
#: so `detect_reference_face` skips it: same result, one detection less.)
REFERENCE_DETECTION_SIZES = (512, *range(640, 256, -64), 256)

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
    clip_crop: np.ndarray  # RGB uint8: PIL crop of the float box, black outside the photo


def release_faces(analyzer, image_rgb: np.ndarray, det_size: int) -> list[Face]:
    """Faces as InsightFace finds them when handed the RGB array, as the release does.

    Our analyzers take RGB and convert to InsightFace's BGR themselves; giving them the
    channel-reversed array makes InsightFace receive the original RGB array (boxes, landmarks and
    order are those of the RGB-fed detector, embeddings those of the RGB-fed ArcFace).
    """
    swapped = np.ascontiguousarray(np.asarray(image_rgb)[..., 2::-1])
    return analyzer.detect(swapped, det_size=det_size)


def detect_reference_face(analyzer, image_rgb: np.ndarray, source: str,
                          sizes: Sequence[int] = REFERENCE_DETECTION_SIZES) -> Face:
    """The release's reference face: the first face returned (highest detection score), RGB-fed,
    trying each detector size in `sizes` until one finds a face."""
    tried = set()
    for size in sizes:
        if size in tried:
            continue
        tried.add(size)
        faces = release_faces(analyzer, image_rgb, size)
        if faces:
            if size != sizes[0]:
                log.debug("%s: face found at detector size %d", source, size)
            return faces[0]
    raise NoFaceError("no face found in the reference photo", source)


def crop_for_clip(image_rgb: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """`PIL.Image.crop` of the float box, as the release crops for CLIP: PIL rounds the box (Python's
    round), and whatever lies outside the photo is black, not clipped away."""
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    if x2 <= x1 or y2 <= y1:
        raise NoFaceError("the detected face box is empty")
    return np.asarray(Image.fromarray(np.ascontiguousarray(image_rgb)).crop(tuple(float(v) for v in box)))


def prepare_reference(analyzer, reference: Reference, index: int = 0) -> ReferenceFace:
    if isinstance(reference, np.ndarray):
        source, image = f"reference #{index + 1}", reference
    else:
        source, image = str(reference), read_rgb(reference)
    try:
        face = detect_reference_face(analyzer, image, source)
        crop = crop_for_clip(image, face.box)
    except NoFaceError as exc:
        raise NoFaceError(exc.message, source) from None
    if face.embedding is not None:
        arcface = face.embedding
    else:  # analyzers that embed on request: RGB-fed like the detection
        arcface = analyzer.embed(np.ascontiguousarray(image[..., 2::-1]), face)
    arcface = np.asarray(arcface, np.float32)
    arcface = arcface / max(float(np.linalg.norm(arcface)), 1e-12)
    return ReferenceFace(source, face, arcface, crop)


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
