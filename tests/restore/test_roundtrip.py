"""Done-means 2: aligning every face of a real photo and pasting the UNMODIFIED crop back must not
visibly blur or shift the photo: PSNR >= 40 dB over the whole image, on every photo."""

from __future__ import annotations

import numpy as np

from engine.faces.align import align_face, warp_to_crop
from engine.restore.pasteback import paste_faces

MIN_PSNR = 40.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def roundtrip(pixels: np.ndarray, faces) -> np.ndarray:
    pairs = []
    for face in faces:
        alignment = align_face(face.landmarks)
        pairs.append((warp_to_crop(pixels, alignment), alignment))
    return paste_faces(pixels, pairs)


def test_unmodified_crops_pasted_back_keep_every_photo(photo_faces):
    results, faces_total = {}, 0
    for path, (pixels, faces) in photo_faces.items():
        out = roundtrip(pixels, faces)
        assert out.shape == pixels.shape and out.dtype == np.uint8
        results[path.name] = psnr(out, pixels)
        faces_total += len(faces)
    low = {name: round(value, 2) for name, value in results.items() if value < MIN_PSNR}
    assert not low, f"round trip below {MIN_PSNR} dB: {low}"
    # Not vacuous: nearly every photo has faces, so nearly every photo was really warped and pasted.
    with_faces = sum(1 for _, faces in photo_faces.values() if faces)
    assert with_faces >= len(photo_faces) - 3 and faces_total >= 100
    changed = sum(1 for value in results.values() if np.isfinite(value))
    assert changed == with_faces


def test_plain_bilinear_would_fail_on_the_same_photos(photo_faces):
    """The measure can fail: bilinear there and back (no supersampling) loses several dB."""
    import cv2

    worst = np.inf
    for _path, (pixels, faces) in list(photo_faces.items())[:12]:
        out = pixels.copy()
        for face in faces:
            alignment = align_face(face.landmarks)
            crop = cv2.warpAffine(pixels, alignment.matrix, (512, 512), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT_101)
            back = cv2.warpAffine(crop, alignment.inverse, (pixels.shape[1], pixels.shape[0]),
                                  flags=cv2.INTER_LINEAR)
            inside = cv2.warpAffine(np.ones((512, 512), np.uint8), alignment.inverse,
                                    (pixels.shape[1], pixels.shape[0]), flags=cv2.INTER_NEAREST).astype(bool)
            out[inside] = back[inside]
        if faces:
            worst = min(worst, psnr(out, pixels))
    assert worst < MIN_PSNR
