"""Header-only photo facts, the content hash and thumbnails, as the album scanner uses them."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from PIL import Image, ImageFile

from engine.imageio import (SUPPORTED_SUFFIXES, content_hash, make_thumbnail, read_image,
                            read_photo_info)

from imageio_helpers import gradient_rgb


def test_photo_info_from_the_header_only(photo_jpeg, monkeypatch):
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda self: (_ for _ in ()).throw(AssertionError("decoded")))
    info = read_photo_info(photo_jpeg)
    stat = photo_jpeg.stat()
    assert (info.width, info.height, info.orientation, info.format) == (128, 96, 1, "JPEG")
    assert info.date_taken == datetime(2019, 7, 14, 16, 5, 9)
    assert (info.camera_make, info.camera_model) == ("FaceMe Test Camera Co.", "Model 7")
    assert (info.file_size, info.mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def _with_exif(tmp_path, name, orientation=None, **sub):
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    for tag, value in sub.items():
        exif.get_ifd(0x8769)[int(tag[1:], 16)] = value
    path = tmp_path / name
    Image.fromarray(gradient_rgb(30, 50)).save(path, exif=exif.tobytes())
    return path


def test_dates_with_offset_subseconds_and_nonsense(tmp_path):
    path = _with_exif(tmp_path, "a.jpg", t9003="2021:12:31 23:59:58", t9011="+02:00", t9291="25")
    taken = read_photo_info(path).date_taken
    assert taken == datetime(2021, 12, 31, 23, 59, 58, 250000, tzinfo=timezone(timedelta(hours=2)))
    digitized = _with_exif(tmp_path, "b.jpg", t9004="2003:04:05 06:07:08")
    assert read_photo_info(digitized).date_taken == datetime(2003, 4, 5, 6, 7, 8)
    for name, value in (("c.jpg", "0000:00:00 00:00:00"), ("d.jpg", "    :  :     :  :  "),
                        ("e.jpg", "yesterday")):
        assert read_photo_info(_with_exif(tmp_path, name, t9003=value)).date_taken is None
    assert read_photo_info(_with_exif(tmp_path, "f.png")).date_taken is None


@pytest.mark.parametrize("orientation,size",
                         [(1, (50, 30)), (3, (50, 30)), (6, (30, 50)), (8, (30, 50))])
def test_photo_info_size_is_as_displayed(tmp_path, orientation, size):
    path = _with_exif(tmp_path, f"o{orientation}.jpg", orientation=orientation)
    info = read_photo_info(path)
    assert (info.width, info.height) == size and info.orientation == orientation
    assert read_image(path).pixels.shape[1::-1] == size


def test_heic_is_upright_and_described(tmp_path):
    import engine.imageio as imageio

    imageio._ensure_heif_opener()
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.heic"
    Image.fromarray(gradient_rgb(30, 50)).save(path, "HEIF", exif=exif.tobytes(), quality=90)
    info = read_photo_info(path)
    image = read_image(path)
    # pillow-heif turns the picture while encoding and libheif turns it back while decoding:
    # the photo is displayed 30 wide and 50 high either way.
    assert (info.width, info.height) == (30, 50) == (image.width, image.height)


def test_content_hash_is_sha256_of_the_bytes(tmp_path):
    path = tmp_path / "data.bin"
    data = os.urandom(3 * (1 << 20) + 17)
    path.write_bytes(data)
    assert content_hash(path) == hashlib.sha256(data).hexdigest()
    moved = tmp_path / "moved.bin"
    path.rename(moved)
    assert content_hash(moved) == hashlib.sha256(data).hexdigest()


def test_thumbnails(tmp_path):
    rgb = gradient_rgb(300, 500)
    png = tmp_path / "wide.png"
    Image.fromarray(rgb).save(png)
    thumb = make_thumbnail(png, 100)
    assert thumb.shape == (60, 100, 3) and thumb.dtype == np.uint8
    from_loaded = make_thumbnail(read_image(png), 100)
    assert np.abs(from_loaded.astype(int) - thumb).mean() < 2
    rgba = tmp_path / "alpha.png"
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])).save(rgba)
    assert make_thumbnail(rgba, 64).shape == (38, 64, 3)


def test_big_jpeg_thumbnail_uses_reduced_decoding(tmp_path, monkeypatch):
    big = tmp_path / "big.jpg"
    Image.fromarray(gradient_rgb(40, 60)).resize((3000, 2000)).save(big)
    sizes = []
    real_load = ImageFile.ImageFile.load

    def record(self):
        sizes.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", record)
    thumb = make_thumbnail(big, 256)
    assert thumb.shape == (171, 256, 3)
    assert sizes and sizes[0] == (375, 250)  # decoded at 1/8 scale, not 3000 × 2000


def test_supported_suffixes_are_lower_case_and_cover_the_formats():
    assert all(s == s.lower() and s.startswith(".") for s in SUPPORTED_SUFFIXES)
    assert {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif", ".avif", ".bmp",
            ".gif"} <= SUPPORTED_SUFFIXES


def test_photos_without_exif_log_no_warning(tmp_path, caplog):
    from PIL import Image

    path = tmp_path / "plain.webp"
    Image.new("RGB", (32, 24), (10, 20, 30)).save(path)
    with caplog.at_level("WARNING"):
        info = read_photo_info(path)
    assert info.date_taken is None and info.width == 32
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
