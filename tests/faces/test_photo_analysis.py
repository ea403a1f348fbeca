"""analyse_photo decodes a large JPEG small for the first detection pass and larger only where needed:
the second pass (it sees the resolution it always had) and the embedding of a small face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import engine.imageio as imageio
from engine.faces import photo_analysis
from engine.faces.dlib_backend import DlibFaceAnalyzer
from engine.faces.types import box_iou


def _upscaled(source: Path, target: Path, long_side: int = 4000) -> Path:
    with Image.open(source) as im:
        picture = im.convert("RGB")
    scale = long_side / max(picture.size)
    picture = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.Resampling.LANCZOS)
    picture.save(target, quality=90)
    return target


@pytest.fixture
def decodes(monkeypatch):
    """The (height, width) of every reduced decode analyse_photo makes, and how often it decoded in full."""
    asked = {"reduced": [], "full": 0}
    reduced, full = imageio.read_image_reduced, imageio.read_image

    def counting_reduced(path, min_pixels, *args, **kwargs):
        image = reduced(path, min_pixels, *args, **kwargs)
        asked["reduced"].append(image.pixels.shape[:2])
        return image

    def counting_full(*args, **kwargs):
        asked["full"] += 1
        return full(*args, **kwargs)

    monkeypatch.setattr(imageio, "read_image_reduced", counting_reduced)
    monkeypatch.setattr(imageio, "read_image", counting_full)
    return asked


def test_a_portrait_is_decoded_once_at_a_quarter(shared, tmp_path, decodes):
    photo = _upscaled(shared / "data" / "deepface_ids" / "images" / "person_01" / "img4.jpg", tmp_path / "p.jpg")
    analyzer = DlibFaceAnalyzer()
    result = photo_analysis.analyse_photo(str(photo), analyzer)
    assert len(result.faces) == 1
    [(height, width)] = decodes["reduced"]
    assert width == -(-result.width // 4) and height * width < analyzer.second_pass_pixels
    assert decodes["full"] == 0
    face = result.faces[0][0]
    assert face.embedding is not None and abs(float(np.linalg.norm(face.embedding)) - 1) < 1e-5


def test_the_second_pass_runs_on_the_resolution_it_always_had(shared, tmp_path, decodes):
    # a group photo at 4000 px: its faces are small, so the first pass can't settle it
    photo = _upscaled(shared / "data" / "group_photos" / "images" / "dlib_2007_007763.jpg", tmp_path / "g.jpg")
    analyzer = DlibFaceAnalyzer()
    result = photo_analysis.analyse_photo(str(photo), analyzer)
    [first, second] = [h * w for h, w in decodes["reduced"]]
    assert first < analyzer.second_pass_pixels <= second
    # what the one-pass detector finds on the decode the scan made before it decoded small first
    before = imageio.read_image_reduced(photo, analyzer.second_pass_pixels)
    expected = [tuple(v * before.scale for v in f.box)
                for f in DlibFaceAnalyzer(first_pass_pixels=None).detect(before.pixels, embed=False)]
    found = [f.box for f, _ in result.faces]
    assert len(found) == len(expected) >= 6
    for box in found:
        assert max(box_iou(box, e) for e in expected) > 0.99


def test_a_small_face_is_embedded_from_a_decode_where_it_is_large_enough(shared, tmp_path, decodes):
    photo = _upscaled(shared / "data" / "group_photos" / "images" / "dlib_2007_007763.jpg", tmp_path / "g.jpg")
    analyzer = DlibFaceAnalyzer()
    embedded_at = []  # (face side in the pixels embedded from, those pixels' width)
    embed = analyzer.embed

    def recording(pixels, face):
        embedded_at.append((min(face.width, face.height), pixels.shape[1]))
        return embed(pixels, face)

    analyzer.embed = recording
    result = photo_analysis.analyse_photo(str(photo), analyzer)
    first_width = decodes["reduced"][0][1]
    small = [f for f, _ in result.faces if min(f.width, f.height) * first_width / result.width
             < photo_analysis.EMBED_MIN_FACE_PX]
    assert small and len(embedded_at) == len(small)  # the others were embedded with the detection
    for side, width in embedded_at:
        assert side >= photo_analysis.EMBED_MIN_FACE_PX and width < result.width  # large enough, not full size
    full = imageio.read_image(photo).pixels
    for face in small:  # and it is the face: the embedding agrees with one from the full photo
        assert float(face.embedding @ embed(full, face)) > 0.99
