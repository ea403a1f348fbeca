"""Turning photos into training material: aligned face crops, degraded LQ folders, the degradation grid."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from engine.errors import ImageReadError, NoFaceError
from engine.progress import ProgressCallback, report
from training.degrade import DegradationRanges, degrade, to_uint8
from training.landmarks import align_face, detect_landmarks

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def read_rgb(path: Path) -> np.ndarray:
    """An RGB uint8 array, EXIF orientation applied."""
    try:
        with Image.open(path) as im:
            return np.array(ImageOps.exif_transpose(im).convert("RGB"))
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"cannot read image ({exc})", path) from exc


def write_rgb(path: Path, image: np.ndarray) -> None:
    from engine.imageio import write_image

    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, image)  # atomic, like every picture the project writes


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def aligned_crop(path: Path, size: int = 512) -> np.ndarray:
    """The largest face of a photo, aligned to the FFHQ template at `size` px (dlib landmarks)."""
    image = read_rgb(path)
    # The HOG detector is slow on multi-megapixel photos and finds big faces at lower resolution;
    # small photos are searched at twice their size.
    scale = min(1.0, 800.0 / max(image.shape[:2]))
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
    landmarks = detect_landmarks(small, upsample=0 if max(small.shape[:2]) >= 400 else 1)
    if landmarks is None:
        raise NoFaceError("dlib found no face", path)
    return align_face(image, landmarks / scale, size)


def make_face_folder(source: Path, out: Path, size: int = 512,
                     progress: ProgressCallback | None = None) -> list[Path]:
    """Aligned crops of every photo under `source`, keeping its sub-folders (folder per identity).
    Photos without a detectable face are skipped with a warning."""
    paths = list_images(source)
    written = []
    for i, path in enumerate(paths):
        target = (out / path.relative_to(source)).with_suffix(".png")
        if not target.exists():
            try:
                write_rgb(target, aligned_crop(path, size))
            except NoFaceError as exc:
                log.warning("skipped: %s", exc)
                continue
        written.append(target)
        report(progress, i + 1, len(paths), path.name)
    return written


def degrade_folder(gt_dir: Path, out: Path, seed: int = 0, ranges: DegradationRanges = DegradationRanges(),
                   progress: ProgressCallback | None = None) -> list[Path]:
    """Write a degraded copy of every image under `gt_dir` (same relative path, .png) plus
    `degradations.json` with each image's parameters. Image i uses seed (seed, i)."""
    paths = list_images(gt_dir)
    records = {}
    written = []
    for i, path in enumerate(paths):
        result = degrade(read_rgb(path), np.random.default_rng([seed, i]), ranges)
        rel = path.relative_to(gt_dir).with_suffix(".png")
        write_rgb(out / rel, to_uint8(result.image))
        records[rel.as_posix()] = result.params.as_dict()
        written.append(out / rel)
        report(progress, i + 1, len(paths), path.name)
    out.mkdir(parents=True, exist_ok=True)
    (out / "degradations.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
    return written


def _caption(tile: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    tile = tile.copy()
    height = 14 * len(lines) + 6
    tile[-height:] = (tile[-height:].astype(np.float32) * 0.35).astype(np.uint8)
    for k, line in enumerate(lines):
        y = tile.shape[0] - height + 14 * (k + 1)
        cv2.putText(tile, line, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def degradation_grid(faces: Sequence[np.ndarray], per_face: int = 5, seed: int = 0, tile: int = 256) -> np.ndarray:
    """One row per face: the ground truth, then `per_face` degradations, each captioned with its parameters."""
    rows = []
    for r, face in enumerate(faces):
        gt = cv2.resize(face, (tile, tile), interpolation=cv2.INTER_AREA)
        tiles = [_caption(gt, ["ground truth"])]
        for c in range(per_face):
            d = degrade(face, np.random.default_rng([seed, r, c]))
            p = d.params
            kind = f"aniso {p.sigma_x:.1f}/{p.sigma_y:.1f} {np.degrees(p.rotation):.0f}deg" if p.anisotropic \
                else f"iso sigma {p.sigma_x:.1f}"
            lq = cv2.resize(to_uint8(d.image), (tile, tile), interpolation=cv2.INTER_AREA)
            tiles.append(_caption(lq, [kind, f"down x{p.downsample:.1f} noise {p.noise_sigma:.1f}",
                                       f"jpeg q{p.jpeg_quality}"]))
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)
