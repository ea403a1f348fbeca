"""Reading any photo into oriented RGB pixels plus its metadata, and writing outputs atomically.

Everything that touches a photo file goes through here: restoration (read, then write the result),
the album scanner (header-only facts, content hash, thumbnails) and the GUI (thumbnails).

What each kind of input becomes (`read_image`)
---------------------------------------------
- JPEG, PNG, TIFF, WebP, BMP, GIF (first frame), MPO (first picture), AVIF (Pillow's own plugin) and
  HEIC/HEIF (pillow-heif, registered lazily on first use; libheif applies the file's rotation
  itself) → ``pixels``: H×W×3 ``uint8`` RGB. The format is recognised from the file's bytes, not its
  name (a WebP named ``.jpg`` reads fine).
- EXIF orientation 2–8 is applied to the pixels (and to the alpha); ``orientation`` records which
  one was applied and ``exif`` is returned with the orientation tag rewritten to 1, byte-for-byte
  otherwise, so that writing it back never rotates the picture twice. The XMP packet (``xmp``:
  keywords, ratings, people tags of photo managers) is kept too, its ``tiff:Orientation`` likewise
  set to 1.
- Grayscale (``1``, ``L``, ``LA``, ``I;16*``, ``I``, ``F``) → the gray value in all three channels,
  ``is_grayscale=True``. An RGB file whose channels are nearly equal also counts as grayscale
  (channel spread: median ≤ 4 and 99th percentile ≤ 16 on a sample): black-and-white scans are often
  stored as colour JPEGs; sepia-toned and muted colour photos measure well above that and stay
  colour.
- 16-bit (``I;16`` gray, 16-bit RGB/RGBA PNG and TIFF) → 8 bit, within one level of value / 257
  (gray is rounded, colour keeps the high byte as Pillow decodes it); ``bit_depth=16`` tells the
  caller the source had more precision. HEIF/AVIF of 10 or 12 bits arrive as 8 bits from their
  decoders. ``I`` (32-bit int) and ``F`` (float) are scaled by their range: ≤ 1.0 floats as 0‥1, ≤
  255 as 8-bit, ≤ 65535 as 16-bit, else by the maximum.
- Alpha (``RGBA``, ``LA``, ``PA``, palette with a transparent colour) → ``alpha`` H×W ``uint8``; the
  colour channels are returned un-premultiplied, as stored.
- Palette (``P``) → RGB through the palette.
- CMYK (JPEG or TIFF) → RGB through the embedded ICC profile with LittleCMS when there is one
  (rendering intent perceptual), else Pillow's plain CMYK→RGB formula. Pillow reads every CMYK JPEG
  as Adobe's inverted CMYK; a CMYK JPEG *without* the Adobe APP14 marker is un-inverted first. The
  CMYK ICC profile no longer describes the pixels, so ``icc_profile`` is ``None`` (the pixels are
  sRGB).
- Other modes (``YCbCr``, ``LAB``, ``HSV``, ``RGBX``…) → Pillow's conversion to RGB.
- RGB and gray pixels stay in the file's own colour space (an Adobe RGB photo is not converted to
  sRGB): ``icc_profile`` travels to the output with them, so the result displays as the input did.

What fails (always an ``ImageReadError`` whose message starts with the file's path)
---------------------------------------------------------------------------------
- missing file → "file not found"; a folder → "is a folder, not an image file"; unreadable →
  "permission denied (cannot read the file)";
- zero bytes → "file is empty (0 bytes)";
- unknown content → "not an image file (or not a format FaceMe Studio can read)"; a file that starts
  like an image but whose header cannot be read → "file is truncated or damaged (…)";
- decoding stops early → "file is truncated (…)"; other decoder failures → "file is damaged (…)";
- more than ``max_pixels`` pixels (default ``DEFAULT_MAX_PIXELS``, 200 megapixels) → "image is too
  large: W × H pixels …". The size comes from the header: nothing is decoded or allocated. Pillow's
  own decompression-bomb guard never fires first: a file past Pillow's limit is re-opened
  header-only to report its size (or to read it anyway when the caller's ``max_pixels`` allows it).
Truncated files are refused, never silently completed with gray. Pillow's own warnings (a damaged
EXIF block, its DecompressionBombWarning for 89–179 megapixels) are left alone: silencing them
would need ``warnings.catch_warnings``, which is not thread-safe, and the GUI reads in threads.

The input file is only ever opened with mode ``"rb"``.

Writing (`write_image`)
-----------------------
- Atomic: the picture is encoded into a temporary file in the destination folder
  (``.NAME.XXXXXXXX.faceme-partial``, hidden, not an image suffix, so scanners skip it), flushed,
  fsync'ed, read back (size and the very bytes encoded: not decoded again), given the usual permissions
  (0666 minus the umask) and renamed over the target with ``os.replace``; the folder is fsync'ed
  too. ``write_image_with_hash`` returns the SHA-256 of what was written (``encode_image`` then
  ``write_encoded`` do the same in two steps, for a caller that records the hash before the file
  appears), and ``verify_output(path, sha256)`` later tells whether an existing output is still that
  file and decodes (a resumed batch trusts an output only then). Any failure removes the temporary file, leaves an
  existing target untouched, and raises ``ImageWriteError`` naming the target: "disk is full",
  "folder is not writable", "folder does not exist", "… is not a folder", "only N of M bytes reached
  the disk", "does not decode", or the system's message.
  Only a killed process can leave a temporary behind; ``remove_partial_writes(folder)`` clears them
  on resume.
- Format: ``format`` argument, else the path's suffix, else ``like.format`` (MPO is written as
  JPEG).
- Metadata from ``like``: EXIF (orientation already 1), the ICC profile and the XMP packet, in every
  format that can carry them (JPEG, PNG, TIFF, WebP, HEIF, AVIF; BMP and GIF carry none). A gray ICC
  profile is dropped when colour is written and an RGB one when gray is (it would not describe the
  pixels); an EXIF or XMP block over a JPEG segment's 64 KiB is dropped with a warning.
- JPEG quality: ``quality`` argument, else ``like.jpeg_quality`` clamped to [75, 95], else 95;
  chroma subsampling 4:4:4 at quality ≥ 90, else 4:2:0. WebP/HEIF/AVIF: ``quality`` or 95/90/90.
- Grayscale: written as ``L`` when ``like.is_grayscale``, the pixels are gray (channel spread ≤ 2)
  and ``like``'s ICC profile is absent or a gray one.
- Alpha: ``like.alpha`` is re-attached when the format keeps alpha (PNG, WebP, TIFF, HEIF, AVIF,
  GIF) and its size matches the pixels; JPEG and BMP drop it. An H×W×4 array is written as RGBA as
  given.
- TIFF is written uncompressed (libtiff's compressing writer cannot carry the EXIF sub-IFD).
- 16-bit sources are written as 8-bit (the pixels are 8-bit; the extra precision is not kept).
- Refused with ``UsageError`` (exit code 2): the output is the input (``like.path``), by path,
  through a symlink, or as a hard link of it (same device and inode).

For the album scanner
---------------------
``read_photo_info`` (header only: displayed size, orientation, format, EXIF date taken with its
offset and camera (both read with exifread), file size, mtime), ``content_hash`` (SHA-256 of the
bytes, to recognise moved files), ``make_thumbnail`` (JPEGs decoded at 1/2–1/8 scale) and ``SUPPORTED_SUFFIXES``.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import logging
import os
import re
import stat
import struct
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
from PIL import Image, ImageCms, ImageFile, UnidentifiedImageError

from engine.errors import ImageReadError, ImageWriteError, UsageError

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 200_000_000
"""200 megapixels: above every consumer camera (the largest phones are ~200 MP) while keeping one
decoded copy under 600 MB; panoramas beyond it need an explicit ``max_pixels``."""

PARTIAL_SUFFIX = ".faceme-partial"
"""Suffix of the hidden temporary file (``.NAME.XXXX.faceme-partial``) a write goes through."""

SUPPORTED_SUFFIXES: frozenset[str] = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".webp", ".bmp", ".dib", ".gif",
    ".heic", ".heif", ".hif", ".avif", ".mpo",
})

_ORIENTATION_TAG = 0x0112

_TRANSPOSE_FOR_ORIENTATION = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}

_ALPHA_FORMATS = {"PNG", "WEBP", "TIFF", "HEIF", "AVIF", "GIF"}
_EXIF_FORMATS = {"JPEG", "PNG", "TIFF", "WEBP", "HEIF", "AVIF"}
_ICC_FORMATS = {"JPEG", "PNG", "TIFF", "WEBP", "HEIF", "AVIF"}

_IMAGE_MAGIC = (
    b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*", b"BM",
)

_heif_lock = threading.Lock()
_heif_registered = False


def _ensure_heif_opener() -> None:
    """Teach Pillow HEIC/HEIF once, on first use (importing pillow-heif takes tens of ms)."""
    global _heif_registered
    if _heif_registered:
        return
    with _heif_lock:
        if _heif_registered:
            return
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except Exception as exc:  # pragma: no cover - an install without pillow-heif
            log.warning("HEIC/HEIF support unavailable: %s", exc)
        _heif_registered = True


# --------------------------------------------------------------------------------------------------
# Results


@dataclass
class LoadedImage:
    """A decoded photo: oriented 8-bit RGB pixels plus what is needed to write a faithful output."""

    path: Path
    pixels: np.ndarray
    format: str
    exif: bytes | None = None
    icc_profile: bytes | None = None
    original_mode: str = "RGB"
    is_grayscale: bool = False
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    jpeg_quality: int | None = None
    orientation: int = 1
    xmp: bytes | None = None
    """The XMP packet (keywords, ratings, people tags of photo managers), orientation reset to 1."""

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


@dataclass
class PhotoInfo:
    """Header-only facts about a photo, for the album catalog. ``width``/``height`` are as displayed
    (after EXIF orientation)."""

    path: Path
    width: int
    height: int
    orientation: int
    format: str
    mode: str
    date_taken: datetime | None
    camera_make: str | None
    camera_model: str | None
    file_size: int
    mtime: float
    mtime_ns: int


# --------------------------------------------------------------------------------------------------
# Opening (header only) with clear errors


def _stat_for_reading(path: Path) -> os.stat_result:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageReadError("file not found", path) from None
    except PermissionError:
        raise ImageReadError("permission denied (cannot read the file)", path) from None
    except OSError as exc:
        raise ImageReadError(f"cannot read the file ({exc.strerror or exc})", path) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError("is a folder, not an image file", path)
    if st.st_size == 0:
        raise ImageReadError("file is empty (0 bytes)", path)
    return st


def _open_for_reading(path: Path) -> IO[bytes]:
    try:
        return open(path, "rb")  # never anything but "rb": the input is not ours to change
    except FileNotFoundError:
        raise ImageReadError("file not found", path) from None
    except PermissionError:
        raise ImageReadError("permission denied (cannot read the file)", path) from None
    except IsADirectoryError:
        raise ImageReadError("is a folder, not an image file", path) from None
    except OSError as exc:
        raise ImageReadError(f"cannot read the file ({exc.strerror or exc})", path) from None


def _looks_like_image(prefix: bytes) -> bool:
    if prefix.startswith(_IMAGE_MAGIC):
        return True
    if prefix[:4] == b"RIFF" and prefix[8:12] == b"WEBP":
        return True
    return prefix[4:8] == b"ftyp"  # HEIF / AVIF / other ISO-BMFF


def _open_without_bomb_check(fp: IO[bytes], path: Path) -> ImageFile.ImageFile | None:
    """Identify the file the way ``Image.open`` does, minus Pillow's decompression-bomb check, so a
    huge image can still be *described* from its header (and read when the caller allows it)."""
    fp.seek(0)
    prefix = fp.read(16)
    Image.init()
    for fmt in list(Image.ID):
        factory, accept = Image.OPEN[fmt]
        if accept is not None:
            verdict = accept(prefix)
            if not verdict or isinstance(verdict, str):
                continue
        fp.seek(0)
        try:
            return factory(fp, str(path))
        except (SyntaxError, IndexError, TypeError, struct.error, OSError, ValueError):
            continue
    return None


def _open_header(fp: IO[bytes], path: Path) -> ImageFile.ImageFile:
    """``Image.open`` on an already-open file, errors made ImageReadError. Decodes nothing."""
    _ensure_heif_opener()
    try:
        return Image.open(fp)
    except Image.DecompressionBombError:
        im = _open_without_bomb_check(fp, path)
        if im is None:
            raise ImageReadError("image is too large to read (its header exceeds Pillow's limit)",
                                 path) from None
        return im
    except UnidentifiedImageError:
        fp.seek(0)
        prefix = fp.read(16)
        if _looks_like_image(prefix):
            raise ImageReadError("file is truncated or damaged (its header cannot be read)",
                                 path) from None
        raise ImageReadError("not an image file (or not a format FaceMe Studio can read)",
                             path) from None
    except (SyntaxError, struct.error, EOFError, ValueError, IndexError, OSError) as exc:
        raise ImageReadError(f"file is truncated or damaged ({exc})", path) from None


def _check_pixel_limit(im: Image.Image, path: Path, max_pixels: int) -> None:
    width, height = im.size
    if width * height > max_pixels:
        raise ImageReadError(
            f"image is too large: {width} × {height} pixels ({width * height / 1e6:.0f} "
            f"megapixels; the limit is {max_pixels / 1e6:.0f} megapixels)", path)
    if width <= 0 or height <= 0:
        raise ImageReadError(f"file is damaged (its header says {width} × {height} pixels)", path)


def _decode(im: Image.Image, path: Path) -> None:
    try:
        im.load()
    except Image.DecompressionBombError:  # a frame larger than the header claimed
        raise ImageReadError("image is too large (a frame exceeds the size limit)", path) from None
    except MemoryError:
        width, height = im.size
        raise ImageReadError(f"not enough memory to decode {width} × {height} pixels",
                             path) from None
    except (OSError, SyntaxError, EOFError, ValueError, struct.error, IndexError) as exc:
        text = str(exc) or type(exc).__name__
        if "truncat" in text.lower() or isinstance(exc, EOFError):
            # Pillow says "image file is truncated (N bytes not processed)": keep only the detail.
            detail = re.sub(r"^image file is truncated\s*", "", text).strip().strip("()")
            raise ImageReadError(f"file is truncated ({detail})" if detail else "file is truncated",
                                 path) from None
        raise ImageReadError(f"file is damaged ({text})", path) from None


# --------------------------------------------------------------------------------------------------
# EXIF


def _orientation_of(im: Image.Image) -> int:
    """The EXIF orientation still to be applied to ``im`` as it stands (1 when none)."""
    try:
        value = int(im.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # a damaged EXIF block must not stop reading the picture
        return 1
    return value if 1 <= value <= 8 else 1


def _declared_orientation(im: Image.Image) -> int:
    """The orientation the file declares. pillow-heif applies it while decoding (and resets the EXIF
    tag), keeping the declared value in ``info["original_orientation"]``."""
    if im.format == "HEIF":
        value = im.info.get("original_orientation") or 1
        return int(value) if 1 <= int(value) <= 8 else 1
    return _orientation_of(im)


def _apply_pending_orientation(im: Image.Image) -> Image.Image:
    """Transpose a *decoded* picture by whatever orientation its decoder has not applied yet.
    Pillow's TIFF decoder transposes in place while loading (and drops the tag), HEIF arrives
    upright; asking after decoding keeps every format from being turned twice."""
    if im.format == "HEIF":
        return im
    for method in _TRANSPOSE_FOR_ORIENTATION.get(_orientation_of(im), ()):
        im = im.transpose(method)
    return im


def _raw_exif(im: Image.Image) -> bytes | None:
    raw = im.info.get("exif")
    if isinstance(raw, bytes) and raw:
        return raw
    try:
        exif = im.getexif()
    except Exception:
        return None
    if not len(exif):
        return None
    if im.format == "TIFF":
        # TIFF keeps its tags in its own IFD; carry the camera tags over, not the layout ones.
        for tag in (0x0100, 0x0101, 0x0102, 0x0103, 0x0106, 0x0111, 0x0115, 0x0116, 0x0117,
                    0x011C, 0x0140, 0x0152, 0x0153, 0x8773, 0x02BC, 0x83BB, 0x8649, 0x0142, 0x0143,
                    0x0144, 0x0145, 0x0147, 0x014A, 0x0150, 0x0151, 0x0155, 0x0156):
            exif.pop(tag, None)
    try:
        return exif.tobytes()
    except Exception:
        return None


def reset_exif_orientation(raw: bytes) -> bytes:
    """The EXIF block with its orientation tag set to 1, changed in place (two bytes) so every other
    byte — maker notes with absolute offsets included — stays as it was. Falls back to Pillow's
    re-serialisation if the block cannot be patched."""
    header = b"Exif\x00\x00" if raw.startswith(b"Exif\x00\x00") else b""
    tiff = raw[len(header):]
    try:
        if tiff[:4] == b"II*\x00":
            endian = "<"
        elif tiff[:4] == b"MM\x00*":
            endian = ">"
        else:
            raise ValueError("no TIFF header")
        (ifd_offset,) = struct.unpack(endian + "I", tiff[4:8])
        (count,) = struct.unpack(endian + "H", tiff[ifd_offset:ifd_offset + 2])
        for i in range(count):
            entry = ifd_offset + 2 + 12 * i
            tag, typ, n = struct.unpack(endian + "HHI", tiff[entry:entry + 8])
            if tag == _ORIENTATION_TAG:
                if typ != 3 or n != 1:
                    raise ValueError("unexpected orientation type")
                patched = bytearray(tiff)
                patched[entry + 8:entry + 10] = struct.pack(endian + "H", 1)
                return header + bytes(patched)
        return raw  # no orientation tag at all: nothing to reset
    except (ValueError, struct.error):
        exif = Image.Exif()
        try:
            exif.load(raw)
            exif[_ORIENTATION_TAG] = 1
            return exif.tobytes()
        except Exception:
            log.warning("EXIF block could not be parsed; dropping it")
            return b""


def _xmp_of(im: Image.Image) -> bytes | None:
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return xmp if isinstance(xmp, bytes) and xmp.strip(b"\x00 ") else None


_XMP_ORIENTATION = re.compile(rb'(tiff:Orientation\s*=\s*["\']|<tiff:Orientation>\s*)[1-8]')


def reset_xmp_orientation(xmp: bytes) -> bytes:
    """The XMP packet with ``tiff:Orientation`` (attribute or element form) set to 1: some viewers
    honour it, and the pixels are upright now."""
    return _XMP_ORIENTATION.sub(lambda m: m.group(1) + b"1", xmp)


# --------------------------------------------------------------------------------------------------
# Pixels


def estimate_jpeg_quality(quantization: dict[int, Any] | None) -> int | None:
    """The IJG quality (1–100) whose scaled standard tables best match the file's quantisation
    tables (the usual estimate; exact for files written by libjpeg/Pillow, close for cameras)."""
    if not quantization:
        return None
    tables = [np.asarray(quantization[i], dtype=np.float64) for i in (0, 1)
              if i in quantization and len(quantization[i]) == 64]
    if not tables:
        return None
    errors = np.zeros(100)
    for index, table in enumerate(tables):
        errors += np.abs(_ijg_tables()[:, index, :] - np.sort(table)).sum(axis=1)
    return int(np.argmin(errors)) + 1


@functools.cache
def _ijg_tables() -> np.ndarray:
    """libjpeg's luminance and chrominance tables at qualities 1–100, shape (100, 2, 64), values
    sorted so the comparison does not depend on zigzag or natural order."""
    quality = np.arange(1, 101, dtype=np.float64)[:, None, None]
    scale = np.where(quality < 50, 5000 / quality, 200 - 2 * quality)
    standard = np.stack([_STD_LUMA, _STD_CHROMA])[None]
    return np.sort(np.clip(np.floor((standard * scale + 50) / 100), 1, 255), axis=2)


_STD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float64)
_STD_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32, dtype=np.float64)


def _is_16bit(im: Image.Image) -> bool:
    if im.mode.startswith("I;16"):
        return True
    for tile in getattr(im, "tile", None) or []:
        args = tile[3] if len(tile) > 3 else None
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and ";16" in rawmode:
            return True
    return False


def _scale_to_uint8(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64, copy=False)
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 0.0
    if values.dtype.kind == "f" and top <= 1.0:
        scale = 255.0
    elif top <= 255:
        scale = 1.0
    elif top <= 65535:
        scale = 1 / 257
    else:
        scale = 255.0 / top
    return np.clip(np.nan_to_num(values * scale) + 0.5, 0, 255).astype(np.uint8)


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None, path: Path) -> Image.Image:
    if im.format in ("JPEG", "MPO") and "adobe" not in im.info:
        # Pillow reads every CMYK JPEG as Adobe-inverted; without the Adobe marker it is not.
        im = Image.fromarray(255 - np.asarray(im), "CMYK")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, source, ImageCms.createProfile("sRGB"),
                                             renderingIntent=ImageCms.Intent.PERCEPTUAL,
                                             outputMode="RGB")
        except Exception as exc:  # a broken profile: fall back rather than refuse the photo
            log.warning("%s: CMYK ICC profile unusable (%s); using a plain conversion", path, exc)
    return im.convert("RGB")


def _looks_gray(pixels: np.ndarray, sample: int = 250_000) -> bool:
    """Whether an RGB picture is a black-and-white photo stored in colour: on a strided sample, the
    channel spread (max − min) has a median ≤ 4 and a 99th percentile ≤ 16 (JPEG chroma noise on a
    gray scan stays under that; sepia and muted colour photos measure 20 and more)."""
    h, w = pixels.shape[:2]
    step = max(1, int(np.sqrt(h * w / sample)))
    spread = _channel_spread(pixels[::step, ::step]).ravel()
    median, p99 = np.percentile(spread, [50, 99])
    return bool(median <= 4 and p99 <= 16)


def _pixels_are_gray(pixels: np.ndarray, tolerance: int = 2) -> bool:
    """Every pixel's channels within ``tolerance``; checked in row bands to keep memory flat."""
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        return True
    for start in range(0, pixels.shape[0], 512):
        if int(_channel_spread(pixels[start:start + 512]).max(initial=0)) > tolerance:
            return False
    return True


