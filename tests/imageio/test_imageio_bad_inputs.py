"""The bad-input suite: every odd or broken file, generated here, gives the documented behaviour
with a message naming the file, and is byte-identical afterwards."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from engine.errors import ImageReadError
from engine.imageio import content_hash, make_thumbnail, read_image, read_photo_info

from imageio_helpers import gradient_rgb, png_bytes, sha256, swapped_cmyk_profile


@pytest.fixture
def unchanged():
    """Record files' hashes; at the end of the test every one must be byte-identical."""
    recorded: dict[Path, str] = {}

    def watch(path: Path) -> Path:
        recorded[path] = sha256(path)
        return path

    yield watch
    for path, digest in recorded.items():
        assert sha256(path) == digest, f"{path} changed while being read"


def _refused(path: Path, *phrases: str) -> str:
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert caught.value.path == path
    for phrase in phrases:
        assert phrase in message, message
    return message


def _jpeg_bytes(pixels: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def _png_file_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------- refused

def test_zero_byte_file(tmp_path, unchanged):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    _refused(unchanged(path), "file is empty (0 bytes)")
    with pytest.raises(ImageReadError, match="empty"):
        read_photo_info(path)


def test_missing_file_and_folder(tmp_path):
    _refused(tmp_path / "nowhere.jpg", "file not found")
    with pytest.raises(ImageReadError, match="file not found"):
        read_photo_info(tmp_path / "nowhere.jpg")
    with pytest.raises(ImageReadError, match="file not found"):
        content_hash(tmp_path / "nowhere.jpg")
    folder = tmp_path / "album.jpg"
    folder.mkdir()
    _refused(folder, "is a folder")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.jpg"
    path.write_bytes(_jpeg_bytes(gradient_rgb()))
    path.chmod(0)
    try:
        _refused(path, "permission denied")
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_jpeg(tmp_path, unchanged, fraction):
    data = _jpeg_bytes(gradient_rgb(200, 300), quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * fraction)])
    _refused(unchanged(path), "file is truncated", "bytes not processed")


def test_truncated_png(tmp_path, unchanged):
    data = _png_file_bytes(gradient_rgb(200, 300))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    _refused(unchanged(path), "file is truncated")


def test_header_cut_short(tmp_path, unchanged):
    path = tmp_path / "stub.jpg"
    path.write_bytes(_jpeg_bytes(gradient_rgb())[:40])
    _refused(unchanged(path), "truncated or damaged")


@pytest.mark.parametrize("content", [b"<html><body>404 Not Found</body></html>\n",
                                     b"PK\x03\x04 a zip file really",
                                     bytes(range(256)) * 8])
def test_not_an_image(tmp_path, unchanged, content):
    path = tmp_path / "holiday.jpg"
    path.write_bytes(content)
    _refused(unchanged(path), "not an image file")
    with pytest.raises(ImageReadError, match="not an image file"):
        read_photo_info(path)


def _huge_png(tmp_path: Path) -> Path:
    path = tmp_path / "bomb.png"
    # A real PNG signature and IHDR claiming 30,000 × 30,000 RGB, followed by one tiny IDAT:
    # decoding it would allocate 2.7 GB.
    path.write_bytes(png_bytes(30_000, 30_000, 8, 2, b"\x00" * 100))
    return path


def _huge_jpeg(tmp_path: Path) -> Path:
    data = bytearray(_jpeg_bytes(gradient_rgb(16, 16)))
    sof = data.index(b"\xff\xc0")
    # SOF0: marker, length (2), precision (1), height (2), width (2)
    data[sof + 5: sof + 9] = struct.pack(">HH", 30_000, 30_000)
    path = tmp_path / "bomb.jpg"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("make", [_huge_png, _huge_jpeg])
def test_30000_by_30000_header_is_refused_without_decoding(tmp_path, unchanged, monkeypatch, make):
    path = unchanged(make(tmp_path))

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    message = _refused(path, "image is too large", "30000 × 30000 pixels", "900 megapixels")
    assert "limit is 200 megapixels" in message
    # The album scanner can still describe it from the header; the thumbnailer refuses a PNG this
    # size (a JPEG it would decode at 1/8 scale, which this fake file's data cannot feed).
    info = read_photo_info(path)
    assert (info.width, info.height) == (30_000, 30_000)
    if path.suffix == ".png":
        with pytest.raises(ImageReadError, match="too large"):
            make_thumbnail(path)


def test_pixel_limit_is_the_callers(tmp_path):
    path = tmp_path / "small.png"
    path.write_bytes(_png_file_bytes(gradient_rgb(48, 64)))
    with pytest.raises(ImageReadError, match=r"64 × 48 pixels"):
        read_image(path, max_pixels=1000)
    assert read_image(path, max_pixels=64 * 48).pixels.shape == (48, 64, 3)


