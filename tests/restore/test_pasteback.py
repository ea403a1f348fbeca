"""Paste-back: no seam when the restored face differs in brightness (done-means 3), the restored face
itself is what lands in the photo, grayscale stays gray, overlaps and image edges, bounded memory."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest

from engine.faces.align import FFHQ_TEMPLATE_512, align_face, warp_from_crop, warp_to_crop
from engine.restore.pasteback import LUMA, crop_masks, paste_face, paste_faces

BRIGHTNESS = 40.0


def luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) @ LUMA if image.ndim == 3 else image.astype(np.float32)


def gradient(image: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return np.hypot(gx, gy)


def seam_measure(original: np.ndarray, pasted: np.ndarray, alignment,
                 unchanged: np.ndarray | None = None) -> dict[str, float]:
    """How much pasting a brighter face adds to the gradient where the mask goes from 0 to 1.

    `seam_step`: 99th percentile of |grad(pasted - unchanged)| in the mask's transition band, in gray
    levels per pixel, divided by the brightness change. `unchanged` is the same paste of the
    unmodified crop (the original when None), so the round trip's own resampling is not counted. A hard
    paste puts the whole change into one or two pixels (about 0.5 with this Sobel); a seamless one
    spreads it thinly. `edge_vs_photo`: mean |grad pasted| / mean |grad original| in the band (1 = no
    extra edges). `core_shift`: the mean change where both masks are 1 (the face itself).
    """
    region = alignment.region(original.shape)
    x0, y0, x1, y1 = region
    detail, _ = crop_masks(alignment.size)
    alpha = warp_from_crop(detail, alignment, region, interpolation=cv2.INTER_LINEAR)
    core = warp_from_crop(np.minimum(*crop_masks(alignment.size)), alignment, region,
                          interpolation=cv2.INTER_LINEAR) >= 0.999
    band = (alpha > 0.02) & (alpha < 0.98)
    before = luma(original[y0:y1, x0:x1])
    reference = before if unchanged is None else luma(unchanged[y0:y1, x0:x1])
    after = luma(pasted[y0:y1, x0:x1])
    added = gradient(after - reference)[band]
    return {"seam_step": float(np.percentile(added, 99)) / BRIGHTNESS,
            "edge_vs_photo": float(gradient(after)[band].mean() / gradient(before)[band].mean()),
            "core_shift": float((after - reference)[core].mean())}


def brightened(crop: np.ndarray) -> np.ndarray:
    return np.clip(crop.astype(np.float32) + BRIGHTNESS, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["deepface_couple.jpg", "insightface_t1.jpg", "dlib_2008_002079.jpg"])
def test_brighter_face_leaves_no_seam(photo_faces, shared, name):
    pixels, faces = photo_faces[shared / "data/group_photos/images" / name]
    face = max(faces, key=lambda f: f.size)
    alignment = align_face(face.landmarks)
    crop = warp_to_crop(pixels, alignment)
    soft, unchanged = pixels.copy(), pixels.copy()
    paste_face(soft, brightened(crop), alignment)
    paste_face(unchanged, crop, alignment)
    measure = seam_measure(pixels, soft, alignment, unchanged)

    # The same change pasted with a hard-edged mask: the measure must see that seam.
    x0, y0, x1, y1 = alignment.region(pixels.shape)
    detail, _ = crop_masks(alignment.size)
    hard_alpha = warp_from_crop((detail > 0.5).astype(np.float32), alignment, (x0, y0, x1, y1),
                                interpolation=cv2.INTER_NEAREST)[..., None]
    hard = pixels.copy()
    hard[y0:y1, x0:x1] = np.clip(pixels[y0:y1, x0:x1] + hard_alpha * BRIGHTNESS, 0, 255).astype(np.uint8)
    hard_measure = seam_measure(pixels, hard, alignment)

    assert hard_measure["seam_step"] > 0.3, hard_measure
    assert measure["seam_step"] < 0.1, measure
    assert measure["edge_vs_photo"] < 1.1, measure
    # The change itself arrives in the face: what is pasted is the (brighter) restored face.
    assert measure["core_shift"] > 0.8 * BRIGHTNESS, measure


def test_pasted_face_is_the_restored_face_not_a_residual(photo_faces, shared):
    """A noisy, blurry original must not leak into the restored face's core."""
    pixels, faces = photo_faces[shared / "data/realworld_degraded/whole/redeg_lqs_old_004.jpeg"]
    face = max(faces, key=lambda f: f.size)
    alignment = align_face(face.landmarks)
    rng = np.random.default_rng(0)
    noisy = np.clip(pixels.astype(np.float32) + rng.normal(0, 25, pixels.shape), 0, 255).astype(np.uint8)
    clean = np.full((512, 512, 3), (180, 140, 120), np.uint8)
    out = noisy.copy()
    paste_face(out, clean, alignment)
    region = alignment.region(pixels.shape)
    x0, y0, x1, y1 = region
    detail, tone = crop_masks(512)
    core = warp_from_crop(np.minimum(detail, tone), alignment, region, interpolation=cv2.INTER_LINEAR) > 0.999
    assert core.sum() > 500
    values = out[y0:y1, x0:x1][core].astype(np.float32)
    assert np.abs(values - [180, 140, 120]).max() <= 1.0