def _channel_spread(pixels: np.ndarray) -> np.ndarray:
    """max(R, G, B) − min(R, G, B) per pixel (channel by channel: numpy reductions over a length-3
    last axis are several times slower)."""
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)


def _to_rgb_and_alpha(im: Image.Image, icc: bytes | None,
                      path: Path) -> tuple[np.ndarray, np.ndarray | None, bool, bytes | None]:
    """(RGB uint8 pixels, alpha or None, stored-as-gray, ICC profile that still fits the pixels)."""
    mode = im.mode
    alpha = None
    if mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
        mode = im.mode
    if mode in ("RGBA", "RGBa", "LA", "La"):
        if mode == "RGBa":
            im = im.convert("RGBA")
        elif mode == "La":
            im = im.convert("LA")
        alpha = np.asarray(im.getchannel("A"))
        im = im.convert("RGB") if im.mode == "RGBA" else im.getchannel("L")
        mode = im.mode
    if mode == "RGB":
        return np.asarray(im), alpha, False, icc
    if mode in ("L", "1"):
        gray = np.asarray(im.convert("L") if mode == "1" else im)
        return np.repeat(gray[:, :, None], 3, axis=2), alpha, True, icc
    if mode.startswith("I;16"):
        gray = np.asarray(im).astype(np.uint32)
        gray8 = ((gray * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(gray8[:, :, None], 3, axis=2), alpha, True, icc
    if mode in ("I", "F"):
        gray8 = _scale_to_uint8(np.asarray(im))
        return np.repeat(gray8[:, :, None], 3, axis=2), alpha, True, icc
    if mode == "CMYK":
        return np.asarray(_cmyk_to_rgb(im, icc, path)), alpha, False, None
    try:
        converted = im.convert("RGBA" if "A" in mode else "RGB")
    except (ValueError, OSError) as exc:
        raise ImageReadError(f"unsupported colour mode {mode} ({exc})", path) from None
    if converted.mode == "RGBA":
        alpha = np.asarray(converted.getchannel("A"))
        converted = converted.convert("RGB")
    # A profile for another colour space no longer describes the converted pixels.
    return np.asarray(converted), alpha, False, icc if _icc_colour_space(icc) == b"RGB " else None


def _icc_colour_space(icc: bytes | None) -> bytes | None:
    return icc[16:20] if icc and len(icc) >= 20 else None


# --------------------------------------------------------------------------------------------------
# Public reading API


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode a photo into oriented RGB ``uint8`` pixels plus its metadata (see the module docstring
    for what each kind of file becomes). Raises ImageReadError naming the file."""
    path = Path(path)
    _stat_for_reading(path)
    with _open_for_reading(path) as fp:
        im = _open_header(fp, path)
        try:
            _check_pixel_limit(im, path, max_pixels)
            fmt = im.format or ""
            original_mode = im.mode
            bit_depth = 16 if _is_16bit(im) else 8
            quality = (estimate_jpeg_quality(getattr(im, "quantization", None))
                       if fmt in ("JPEG", "MPO") else None)
            orientation = _declared_orientation(im)
            raw_exif = _raw_exif(im)
            icc = im.info.get("icc_profile") or None
            xmp = _xmp_of(im)
            _decode(im, path)
            xmp = xmp or _xmp_of(im)  # PNG keeps iTXt chunks after the pixels too
            oriented = _apply_pending_orientation(im)
            pixels, alpha, stored_gray, icc = _to_rgb_and_alpha(oriented, icc, path)
        finally:
            im.close()
    exif = reset_exif_orientation(raw_exif) if raw_exif else None
    pixels = np.ascontiguousarray(pixels)
    is_gray = stored_gray or _looks_gray(pixels)
    return LoadedImage(path=path, pixels=pixels, format=fmt, exif=exif or None, icc_profile=icc,
                       original_mode=original_mode, is_grayscale=is_gray, alpha=alpha,
                       bit_depth=bit_depth, jpeg_quality=quality, orientation=orientation,
                       xmp=reset_xmp_orientation(xmp) if xmp else None)


def _decode_at_scale(im: Image.Image, path: Path, scale: float, max_pixels: int) -> np.ndarray:
    """Upright RGB pixels of an opened picture: JPEGs at 1/2, 1/4 or 1/8 size (libjpeg's DCT scaling
    through ``draft``) as long as that still covers ``scale`` of each side; other formats whole."""
    icc = im.info.get("icc_profile") or None
    if im.format in ("JPEG", "MPO") and im.mode in ("RGB", "L", "CMYK") and scale < 1:
        im.draft(im.mode, (max(1, int(np.ceil(im.width * scale))), max(1, int(np.ceil(im.height * scale)))))
    _check_pixel_limit(im, path, max_pixels)  # the size to decode, after any draft
    _decode(im, path)
    picture = _apply_pending_orientation(im)
    pixels, _alpha, _gray, _icc = _to_rgb_and_alpha(picture, icc, path)
    return pixels


@dataclass
class ReducedImage:
    """A photo decoded for analysis: oriented RGB ``uint8`` pixels at most as large as asked for
    (JPEGs through libjpeg's DCT scaling, so the full-size pixels never exist in memory), and the
    factor back to the full, displayed size (full = pixels × ``scale``)."""

    path: Path
    pixels: np.ndarray
    scale: float
    full_width: int
    full_height: int
    orientation: int = 1


def read_image_reduced(path: str | Path, min_pixels: int,
                       max_pixels: int = DEFAULT_MAX_PIXELS) -> ReducedImage:
    """Decode a photo with at least ``min_pixels`` pixels where it has that many, as cheaply as the
    format allows: JPEGs are decoded at 1/2, 1/4 or 1/8 scale (``Image.draft``) when that still covers
    ``min_pixels``; other formats are decoded in full (``scale`` 1). No resampling and no copy beyond
    Pillow's buffer → numpy. Raises ImageReadError naming the file."""
    path = Path(path)
    _stat_for_reading(path)
    with _open_for_reading(path) as fp:
        im = _open_header(fp, path)
        try:
            full_w, full_h = im.size
            orientation = _declared_orientation(im)
            pixels = _decode_at_scale(im, path, (min_pixels / (full_w * full_h)) ** 0.5, max_pixels)
        finally:
            im.close()
    upright = im.format in ("HEIF", "TIFF")
    if orientation in (5, 6, 7, 8) and not upright:
        full_w, full_h = full_h, full_w
    scale = full_w / pixels.shape[1]
    if abs(scale - round(scale)) < 0.05:
        scale = float(round(scale))  # libjpeg scales by exactly 2, 4 or 8 (sizes rounded up)
    return ReducedImage(path=path, pixels=np.ascontiguousarray(pixels), scale=max(scale, 1.0),
                        full_width=full_w, full_height=full_h, orientation=orientation)


def _parse_exif_datetime(value: Any, offset: Any = None, subsec: Any = None) -> datetime | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    match = re.match(r"\s*(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})", value)
    if not match:
        return None
    try:
        moment = datetime(*(int(g) for g in match.groups()))
    except ValueError:  # "0000:00:00 00:00:00" and friends
        return None
    if isinstance(subsec, str) and subsec.strip().isdigit():
        digits = subsec.strip()[:6].ljust(6, "0")
        moment = moment.replace(microsecond=int(digits))
    if isinstance(offset, str):
        tz = re.match(r"\s*([+-])(\d{2}):(\d{2})", offset)
        if tz:
            delta = timedelta(hours=int(tz.group(2)), minutes=int(tz.group(3)))
            moment = moment.replace(tzinfo=timezone(delta if tz.group(1) == "+" else -delta))
    return moment


def _clean_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value or None


@functools.cache
def _quiet_exifread_missing_exif() -> None:
    """exifread logs a WARNING for every photo that simply has no EXIF (most PNGs, many WebPs); in an
    album scan that is noise, not a problem. Only that record is dropped; real EXIF damage still logs."""
    from exifread.core.exceptions import ExifNotFound

    logging.getLogger("exifread").addFilter(lambda record: not isinstance(record.msg, ExifNotFound))


def _exif_date_and_camera(fp: BinaryIO, path: Path) -> tuple[datetime | None, str | None, str | None]:
    """Date taken and camera from EXIF through exifread (header tags only, no thumbnail, no
    MakerNote), for the album scanner. Damaged EXIF gives Nones: the photo is still a photo."""
    import exifread

    _quiet_exifread_missing_exif()
    fp.seek(0)
    try:
        tags = exifread.process_file(fp, details=False, extract_thumbnail=False, builtin_types=True)
    except Exception as exc:  # exifread raises many types on damaged blocks
        log.debug("%s: EXIF unreadable: %s", path, exc)
        return None, None, None

    def text(key: str) -> str | None:
        return _clean_text(tags.get(key))

    date_taken = (_parse_exif_datetime(text("EXIF DateTimeOriginal"), text("EXIF OffsetTimeOriginal"),
                                       text("EXIF SubSecTimeOriginal"))
                  or _parse_exif_datetime(text("EXIF DateTimeDigitized")))
    return date_taken, text("Image Make"), text("Image Model")


def read_photo_info(path: str | Path) -> PhotoInfo:
    """Header-only facts (size after orientation, orientation, format, date taken, camera, file
    size, mtime) without decoding any pixels. Raises ImageReadError naming the file."""
    path = Path(path)
    st = _stat_for_reading(path)
    with _open_for_reading(path) as fp:
        date_taken, make, model = _exif_date_and_camera(fp, path)
        fp.seek(0)
        im = _open_header(fp, path)
        try:
            width, height = im.size
            orientation = _declared_orientation(im)
            # pillow-heif and Pillow's TIFF plugin report the size as displayed already.
            upright = im.format in ("HEIF", "TIFF")
            fmt, mode = im.format or "", im.mode
        finally:
            im.close()
    if orientation in (5, 6, 7, 8) and not upright:
        width, height = height, width
    return PhotoInfo(path=path, width=width, height=height, orientation=orientation, format=fmt,
                     mode=mode, date_taken=date_taken, camera_make=make, camera_model=model,
                     file_size=st.st_size, mtime=st.st_mtime, mtime_ns=st.st_mtime_ns)


def content_hash(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 (hex) of the whole file, streamed. A full hash, not a sampled one: two scans of the
    same photo re-saved with different metadata must not be taken for the same file."""
    path = Path(path)
    digest = hashlib.sha256()
    with _open_for_reading(path) as fp:
        try:
            while chunk := fp.read(chunk_size):
                digest.update(chunk)
        except OSError as exc:
            raise ImageReadError(f"cannot read the file ({exc.strerror or exc})", path) from None
    return digest.hexdigest()


def make_thumbnail(image_or_path: LoadedImage | str | Path, size: int = 256,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An oriented RGB ``uint8`` thumbnail whose longer side is at most ``size``. From a path, JPEGs
    are decoded at reduced scale (libjpeg's DCT scaling through ``Image.draft``), so a 50-megapixel
    photo costs a fraction of a full decode; other formats are decoded in full (within
    ``max_pixels``)."""
    if isinstance(image_or_path, (LoadedImage, ReducedImage)):
        picture = Image.fromarray(image_or_path.pixels, "RGB")
        picture.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        return np.asarray(picture)
    path = Path(image_or_path)
    _stat_for_reading(path)
    with _open_for_reading(path) as fp:
        im = _open_header(fp, path)
        try:
            pixels = _decode_at_scale(im, path, size / max(im.size), max_pixels)
        finally:
            im.close()
    picture = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    picture.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(picture)


# --------------------------------------------------------------------------------------------------
# Writing


def _format_for(path: Path, format: str | None, like: LoadedImage | None) -> str:
    if format:
        fmt = format.upper()
        fmt = {"JPG": "JPEG", "TIF": "TIFF", "HEIC": "HEIF"}.get(fmt, fmt)
    else:
        _ensure_heif_opener()
        fmt = Image.registered_extensions().get(path.suffix.lower())
        if fmt is None:
            if like is None:
                raise UsageError(f"cannot tell which image format to write from the suffix "
                                 f"{path.suffix!r}; name a format", path)
            fmt = like.format
    if fmt == "MPO":
        fmt = "JPEG"
    Image.init()
    _ensure_heif_opener()
    if fmt not in Image.SAVE:
        raise UsageError(f"cannot write images in the {fmt} format", path)
    return fmt


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
    except OSError:
        pass
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


_umask_cache: int | None = None


def _current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux), since setting
    it to read it back races with other threads creating files."""
    global _umask_cache
    if _umask_cache is None:
        try:
            status = Path("/proc/self/status").read_text()
            _umask_cache = int(re.search(r"^Umask:\s*([0-7]+)", status, re.M).group(1), 8)
        except (OSError, AttributeError, ValueError):
            mask = os.umask(0o022)
            os.umask(mask)
            _umask_cache = mask
    return _umask_cache


def _build_picture(pixels: np.ndarray, like: LoadedImage | None, fmt: str,
                   path: Path) -> Image.Image:
    """The PIL picture to save: gray or colour as ``like`` asks, alpha attached where it fits."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        got = getattr(pixels, "dtype", type(pixels))
        raise ValueError(f"pixels must be a uint8 numpy array, got {got}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 2:
        picture = Image.fromarray(np.ascontiguousarray(pixels), "L")
    elif pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        rgb = np.ascontiguousarray(pixels[:, :, :3])
        gray_icc = like is not None and _icc_colour_space(like.icc_profile) in (None, b"GRAY")
        if like is not None and like.is_grayscale and gray_icc and _pixels_are_gray(rgb):
            luma = np.round(rgb.astype(np.float32).mean(axis=2)).astype(np.uint8)
            picture = Image.fromarray(luma, "L")
        else:
            picture = Image.fromarray(rgb, "RGB")
        if pixels.shape[2] == 4:
            alpha = np.ascontiguousarray(pixels[:, :, 3])
            if fmt in _ALPHA_FORMATS:
                picture = _with_alpha(picture, alpha)
            return picture
    else:
        raise ValueError(f"pixels must be H×W, H×W×3 or H×W×4, got shape {pixels.shape}")
    alpha = like.alpha if like is not None else None
    if alpha is not None and fmt in _ALPHA_FORMATS:
        if alpha.shape == (picture.height, picture.width):
            picture = _with_alpha(picture, alpha)
        else:
            log.warning("%s: the source's alpha (%s) does not match the output size %s; dropped",
                        path, alpha.shape, (picture.height, picture.width))
    return picture


def _with_alpha(picture: Image.Image, alpha: np.ndarray) -> Image.Image:
    mode = "LA" if picture.mode == "L" else "RGBA"
    picture = picture.convert(mode)
    picture.putalpha(Image.fromarray(np.ascontiguousarray(alpha), "L"))
    return picture


def _save_options(fmt: str, picture: Image.Image, like: LoadedImage | None,
                  quality: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if like is not None:
        if like.exif and fmt in _EXIF_FORMATS:
            options["exif"] = like.exif
        icc = like.icc_profile
        space = _icc_colour_space(icc)
        fits = space == b"GRAY" if picture.mode in ("L", "LA") else space == b"RGB "
        if icc and fmt in _ICC_FORMATS and fits:
            options["icc_profile"] = icc
        if like.xmp and fmt in ("JPEG", "WEBP", "AVIF", "HEIF"):
            options["xmp"] = like.xmp
        elif like.xmp and fmt == "PNG":
            from PIL.PngImagePlugin import PngInfo

            text = PngInfo()
            text.add_itxt("XML:com.adobe.xmp", like.xmp.decode("utf-8", "replace"))
            options["pnginfo"] = text
        elif like.xmp and fmt == "TIFF":
            options["tiffinfo"] = {0x02BC: like.xmp}
        if fmt == "JPEG":
            # One APP1 segment holds at most 64 KiB; a bigger block (from a PNG or TIFF source) is
            # dropped rather than failing the whole write.
            for key, limit in (("exif", 65533 - 8), ("xmp", 65533 - 29)):
                if key in options and len(options[key]) > limit:
                    log.warning("%s too large for a JPEG segment (%d bytes); not copied",
                                key.upper(), len(options[key]))
                    del options[key]
    if fmt == "JPEG":
        if quality is None:
            estimated = like.jpeg_quality if like is not None else None
            quality = 95 if estimated is None else int(min(95, max(75, estimated)))
        # No `optimize`: its second Huffman pass doubles the encode time for files 2-3 % smaller, and
        # the decoded pixels are the same either way.
        options.update(quality=int(quality), subsampling=0 if quality >= 90 else 2)
    elif fmt == "WEBP":
        options.update(quality=int(quality if quality is not None else 95), method=4)
    elif fmt in ("HEIF", "AVIF"):
        options.update(quality=int(quality if quality is not None else 90))
    elif fmt == "TIFF":
        # Pillow's own (uncompressed) TIFF writer: the libtiff one used for LZW/deflate cannot write
        # the EXIF sub-IFD, and keeping the camera metadata matters more than the file size.
        options.update(compression=None)
    elif fmt == "PNG":
        options.update(compress_level=6)
    return options


def _folder_error(exc: OSError, path: Path) -> ImageWriteError:
    code = exc.errno
    if code == errno.ENOSPC or code == getattr(errno, "EDQUOT", -1):
        message = "disk is full (no space left to write the image)"
    elif code in (errno.EACCES, errno.EPERM):
        message = "folder is not writable (permission denied)"
    elif code == errno.EROFS:
        message = "folder is on a read-only file system"
    elif code == errno.ENOENT:
        message = "folder does not exist"
    elif code == errno.ENOTDIR:
        message = f"{path.parent} is not a folder"
    elif code == errno.EISDIR:
        message = "a folder of that name is in the way"
    else:
        message = f"cannot write the image ({exc.strerror or exc})"
    return ImageWriteError(message, path)


@dataclass(frozen=True)
class WrittenImage:
    """A checked output: where it is, its SHA-256 and size as written (record them to recognise the
    file later with `verify_output`)."""

    path: Path
    sha256: str
    size: int


def write_image(path: str | Path, pixels: np.ndarray, like: LoadedImage | None = None,
                format: str | None = None, quality: int | None = None) -> Path:
    """Write ``pixels`` (H×W×3 RGB ``uint8``; H×W gray or H×W×4 RGBA also accepted) atomically to
    ``path`` with ``like``'s EXIF, ICC profile, grayscale-ness and alpha (see the module docstring).
    Returns the path written. UsageError when ``path`` is ``like``'s own file; ImageWriteError
    (nothing left behind) when the folder is unwritable, the disk is full, or the written file does
    not read back as the encoded image. `write_image_with_hash` also returns the file's SHA-256."""
    return write_image_with_hash(path, pixels, like=like, format=format, quality=quality).path


def write_image_with_hash(path: str | Path, pixels: np.ndarray, like: LoadedImage | None = None,
                          format: str | None = None, quality: int | None = None) -> WrittenImage:
    """`write_image`, returning what was written: the path, the SHA-256 and size of its bytes.
    The same as `write_encoded(encode_image(...))`."""
    return write_encoded(encode_image(path, pixels, like=like, format=format, quality=quality))


@dataclass(frozen=True)
class EncodedImage:
    """An image encoded in memory for `path`, not written yet. A caller that must record the output's
    hash before the file appears (a batch that may be killed between the write and its commit)
    records `sha256`, then calls `write_encoded`."""

    path: Path
    data: bytes
    format: str
    sha256: str


def encode_image(path: str | Path, pixels: np.ndarray, like: LoadedImage | None = None,
                 format: str | None = None, quality: int | None = None) -> EncodedImage:
    """Encode ``pixels`` as `write_image` would write them to ``path`` (format, metadata, quality),
    in memory. Pillow's encoders that write straight to a file descriptor ignore short writes, which
    is how a JPEG on a nearly full disk used to come out truncated without an error; encoding to
    memory first leaves the writing, and its checks, to `write_encoded`."""
    path = Path(path)
    if like is not None and _same_file(path, like.path):
        raise UsageError(f"the output would overwrite the input photo {like.path}; "
                         f"choose another output path", path)
    fmt = _format_for(path, format, like)
    picture = _build_picture(pixels, like, fmt, path)
    options = _save_options(fmt, picture, like, quality)
    encoded = io.BytesIO()
    try:
        picture.save(encoded, format=fmt, **options)
    except OSError as exc:
        if exc.errno is not None:  # a system error (memory, a plugin's own temporary file)
            raise _folder_error(exc, path) from exc
        raise ImageWriteError(f"cannot encode the image as {fmt} ({exc})", path) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ImageWriteError(f"cannot encode the image as {fmt} ({exc})", path) from exc
    data = encoded.getvalue()
    return EncodedImage(path, data, fmt, hashlib.sha256(data).hexdigest())


def write_encoded(encoded: EncodedImage) -> WrittenImage:
    """Write an encoded image atomically: temporary file, fsync, read back (the size must match, the
    bytes must be the encoded ones), rename, fsync of the folder. Any failure
    removes the temporary, keeps an earlier file of that name, and raises ImageWriteError."""
    staged = stage_encoded(encoded)
    try:
        return staged.commit(replace=True)
    except BaseException:
        staged.discard()
        raise


class OutputTakenError(FileExistsError):
    """The output name is taken by a file that this write must not replace."""


@dataclass
class StagedImage:
    """An encoded image written and checked under a hidden temporary name beside its output, not yet
    in place. A caller that must decide at the last moment whether the write may happen (a batch that
    re-checks its lease in the same catalog transaction) calls `commit` there, and `discard` otherwise."""

    encoded: EncodedImage
    temp: Path

    @property
    def path(self) -> Path:
        return self.encoded.path

    def commit(self, replace: bool = False, to: Path | None = None) -> WrittenImage:
        """Give the temporary its name (`to`, default the encoded path). Without `replace`, an existing
        file of that name is never replaced: OutputTakenError, the temporary kept for another try."""
        target = Path(to) if to is not None else self.encoded.path
        if replace:
            try:
                os.replace(self.temp, target)
            except OSError as exc:
                raise _folder_error(exc, target) from exc
        else:
            _rename_without_replacing(self.temp, target)
        _fsync_folder(target.parent if str(target.parent) else Path("."))
        log.debug("wrote %s (%s, %d bytes)", target, self.encoded.format, len(self.encoded.data))
        return WrittenImage(target, self.encoded.sha256, len(self.encoded.data))

    def discard(self) -> None:
        try:
            self.temp.unlink()
        except FileNotFoundError:
            pass
        except OSError as cleanup:  # pragma: no cover - nothing more we can do
            log.warning("could not remove the temporary file %s: %s", self.temp, cleanup)


def _rename_without_replacing(temp: Path, target: Path) -> None:
    """Rename `temp` to `target` unless `target` exists (then OutputTakenError). A hard link is the
    atomic no-clobber rename on POSIX file systems; where links are not supported (FAT, some network
    shares) an existence check right before the rename is the best there is."""
    try:
        os.link(temp, target)
    except FileExistsError:
        raise OutputTakenError(f"{target} exists") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise _folder_error(exc, target) from exc
        if os.path.lexists(target):
            raise OutputTakenError(f"{target} exists") from None
        try:
            os.rename(temp, target)
        except OSError as exc:
            raise _folder_error(exc, target) from exc
        return
    try:
        os.unlink(temp)
    except OSError as exc:  # the output is in place; a leftover temporary is removed by the next resume
        log.warning("could not remove the temporary file %s: %s", temp, exc)


def stage_encoded(encoded: EncodedImage) -> StagedImage:
    """Write an encoded image to a hidden temporary beside its output, fsync it and read it back (the
    size must match, the bytes must be the encoded ones). Any failure removes the
    temporary and raises ImageWriteError; nothing of that name is touched."""
    path, data = encoded.path, encoded.data
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.pid{os.getpid()}-", suffix=PARTIAL_SUFFIX, dir=folder)
    except OSError as exc:
        raise _folder_error(exc, path) from None
    staged = StagedImage(encoded, Path(temp_name))
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)  # a buffered file writes all of it or raises (ENOSPC)
            out.flush()
            os.fsync(out.fileno())
        _check_written(staged.temp, data, encoded.format, path)
        os.chmod(staged.temp, 0o666 & ~_current_umask())
    except BaseException as exc:
        staged.discard()
        if isinstance(exc, OSError):
            raise _folder_error(exc, path) from exc
        raise
    return staged


def _check_written(temp: Path, data: bytes, fmt: str, path: Path) -> None:
    """ImageWriteError unless the file on disk holds exactly `data`, the bytes the encoder made. Those
    bytes are not decoded again: the file is byte for byte what the encoder produced, which is what a
    decode of it would prove (a resumed batch's `verify_output` still decodes what it adopts)."""
    size = temp.stat().st_size
    if size != len(data):
        raise ImageWriteError(f"only {size} of {len(data)} bytes reached the disk (disk full?); "
                              "nothing was written", path)
    if temp.read_bytes() != data:
        raise ImageWriteError("the file read back differs from what was written (failing disk?); "
                              "nothing was written", path)


def _decode_problem(data: bytes) -> str | None:
    """None when `data` decodes as an image to its last pixel, else what went wrong."""
    _ensure_heif_opener()
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, UnidentifiedImageError) as exc:
        return str(exc) or exc.__class__.__name__
    return None


@dataclass(frozen=True)
class OutputCheck:
    """Whether an existing output is the one that was written (`ok`), and if not, why."""

    path: Path
    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


def verify_output(path: str | Path, expected_sha256: str | None) -> OutputCheck:
    """Is the file at `path` the output recorded as written (SHA-256 `expected_sha256`, from
    `write_image_with_hash`), whole and decodable? A batch counts an existing output as done only
    when this is ok; a missing, truncated, replaced or undecodable file, or one written with no hash
    recorded, is restored again."""
    path = Path(path)
    if expected_sha256 is None:
        return OutputCheck(path, False, "no hash was recorded when it was written")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return OutputCheck(path, False, "not there")
    except OSError as exc:
        return OutputCheck(path, False, f"cannot be read ({exc.strerror or exc})")
    if hashlib.sha256(data).hexdigest() != expected_sha256.lower():
        return OutputCheck(path, False, "differs from the file that was written (changed, replaced or cut short)")
    problem = _decode_problem(data)
    if problem is not None:
        return OutputCheck(path, False, f"does not decode ({problem})")
    return OutputCheck(path, True)


def remove_partial_writes(folder: str | Path) -> list[Path]:
    """Delete the temporary files that writes killed part-way (SIGKILL, power loss) left in
    ``folder`` and below; returns what was removed. A temporary whose name carries the id of a process
    still running on this computer is left alone (another batch writing into the same folder)."""
    removed = []
    for candidate in Path(folder).rglob(f".*{PARTIAL_SUFFIX}"):
        if _written_by_a_live_process(candidate.name):
            continue  # another batch writing into the same folder (a job over other albums)
        try:
            if candidate.is_file() and not candidate.is_symlink():
                candidate.unlink()
                removed.append(candidate)
        except OSError as exc:
            log.warning("could not remove %s: %s", candidate, exc)
    return removed


_TEMP_PID = re.compile(r"\.pid(\d+)-[^/\\]*" + re.escape(PARTIAL_SUFFIX) + "$")


def _written_by_a_live_process(name: str) -> bool:
    match = _TEMP_PID.search(name)
    if match is None or int(match.group(1)) == os.getpid():
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); best effort elsewhere."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