def test_pillows_own_bomb_guard_never_preempts_ours(tmp_path, monkeypatch):
    path = tmp_path / "ok.png"
    path.write_bytes(_png_file_bytes(gradient_rgb(48, 64)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 3072 pixels: past 2× Pillow's limit
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    assert read_image(path).pixels.shape == (48, 64, 3)
    assert read_photo_info(path).width == 64
    with pytest.raises(ImageReadError, match="too large"):
        read_image(path, max_pixels=3000)


# ---------------------------------------------------------------------------------------- handled

def test_cmyk_jpeg_adobe_without_profile(tmp_path, unchanged):
    rgb = gradient_rgb(40, 60)
    cmyk = Image.fromarray(rgb).convert("CMYK")
    path = tmp_path / "cmyk.jpg"
    cmyk.save(path, "JPEG", quality=95)  # libjpeg writes the Adobe marker and inverted CMYK
    assert Image.open(path).info.get("adobe") is not None
    image = read_image(unchanged(path))
    assert image.original_mode == "CMYK" and image.icc_profile is None
    assert np.abs(image.pixels.astype(int) - np.asarray(cmyk.convert("RGB"))).mean() < 3


def test_cmyk_jpeg_without_adobe_marker_is_not_inverted(tmp_path, unchanged):
    rgb = gradient_rgb(40, 60)
    cmyk = np.asarray(Image.fromarray(rgb).convert("CMYK"))
    buffer = io.BytesIO()
    # Pillow inverts CMYK when writing (Adobe convention); hand it the inverse so the file holds
    # plain CMYK, then cut the Adobe APP14 segment out, as non-Adobe writers produce.
    Image.fromarray(255 - cmyk, "CMYK").save(buffer, "JPEG", quality=95)
    data = buffer.getvalue()
    app14 = data.index(b"\xff\xee")
    (length,) = struct.unpack(">H", data[app14 + 2: app14 + 4])
    path = tmp_path / "plain_cmyk.jpg"
    path.write_bytes(data[:app14] + data[app14 + 2 + length:])
    assert "adobe" not in Image.open(path).info
    image = read_image(unchanged(path))
    expected = np.asarray(Image.fromarray(cmyk, "CMYK").convert("RGB")).astype(int)
    assert np.abs(image.pixels.astype(int) - expected).mean() < 3


def test_cmyk_jpeg_converted_through_its_icc_profile(tmp_path, unchanged):
    cmyk = np.zeros((8, 24, 4), np.uint8)
    cmyk[:, :8, 0] = 255   # cyan ink
    cmyk[:, 8:16, 1] = 255  # magenta ink
    cmyk[:, 16:, 2] = 255  # yellow ink
    path = tmp_path / "cmyk_icc.jpg"
    Image.fromarray(cmyk, "CMYK").save(path, "JPEG", quality=100, subsampling=0,
                                       icc_profile=swapped_cmyk_profile())
    image = read_image(unchanged(path))
    # Through the embedded (swapped-inks) profile cyan ink comes out yellow, magenta magenta and
    # yellow cyan; a profile-blind conversion would give cyan, magenta, yellow.
    centre = image.pixels[4, [4, 12, 20]].astype(int)
    assert np.abs(centre - [[255, 255, 0], [255, 0, 255], [0, 255, 255]]).max() < 40, centre
    assert image.icc_profile is None  # the pixels are sRGB now


def test_16_bit_gray_png(tmp_path, unchanged):
    values = (np.arange(64 * 32, dtype=np.uint32).reshape(32, 64) * 32).astype(np.uint16)
    path = tmp_path / "gray16.png"
    Image.fromarray(values).save(path)
    image = read_image(unchanged(path))
    assert image.bit_depth == 16 and image.is_grayscale
    expected = np.round(values / 257).astype(int)
    assert np.abs(image.pixels[:, :, 0].astype(int) - expected).max() <= 1
    assert (image.pixels[:, :, 0] == image.pixels[:, :, 2]).all()


def test_16_bit_rgb_png(tmp_path, unchanged):
    rgb16 = (gradient_rgb(20, 30).astype(np.uint16) * 257 + 100)  # not a plain 8→16 widening
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb16)
    path = tmp_path / "rgb16.png"
    path.write_bytes(png_bytes(30, 20, 16, 2, rows))
    image = read_image(unchanged(path))
    assert image.bit_depth == 16 and not image.is_grayscale
    assert np.abs(image.pixels.astype(int) - rgb16.astype(int) / 257).max() <= 1


@pytest.mark.parametrize("suffix", [".tiff", ".png"])
def test_16_bit_rgba_from_another_writer(tmp_path, unchanged, suffix):
    import cv2

    rgba16 = np.random.default_rng(0).integers(0, 65536, (20, 30, 4)).astype(np.uint16)
    path = tmp_path / f"rgba16{suffix}"
    assert cv2.imwrite(str(path), rgba16[:, :, [2, 1, 0, 3]])  # OpenCV writes BGRA
    image = read_image(unchanged(path))
    assert image.bit_depth == 16 and image.original_mode == "RGBA"
    assert np.abs(image.pixels.astype(int) - rgba16[:, :, :3] / 257).max() <= 1
    assert np.abs(image.alpha.astype(int) - rgba16[:, :, 3] / 257).max() <= 1


def test_rgba_png(tmp_path, unchanged):
    rgba = np.dstack([gradient_rgb(30, 40), np.tile(np.arange(40, dtype=np.uint8) * 6, (30, 1))])
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = read_image(unchanged(path))
    np.testing.assert_array_equal(image.pixels, rgba[:, :, :3])
    np.testing.assert_array_equal(image.alpha, rgba[:, :, 3])


def test_gray_with_alpha_png(tmp_path, unchanged):
    la = np.dstack([np.full((10, 12), 90, np.uint8), np.full((10, 12), 200, np.uint8)])
    path = tmp_path / "la.png"
    Image.fromarray(la, "LA").save(path)
    image = read_image(unchanged(path))
    assert image.is_grayscale and (image.pixels == 90).all() and (image.alpha == 200).all()


def test_palette_gif_with_transparency_and_frames(tmp_path, unchanged):
    palette_frames = []
    for shade in (40, 200):
        frame = Image.new("P", (16, 12), 1)
        frame.putpalette([0, 0, 0, 255, 0, 0, shade, shade, 255] + [0] * 759)
        frame.paste(2, (0, 0, 8, 12))
        frame.paste(0, (0, 10, 16, 12))  # the two bottom rows use the transparent colour
        palette_frames.append(frame)
    path = tmp_path / "anim.gif"
    palette_frames[0].save(path, save_all=True, append_images=palette_frames[1:], transparency=0)
    image = read_image(unchanged(path))
    assert image.format == "GIF" and image.original_mode == "P"
    assert image.pixels[0, 12].tolist() == [255, 0, 0]
    assert image.pixels[0, 0].tolist() == [40, 40, 255]  # the first frame, not the second
    assert (image.alpha[10:] == 0).all() and (image.alpha[:10] == 255).all()


def test_palette_png_without_transparency(tmp_path, unchanged):
    picture = Image.fromarray(gradient_rgb(20, 30)).quantize(16)
    path = tmp_path / "pal.png"
    picture.save(path)
    image = read_image(unchanged(path))
    assert image.alpha is None
    np.testing.assert_array_equal(image.pixels, np.asarray(picture.convert("RGB")))


@pytest.mark.parametrize("mode,values,expected", [
    ("1", np.array([[0, 1] * 4] * 3, bool), [0, 255]),
    ("I", np.array([[0, 30000, 65535, 1000]], np.int32), [0, 117, 255, 4]),
    ("F", np.array([[0.0, 0.5, 1.0, 0.25]], np.float32), [0, 128, 255, 64]),
])
def test_unusual_gray_modes(tmp_path, unchanged, mode, values, expected):
    path = tmp_path / f"mode_{mode}.tif"
    Image.fromarray(values).save(path)
    image = read_image(unchanged(path))
    assert image.is_grayscale and image.original_mode == mode
    row = image.pixels[0, : len(expected), 0].tolist()
    assert np.abs(np.array(row) - expected).max() <= 1, row


@pytest.mark.parametrize("fmt,suffix", [("BMP", ".bmp"), ("WEBP", ".webp"), ("HEIF", ".heic"),
                                        ("AVIF", ".avif"), ("TIFF", ".tiff")])
def test_other_formats_read(tmp_path, unchanged, fmt, suffix):
    import engine.imageio as imageio

    imageio._ensure_heif_opener()
    rgb = gradient_rgb(32, 48)
    path = tmp_path / f"picture{suffix}"
    options = {"quality": 95} if fmt in ("WEBP", "HEIF", "AVIF") else {}
    Image.fromarray(rgb).save(path, fmt, **options)
    image = read_image(unchanged(path))
    assert image.format == fmt and image.pixels.shape == (32, 48, 3)
    assert np.abs(image.pixels.astype(int) - rgb).mean() < 6


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow's own word on the damage
def test_damaged_exif_does_not_stop_a_photo(tmp_path, unchanged):
    data = _jpeg_bytes(gradient_rgb())
    # An APP1 Exif segment whose TIFF structure points nowhere (IFD offset far past the end).
    junk = b"Exif\x00\x00II*\x00\xff\xff\xff\x7f" + bytes(range(40))
    segment = b"\xff\xe1" + struct.pack(">H", len(junk) + 2) + junk
    path = tmp_path / "bad_exif.jpg"
    path.write_bytes(data[:2] + segment + data[2:])
    image = read_image(unchanged(path))
    assert image.pixels.shape == (48, 64, 3) and image.orientation == 1
    info = read_photo_info(path)
    assert info.date_taken is None and info.width == 64


from hypothesis import given, settings, strategies as st  # noqa: E402


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([b"", b"Exif\x00\x00", b"Exif\x00\x00II*\x00",
                                                  b"MM\x00*\x00\x00\x00\x08"]))
def test_exif_reset_never_raises_on_garbage(blob, prefix):
    from engine.imageio import reset_exif_orientation

    result = reset_exif_orientation(prefix + blob)
    assert isinstance(result, bytes)
