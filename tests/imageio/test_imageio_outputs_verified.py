"""Outputs are checked before they count (issue 14, item 8): a write onto a nearly full disk fails with
a clear error and leaves nothing, a short write is caught, and `verify_output` recognises only the file
that was written (same SHA-256, decodes)."""

from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path

import pytest

from engine.errors import ImageWriteError
from engine.imageio import PARTIAL_SUFFIX, read_image, verify_output, write_image, write_image_with_hash
from engine.testing.small_disk import SmallDiskUnavailable, fill, small_disk

ROOT = Path(__file__).resolve().parents[2]


def _photo(shared: Path) -> Path:
    return sorted(glob.glob(str(shared / "data" / "deepface_ids" / "**" / "*.jpg"), recursive=True))[0]


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
def test_a_write_onto_a_nearly_full_disk_fails_clearly_and_leaves_nothing(shared, tmp_path, suffix):
    loaded = read_image(_photo(shared))  # 1382×1868: a JPEG of it needs far more than the space left
    try:
        with small_disk(tmp_path / "disk", 1 << 20) as disk:
            earlier = disk.path / f"earlier{suffix}"
            write_image(earlier, loaded.pixels[:64, :64])
            kept = earlier.read_bytes()
            fill(disk, leave=40 * 1024)
            for target in (disk.path / f"restored{suffix}", earlier):
                with pytest.raises(ImageWriteError) as caught:
                    write_image(target, loaded.pixels, like=loaded)
                assert str(caught.value).startswith(str(target)) and "full" in str(caught.value)
            assert sorted(p.name for p in disk.path.iterdir()) == sorted(["filler", earlier.name])
            assert earlier.read_bytes() == kept  # the previous output is untouched
    except SmallDiskUnavailable as exc:
        pytest.skip(f"no small filesystem here ({exc}); the short-write test covers the check")


class _ShortWriter:
    """A file that silently keeps only the first half of what it is given (what Pillow's JPEG encoder
    did with a short write to a nearly full disk)."""

    def __init__(self, real):
        self.real = real

    def write(self, data):
        half = bytes(data[: len(data) // 2])
        self.real.write(half)
        return len(data)

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


def test_a_write_that_stops_mid_file_is_caught(shared, tmp_path, monkeypatch):
    loaded = read_image(_photo(shared))
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: _ShortWriter(real_fdopen(fd, mode, *a, **k)))
    target = tmp_path / "restored.jpg"
    with pytest.raises(ImageWriteError, match="bytes reached the disk") as caught:
        write_image(target, loaded.pixels, like=loaded)
    assert caught.value.path == target
    assert list(tmp_path.iterdir()) == []


def test_the_hash_of_a_write_recognises_that_file_and_only_it(shared, tmp_path):
    loaded = read_image(_photo(shared))
    target = tmp_path / "restored.jpg"
    written = write_image_with_hash(target, loaded.pixels, like=loaded)
    data = target.read_bytes()
    assert written.path == target and written.size == len(data)
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    assert verify_output(target, written.sha256)

    checks = {}
    target.write_bytes(data[: len(data) // 2])  # cut short (the old silent truncation)
    checks["truncated"] = verify_output(target, written.sha256)
    write_image(target, loaded.pixels[::2, ::2], like=loaded)  # another, valid image in its place
    checks["replaced"] = verify_output(target, written.sha256)
    target.unlink()
    checks["missing"] = verify_output(target, written.sha256)
    target.write_bytes(data)
    checks["no hash recorded"] = verify_output(target, None)
    assert not any(checks.values()), checks
    assert "differs" in checks["truncated"].reason and checks["missing"].reason == "not there"

    garbage = tmp_path / "garbage.jpg"  # the hash matches but the bytes are no image
    garbage.write_bytes(b"\xff\xd8\xff" + bytes(5000))
    undecodable = verify_output(garbage, hashlib.sha256(garbage.read_bytes()).hexdigest())
    assert not undecodable and "does not decode" in undecodable.reason
    assert not list(tmp_path.glob(f"*{PARTIAL_SUFFIX}"))


def test_a_hash_recorded_before_the_write_recognises_the_file_only_once_it_is_whole(shared, tmp_path):
    """A batch records the hash of the encoded output first, then writes it: killed in between, the
    output is not there (or is an earlier file) and does not verify; written, it does."""
    from engine.imageio import encode_image, write_encoded

    loaded = read_image(_photo(shared))
    target = tmp_path / "restored.jpg"
    encoded = encode_image(target, loaded.pixels, like=loaded)
    assert not target.exists()
    assert verify_output(target, encoded.sha256).reason == "not there"  # "killed" before the write
    write_image(target, loaded.pixels[::2, ::2], like=loaded)  # an older output of the same name
    assert not verify_output(target, encoded.sha256)
    written = write_encoded(encoded)
    assert written.sha256 == encoded.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()
    assert verify_output(target, encoded.sha256)
