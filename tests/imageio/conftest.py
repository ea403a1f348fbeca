"""Fixtures for the image I/O tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from imageio_helpers import gradient_rgb


@pytest.fixture
def photo_jpeg(tmp_path: Path) -> Path:
    """A small JPEG with EXIF (orientation 1, camera, date) and an sRGB ICC profile."""
    from PIL import ImageCms

    exif = Image.Exif()
    exif[0x010F] = "FaceMe Test Camera Co."
    exif[0x0110] = "Model 7"
    exif[0x0112] = 1
    exif.get_ifd(0x8769)[0x9003] = "2019:07:14 16:05:09"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "photo.jpg"
    Image.fromarray(gradient_rgb(96, 128)).save(path, "JPEG", quality=88, exif=exif.tobytes(),
                                                 icc_profile=icc)
    return path
