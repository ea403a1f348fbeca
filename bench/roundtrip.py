"""Align + paste back the UNMODIFIED crop of every face: PSNR over the whole photo, and the seam.

For every photo of ../shared/data/group_photos/images and ../shared/data/realworld_degraded/whole,
faces come from the real SCRFD det_500m (640 px, score >= 0.5, through insightface's model_zoo on
onnxruntime). Compared in the same run:
- ours: engine.faces.align (bicubic, supersampled + Lanczos-3 low-pass when shrinking) and
  engine.restore.pasteback (soft mask, tone band);
- baseline: plain bilinear warps there and back, pasted over the crop's whole footprint.
Also the time of paste-back per face, and the seam measure of tests/restore/test_pasteback.py for a
face made 40 grey levels brighter. `--picture PATH` writes the seam picture for docs/ (from
deepface_couple.jpg, MIT licence): original | brighter face, our paste-back | same, hard-edged paste.

    .venv/bin/python bench/roundtrip.py [--shared ../shared] [--picture docs/images/pasteback_seam.jpg]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.faces.align import align_face, warp_to_crop  # noqa: E402
from engine.restore.pasteback import crop_masks, paste_face, paste_faces  # noqa: E402


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def bilinear_roundtrip(pixels: np.ndarray, landmarks_list) -> np.ndarray:
    out = pixels.copy()
    height, width = pixels.shape[:2]
    for landmarks in landmarks_list:
        alignment = align_face(landmarks)
        crop = cv2.warpAffine(pixels, alignment.matrix, (512, 512), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT_101)
        back = cv2.warpAffine(crop, alignment.inverse, (width, height), flags=cv2.INTER_LINEAR)
        inside = cv2.warpAffine(np.ones((512, 512), np.uint8), alignment.inverse, (width, height),
                                flags=cv2.INTER_NEAREST).astype(bool)
        out[inside] = back[inside]
    return out


def seam_picture(pixels: np.ndarray, landmarks: np.ndarray, path: Path) -> None:
    from engine.faces.align import warp_from_crop

    alignment = align_face(landmarks)
    crop = warp_to_crop(pixels, alignment)
    brighter = np.clip(crop.astype(np.int16) + 40, 0, 255).astype(np.uint8)
    soft = pixels.copy()
    paste_face(soft, brighter, alignment)
    region = alignment.region(pixels.shape)
    x0, y0, x1, y1 = region
    detail, _ = crop_masks(512)
    hard_alpha = warp_from_crop((detail > 0.5).astype(np.float32), alignment, region,
                                interpolation=cv2.INTER_NEAREST)[..., None]
    hard = pixels.copy()
    hard[y0:y1, x0:x1] = np.clip(pixels[y0:y1, x0:x1] + 40 * hard_alpha, 0, 255).astype(np.uint8)
    panels = [img[y0:y1, x0:x1] for img in (pixels, soft, hard)]
    strip = np.concatenate(panels, axis=1)
    scale = 1500 / strip.shape[1]
    strip = cv2.resize(strip, (1500, round(strip.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--picture", type=Path, default=None)
    args = parser.parse_args(argv)
    from insightface.model_zoo import get_model

    from engine.imageio import read_image

    detector = get_model(str(args.shared / "models/insightface_scrfd/det_500m.onnx"),
                         providers=["CPUExecutionProvider"])
    detector.prepare(ctx_id=-1, input_size=(640, 640), det_thresh=0.5)
    folders = ("data/group_photos/images", "data/realworld_degraded/whole")
    paths = sorted(p for f in folders for p in (args.shared / f).iterdir() if p.is_file())
    print(f"# round trip — {date.today()}, {platform.machine()}, python {platform.python_version()}")
    print("| photo | faces | smallest face scale (crop px per photo px) | ours PSNR dB | bilinear PSNR dB | ours ms/face |")
    print("|---|---|---|---|---|---|")
    ours_all, base_all, per_face = [], [], []
    for path in paths:
        pixels = read_image(path).pixels
        _, kps = detector.detect(np.ascontiguousarray(pixels[..., ::-1]), input_size=(640, 640))
        if kps is None or len(kps) == 0:
            print(f"| {path.name} | 0 | – | – | – | – |")
            continue
        started = time.perf_counter()
        pairs = [(warp_to_crop(pixels, align_face(k)), align_face(k)) for k in kps]
        ours = paste_faces(pixels, pairs)
        elapsed = (time.perf_counter() - started) / len(kps)
        base = bilinear_roundtrip(pixels, kps)
        ours_all.append(psnr(ours, pixels))
        base_all.append(psnr(base, pixels))
        per_face.append(elapsed)
        scale = min(a.scale for _, a in pairs)
        print(f"| {path.name} | {len(kps)} | {scale:.2f} | {ours_all[-1]:.2f} | {base_all[-1]:.2f} | {elapsed * 1000:.0f} |")
    print(f"\nphotos with faces: {len(ours_all)}; ours min {min(ours_all):.2f} dB, median {np.median(ours_all):.2f}; "
          f"bilinear min {min(base_all):.2f} dB, median {np.median(base_all):.2f}; "
          f"paste-back median {np.median(per_face) * 1000:.0f} ms per face (crop + paste, 2-core CPU)")
    if args.picture:
        couple = args.shared / "data/group_photos/images/deepface_couple.jpg"
        pixels = read_image(couple).pixels
        boxes, kps = detector.detect(np.ascontiguousarray(pixels[..., ::-1]), input_size=(640, 640))
        largest = int(np.argmax(boxes[:, 2] - boxes[:, 0]))
        seam_picture(pixels, kps[largest], args.picture)
    return 0


if __name__ == "__main__":
    sys.exit(main())
