"""Helpers for the image I/O tests: pictures generated on the fly, file hashes. (A plain module with
a name unique in the test suite, imported from the test folder that pytest puts on sys.path.)"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def gradient_rgb(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth colour picture with some noise: compresses like a photo, every corner differs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    picture = np.stack([x * 255 / max(width - 1, 1), y * 255 / max(height - 1, 1),
                        (x + y) * 127 / max(width + height - 2, 1)], axis=2)
    picture += rng.normal(0, 4, picture.shape)
    return np.clip(picture, 0, 255).astype(np.uint8)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, raw_rows: bytes) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit RGB; a fake huge header needs no rows)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(raw_rows)) + png_chunk(b"IEND", b""))


def _s15f16(value: float) -> bytes:
    return struct.pack(">i", int(round(value * 65536)))


def _pad4(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def swapped_cmyk_profile() -> bytes:
    """A small but real ICC v2 CMYK output profile (A2B0 as a 2-point lut16 into Lab) whose inks are
    deliberately unusual: C absorbs blue, M green, Y red (the inverse of real inks). A CMYK picture
    converted through it comes out visibly different from any plain CMYK→RGB formula, so a test can
    tell that the embedded profile — not a fallback — did the conversion."""
    from PIL import ImageCms

    srgb = ImageCms.createProfile("sRGB")
    to_lab = ImageCms.buildTransform(srgb, ImageCms.createProfile("LAB"), "RGB", "LAB")
    corners = []
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    rgb = np.array([(1 - y) * (1 - k), (1 - m) * (1 - k), (1 - c) * (1 - k)]) * 255
                    corners.append(np.round(rgb).astype(np.uint8))
    lab = np.asarray(ImageCms.applyTransform(
        Image.fromarray(np.array(corners)[None]), to_lab)).reshape(-1, 3)
    # Pillow's LAB: L 0‥255, a and b as signed bytes. ICC v2 lut16 Lab: L·256, (a + 128)·256.
    encoded = np.stack([lab[:, 0].astype(np.int64), lab[:, 1].view(np.int8).astype(np.int64) + 128,
                        lab[:, 2].view(np.int8).astype(np.int64) + 128], axis=1) * 256
    clut = b"".join(struct.pack(">3H", *(int(v) for v in entry)) for entry in encoded)
    identity = b"".join(_s15f16(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    ramp = struct.pack(">2H", 0, 65535)
    a2b0 = (b"mft2" + b"\x00" * 4 + bytes([4, 3, 2, 0]) + identity + struct.pack(">2H", 2, 2)
            + ramp * 4 + clut + ramp * 3)
    text = b"swapped inks test profile"
    desc = (b"desc" + b"\x00" * 4 + struct.pack(">I", len(text) + 1) + text + b"\x00"
            + struct.pack(">II", 0, 0) + struct.pack(">HB", 0, 0) + b"\x00" * 67)
    wtpt = b"XYZ " + b"\x00" * 4 + _s15f16(0.9642) + _s15f16(1.0) + _s15f16(0.8249)
    cprt = b"text" + b"\x00" * 4 + b"generated for tests\x00"
    tags = [(b"desc", desc), (b"wtpt", wtpt), (b"cprt", cprt), (b"A2B0", a2b0)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += _pad4(data)
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"prtr" + b"CMYK"
              + b"Lab " + b"\x00" * 12 + b"acsp" + b"\x00" * 4 + b"\x00" * 4 + b"\x00" * 8
              + b"\x00" * 8 + struct.pack(">I", 0) + _s15f16(0.9642) + _s15f16(1.0)
              + _s15f16(0.8249) + b"lcms" + b"\x00" * 44)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body
