"""Real photos from ../shared/data read, describe and round-trip without surprises."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.imageio import (SUPPORTED_SUFFIXES, content_hash, make_thumbnail, read_image,
                            read_photo_info, write_image)

from imageio_helpers import sha256

FOLDERS = ("group_photos/images", "realworld_degraded/whole", "deepface_ids/images")


def _photos(shared: Path) -> list[Path]:
    photos = []
    for folder in FOLDERS:
        photos += [p for p in sorted((shared / "data" / folder).rglob("*"))
                   if p.suffix.lower() in SUPPORTED_SUFFIXES]
    return photos


def test_every_real_photo_reads_as_oriented_rgb(shared):
    photos = _photos(shared)
    assert len(photos) > 60
    formats = set()
    before = {p: p.stat().st_mtime_ns for p in photos}
    for path in photos:
        info = read_photo_info(path)
        image = read_image(path)
        formats.add(image.format)
        assert image.pixels.dtype == np.uint8 and image.pixels.ndim == 3
        assert image.pixels.shape[2] == 3 and image.pixels.flags["C_CONTIGUOUS"]
        assert (image.width, image.height) == (info.width, info.height), path
        assert info.file_size == path.stat().st_size and info.format == image.format
        if image.alpha is not None:
            assert image.alpha.shape == image.pixels.shape[:2]
        if image.format == "JPEG":
            assert 1 <= image.jpeg_quality <= 100
    # A WebP and a PNG hide behind .jpg / .jpeg names in these folders: content decides.
    assert {"JPEG", "PNG", "WEBP"} <= formats
    assert all(p.stat().st_mtime_ns == before[p] for p in photos)


def test_black_and_white_photos_are_recognised(shared):
    whole = shared / "data" / "realworld_degraded" / "whole"
    # Two black-and-white scans stored as colour JPEGs, one sepia print and one muted colour photo.
    assert read_image(whole / "diffbir_whole_real47_1.jpg").is_grayscale
    assert read_image(whole / "diffbir_real47_55.jpg").is_grayscale
    assert not read_image(whole / "bop_scratch_b.png").is_grayscale
    assert not read_image(whole / "diffbir_real47_56.jpg").is_grayscale


def test_round_trip_keeps_exif_icc_size_and_input(shared, tmp_path):
    source = shared / "data" / "group_photos" / "images" / "deepface_couple.jpg"
    digest = sha256(source)
    image = read_image(source)
    assert image.exif and image.icc_profile
    out = write_image(tmp_path / "restored.jpg", image.pixels, like=image)
    again = read_image(out)
    assert again.exif == image.exif and again.icc_profile == image.icc_profile
    assert (again.width, again.height) == (image.width, image.height)
    assert again.orientation == 1
    assert abs(int(again.jpeg_quality) - int(np.clip(image.jpeg_quality, 75, 95))) <= 1
    assert np.abs(again.pixels.astype(int) - image.pixels).mean() < 2.0
    assert sha256(source) == digest


def test_png_with_alpha_and_icc_round_trips_losslessly(shared, tmp_path):
    source = shared / "data" / "group_photos" / "images" / "gpen_Solvay_conference_1927.png"
    image = read_image(source)
    assert image.alpha is not None and image.icc_profile
    out = write_image(tmp_path / "solvay.png", image.pixels, like=image)
    again = read_image(out)
    np.testing.assert_array_equal(again.pixels, image.pixels)
    np.testing.assert_array_equal(again.alpha, image.alpha)
    assert again.icc_profile == image.icc_profile and again.exif == image.exif


def test_thumbnail_and_hash_of_a_big_real_photo(shared):
    source = shared / "data" / "group_photos" / "images" / "deepface_couple.jpg"
    thumb = make_thumbnail(source, 256)
    assert thumb.dtype == np.uint8 and max(thumb.shape[:2]) == 256
    info = read_photo_info(source)
    assert thumb.shape[1] / thumb.shape[0] == pytest.approx(info.width / info.height, rel=0.02)
    full = read_image(source)
    small = np.asarray(Image.fromarray(full.pixels).resize(thumb.shape[1::-1], Image.BILINEAR))
    assert np.abs(small.astype(int) - thumb).mean() < 6  # same picture, same orientation
    assert content_hash(source) == sha256(source)


_WATCHED: dict[str, list] = {}


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _WATCHED and isinstance(args[0], (str, bytes, os.PathLike)):
        name = os.fsdecode(args[0])
        if name in _WATCHED:
            _WATCHED[name].append((args[1], args[2]))


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one only acts while _WATCHED is set


def test_inputs_are_never_opened_for_writing(shared, tmp_path):
    """Python's audit hook sees every open() and os.open() with its mode and flags."""
    sources = [shared / "data" / "group_photos" / "images" / "deepface_couple.jpg",
               shared / "data" / "group_photos" / "images" / "gpen_Solvay_conference_1927.png"]
    heic = tmp_path / "phone.heic"
    import engine.imageio as imageio

    imageio._ensure_heif_opener()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(heic, "HEIF")
    sources.append(heic)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    for source in sources:
        _WATCHED.clear()
        _WATCHED[str(source)] = []
        try:
            image = read_image(source)
            read_photo_info(source)
            make_thumbnail(source)
            content_hash(source)
            with pytest.raises(Exception):
                write_image(source, image.pixels, like=image)
            opens = list(_WATCHED[str(source)])
        finally:
            _WATCHED.clear()
        assert len(opens) >= 4, opens  # the hook saw the reads: the check has teeth
        for mode, flags in opens:
            assert mode in (None, "r", "rb"), (source, mode)
            assert not (flags or 0) & write_flags, (source, flags)