def test_only_the_face_region_changes(photo_faces, shared):
    pixels, faces = photo_faces[shared / "data/group_photos/images/insightface_t1.jpg"]
    face = faces[0]
    alignment = align_face(face.landmarks)
    out = pixels.copy()
    region = paste_face(out, brightened(warp_to_crop(pixels, alignment)), alignment)
    x0, y0, x1, y1 = region
    outside = np.ones(pixels.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], pixels[outside])
    assert not np.array_equal(out[y0:y1, x0:x1], pixels[y0:y1, x0:x1])


def _landmarks(centre: tuple[float, float], eye_distance: float, angle: float = 0.0) -> np.ndarray:
    template = FFHQ_TEMPLATE_512 - (256.0, 300.0)
    scale = eye_distance / (FFHQ_TEMPLATE_512[1, 0] - FFHQ_TEMPLATE_512[0, 0])
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return template @ np.array([[c, s], [-s, c]]) + centre


def test_grayscale_photo_stays_gray():
    gray = np.tile(np.linspace(40, 200, 300, dtype=np.float32)[None, :, None], (200, 1, 3)).astype(np.uint8)
    colourful = np.zeros((512, 512, 3), np.uint8)
    colourful[..., 0] = 250
    colourful[..., 2] = 30
    alignment = align_face(_landmarks((150, 100), 40))
    out = gray.copy()
    paste_face(out, colourful, alignment, grayscale=True)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    assert not np.array_equal(out, gray)
    plane = gray[..., 0].copy()  # a single-channel canvas is gray by construction
    paste_face(plane, colourful, alignment)
    assert plane.ndim == 2 and not np.array_equal(plane, gray[..., 0])


def test_face_at_the_image_edge():
    photo = np.full((240, 320, 3), 90, np.uint8)
    alignment = align_face(_landmarks((8, 230), 60, angle=0.3))  # half the face is outside
    out = photo.copy()
    region = paste_face(out, np.full((512, 512, 3), 200, np.uint8), alignment)
    assert region is not None and region[0] == 0 and region[3] == 240
    assert out[225:240, 0:10].mean() > 190  # the visible part of the face is pasted up to the edge
    assert out[0:60, 200:].mean() == 90


def test_overlapping_faces_larger_face_wins_and_smaller_survives():
    photo = np.full((400, 600, 3), 100, np.uint8)
    small = align_face(_landmarks((200, 200), 40))  # its crop spans x 120..280
    large = align_face(_landmarks((400, 200), 70))  # x 260..540: the crops overlap
    assert small.region(photo.shape)[2] > large.region(photo.shape)[0]
    out = paste_faces(photo, [(np.full((512, 512, 3), 220, np.uint8), large),
                              (np.full((512, 512, 3), 20, np.uint8), small)])
    assert abs(int(out[200, 400, 0]) - 220) <= 2  # centre of the large face
    assert abs(int(out[200, 200, 0]) - 20) <= 2  # centre of the small face, pasted first, survives
    assert np.all(out[:, :100] == 100)
    # Where both crops reach, the larger face (pasted last) is on top.
    both = paste_faces(photo, [(np.full((512, 512, 3), 20, np.uint8), small),
                               (np.full((512, 512, 3), 220, np.uint8), large)])
    assert np.array_equal(both, out)  # the order given does not matter


def test_large_photo_memory_stays_bounded():
    """A 24-megapixel photo: paste-back works on the face's region, never a float copy of the photo."""
    photo = np.full((4000, 6000, 3), 128, np.uint8)
    whole_float = photo.size * 4
    faces = [(align_face(_landmarks((3000, 2000), 60)), 0.5), (align_face(_landmarks((1500, 1500), 1400)), 0.5)]
    for alignment, _ in faces:
        restored = np.full((512, 512, 3), 60, np.uint8)
        tracemalloc.start()
        paste_face(photo, restored, alignment)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < whole_float / 4, f"peak {peak / 1e6:.0f} MB for a {whole_float / 1e6:.0f} MB float photo"
    assert photo[2000, 3000, 0] == 60 and photo[1500, 1500, 0] == 60
