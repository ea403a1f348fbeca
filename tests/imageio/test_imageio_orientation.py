"""EXIF orientation 1–8: the pixels land upright, the returned EXIF says 1, the header agrees."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from engine.imageio import make_thumbnail, read_image, read_photo_info, reset_exif_orientation

from imageio_helpers import gradient_rgb


def stored_for(upright: np.ndarray, orientation: int) -> np.ndarray:
    """What a camera stores for an upright picture, from the EXIF definition of the tag: where the
    stored picture's row 0 and column 0 are when displayed (1: top/left … 8: left/bottom)."""
    h, w = upright.shape[:2]
    rows, cols = (h, w) if orientation <= 4 else (w, h)
    r, c = np.mgrid[0:rows, 0:cols]
    y, x = {
        1: (r, c), 2: (r, w - 1 - c), 3: (h - 1 - r, w - 1 - c), 4: (h - 1 - r, c),
        5: (c, r), 6: (c, w - 1 - r), 7: (h - 1 - c, w - 1 - r), 8: (h - 1 - c, r),
    }[orientation]
    return upright[y, x]


def _save(path, pixels, orientation, fmt, **options):
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Orientation Test"
    Image.fromarray(pixels).save(path, fmt, exif=exif.tobytes(), **options)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt,suffix,options", [("PNG", ".png", {}),
                                                 ("TIFF", ".tif", {}),
                                                 ("WEBP", ".webp", {"lossless": True})])
def test_lossless_formats_land_exactly_upright(tmp_path, orientation, fmt, suffix, options):
    upright = gradient_rgb(24, 40, seed=orientation)
    path = tmp_path / f"o{orientation}{suffix}"
    _save(path, stored_for(upright, orientation), orientation, fmt, **options)
    image = read_image(path)
    np.testing.assert_array_equal(image.pixels, upright)
    assert image.orientation == orientation
    exif = Image.Exif()
    exif.load(image.exif)
    assert exif[0x0112] == 1 and exif[0x010F] == "Orientation Test"
    info = read_photo_info(path)
    assert (info.width, info.height, info.orientation) == (40, 24, orientation)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_lands_upright_and_not_in_any_other_way(tmp_path, orientation):
    blurred = Image.fromarray(gradient_rgb(48, 80, seed=3)).filter(ImageFilter.GaussianBlur(1))
    upright = np.asarray(blurred)
    path = tmp_path / f"o{orientation}.jpg"
    _save(path, stored_for(upright, orientation), orientation, "JPEG", quality=95)
    image = read_image(path)
    assert image.pixels.shape == upright.shape and image.orientation == orientation
    assert np.abs(image.pixels.astype(int) - upright).mean() < 3
    stored = stored_for(upright, orientation)
    np.testing.assert_array_equal(_display_as(stored, orientation), upright)
    # Every other reading of the tag that gives the same shape is far off: the check has teeth.
    for other in range(1, 9):
        if other != orientation and (other <= 4) == (orientation <= 4):
            wrong = stored_for(image.pixels, orientation)  # back to what is stored…
            wrong = _display_as(wrong, other)              # …then displayed by the wrong tag
            assert np.abs(wrong.astype(int) - upright).mean() > 10
    thumb = make_thumbnail(path, 40)
    assert thumb.shape[:2] == (24, 40)
    small = np.asarray(Image.fromarray(upright).resize((40, 24)))
    assert np.abs(thumb.astype(int) - small).mean() < 8


def _display_as(stored: np.ndarray, orientation: int) -> np.ndarray:
    """The inverse of ``stored_for``, by search: the upright picture whose storage is ``stored``."""
    h, w = stored.shape[:2] if orientation <= 4 else stored.shape[1::-1][:2]
    index = np.arange(h * w).reshape(h, w)
    where = stored_for(index[:, :, None], orientation)[:, :, 0]
    flat = np.empty(h * w, dtype=np.int64)
    flat[where.ravel()] = np.arange(h * w)
    return stored.reshape(-1, stored.shape[2])[flat].reshape(h, w, stored.shape[2])


def test_reset_changes_only_the_orientation_value():
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Maker"
    exif.get_ifd(0x8769)[0x9003] = "2001:02:03 04:05:06"
    raw = exif.tobytes()
    tiff_only = raw[6:] if raw.startswith(b"Exif\x00\x00") else raw
    for raw in (tiff_only, b"Exif\x00\x00" + tiff_only):  # as in JPEG APP1 and as in PNG eXIf
        reset = reset_exif_orientation(raw)
        assert len(reset) == len(raw)
        assert sum(a != b for a, b in zip(reset, raw)) == 1
        back = Image.Exif()
        back.load(reset)
        assert back[0x0112] == 1 and back[0x010F] == "Maker"
        assert back.get_ifd(0x8769)[0x9003] == "2001:02:03 04:05:06"
    # Big-endian TIFF header, one IFD entry: orientation (0x0112), SHORT, count 1, value 8.
    big_endian = (b"MM\x00*\x00\x00\x00\x08" + b"\x00\x01"
                  + b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x08\x00\x00" + b"\x00\x00\x00\x00")
    assert reset_exif_orientation(big_endian)[18:20] == b"\x00\x01"
