"""read_image_reduced: JPEGs decoded at DCT-reduced size, upright, with the factor back to full size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.errors import ImageReadError
from engine.imageio import read_image, read_image_reduced


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_large_jpeg_is_decoded_at_reduced_size_and_upright(shared, tmp_path, orientation):
    source = shared / "data" / "deepface_ids" / "images" / "person_01" / "img1.jpg"
    with Image.open(source) as im:
        picture = im.convert("RGB").resize((2000, 1500), Image.Resampling.LANCZOS)
    exif = Image.Exif()
    if orientation == 6:
        picture = picture.transpose(Image.Transpose.ROTATE_90)
        exif[0x0112] = 6
    path = tmp_path / "large.jpg"
    picture.save(path, quality=92, exif=exif.tobytes())

    full = read_image(path)
    reduced = read_image_reduced(path, min_pixels=300_000)
    assert (reduced.full_width, reduced.full_height) == (full.width, full.height) == (2000, 1500)
    assert reduced.scale == 2.0 and reduced.pixels.shape == (750, 1000, 3)  # 1/4 would be < 300,000 pixels
    assert reduced.pixels.flags["C_CONTIGUOUS"] and reduced.orientation == orientation
    # the same picture, the same way up: compare with the full decode box-averaged by 2
    halved = full.pixels.reshape(750, 2, 1000, 2, 3).mean(axis=(1, 3))
    assert np.abs(halved - reduced.pixels).mean() < 3.0

    whole = read_image_reduced(path, min_pixels=5_000_000)  # asks for more than there is
    assert whole.scale == 1.0 and whole.pixels.shape == full.pixels.shape


def test_other_formats_are_decoded_whole_and_errors_name_the_file(tmp_path):
    path = tmp_path / "p.png"
    Image.new("RGB", (640, 480), (10, 20, 30)).save(path)
    reduced = read_image_reduced(path, min_pixels=10_000)
    assert reduced.scale == 1.0 and reduced.pixels.shape == (480, 640, 3)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(ImageReadError, match="bad.jpg"):
        read_image_reduced(bad, min_pixels=10_000)
