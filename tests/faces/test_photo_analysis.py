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


def test_small_faces_are_graded_and_embedded_from_a_decode_where_they_are_large_enough(shared, tmp_path, decodes):
    from engine.people.quality import sharpness_of

    # a real 3.6 MP photo on a 24 MP canvas: its faces keep their real detail but are small in the
    # 1/8 decode the first pass uses
    canvas = Image.new("RGB", (6000, 4000), (200, 200, 200))
    with Image.open(shared / "data" / "group_photos" / "images" / "deepface_couple.jpg") as couple:
        canvas.paste(couple.convert("RGB"), (1800, 1200))
    photo = tmp_path / "canvas.jpg"
    canvas.save(photo, quality=92)
    analyzer = DlibFaceAnalyzer()
    embedded_at = []  # (face side in the pixels embedded from, those pixels' width)
    embed = analyzer.embed

    def recording(pixels, face):
        embedded_at.append((min(face.width, face.height), pixels.shape[1]))
        return embed(pixels, face)

    analyzer.embed = recording
    result = photo_analysis.analyse_photo(str(photo), analyzer)
    first_width = decodes["reduced"][0][1]
    small = [(f, q) for f, q in result.faces
             if min(f.width, f.height) * first_width / result.width < photo_analysis.DETAIL_MIN_FACE_PX]
    assert len(small) == len(result.faces) == 2
    assert len(embedded_at) == len(result.faces)  # each face embedded once
    for side, width in embedded_at:
        assert side >= photo_analysis.DETAIL_MIN_FACE_PX and width < result.width  # large enough, not full size
    full = imageio.read_image(photo).pixels
    first = imageio.read_image_reduced(photo, analyzer.decode_pixels)
    for face, quality in small:  # it is the face, graded as the full photo grades it
        assert float(face.embedding @ embed(full, face)) > 0.99
        at_full = sharpness_of(full, face.box)
        at_first = sharpness_of(first.pixels, tuple(v / first.scale for v in face.box))
        assert abs(quality.sharpness - at_full) < abs(at_first - at_full)  # not graded enlarged
