"""write_image: atomic, metadata kept, never over the input, clear errors, nothing left behind."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, JpegImagePlugin

from engine.errors import ImageWriteError, UsageError
from engine.imageio import PARTIAL_SUFFIX, LoadedImage, read_image, write_image

from imageio_helpers import gradient_rgb, sha256

ROOT = Path(__file__).resolve().parents[2]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(PARTIAL_SUFFIX))


# ------------------------------------------------------------------------------------ metadata

def test_jpeg_keeps_exif_icc_and_a_sensible_quality(photo_jpeg, tmp_path):
    image = read_image(photo_jpeg)
    assert image.jpeg_quality == 88
    out = write_image(tmp_path / "out.jpg", image.pixels, like=image)
    written = Image.open(out)
    assert written.info["icc_profile"] == image.icc_profile
    exif = written.getexif()
    assert exif[0x0110] == "Model 7" and exif[0x0112] == 1
    assert exif.get_ifd(0x8769)[0x9003] == "2019:07:14 16:05:09"
    assert read_image(out).jpeg_quality == 88
    assert JpegImagePlugin.get_sampling(written) == 2  # 4:2:0 below quality 90
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("source_quality,expected", [(40, 75), (80, 80), (99, 95), (None, 95)])
def test_jpeg_quality_is_clamped(tmp_path, source_quality, expected):
    path = tmp_path / "src.png"
    Image.fromarray(gradient_rgb()).save(path)
    like = read_image(path)
    like.jpeg_quality = source_quality
    out = write_image(tmp_path / "out.jpg", like.pixels, like=like)
    assert read_image(out).jpeg_quality == expected
    assert JpegImagePlugin.get_sampling(Image.open(out)) == (0 if expected >= 90 else 2)
    assert read_image(write_image(tmp_path / "q.jpg", like.pixels, quality=60)).jpeg_quality == 60


def test_format_comes_from_argument_then_suffix_then_like(tmp_path):
    path = tmp_path / "src.webp"
    Image.fromarray(gradient_rgb()).save(path, "WEBP")
    like = read_image(path)
    assert Image.open(write_image(tmp_path / "a.png", like.pixels, like=like)).format == "PNG"
    named = write_image(tmp_path / "b.png", like.pixels, like=like, format="jpg")
    assert Image.open(named).format == "JPEG"
    assert Image.open(write_image(tmp_path / "c.restored", like.pixels, like=like)).format == "WEBP"
    with pytest.raises(UsageError, match="format"):
        write_image(tmp_path / "d.restored", like.pixels)


def test_grayscale_source_is_written_as_grayscale(tmp_path):
    gray = gradient_rgb()[:, :, 1]
    path = tmp_path / "gray.jpg"
    Image.fromarray(gray, "L").save(path, quality=92)
    like = read_image(path)
    assert like.is_grayscale and like.original_mode == "L"
    out = write_image(tmp_path / "out.jpg", like.pixels, like=like)
    assert Image.open(out).mode == "L"
    coloured = like.pixels.copy()
    coloured[:10, :10] = [200, 30, 30]  # the restorer chose to add colour: it is kept
    assert Image.open(write_image(tmp_path / "col.jpg", coloured, like=like)).mode == "RGB"


def test_gray_icc_profile_is_not_attached_to_colour_pixels(tmp_path):
    gray_profile = _gray_icc()
    path = tmp_path / "gray.png"
    Image.fromarray(gradient_rgb()[:, :, 0], "L").save(path, icc_profile=gray_profile)
    like = read_image(path)
    assert like.icc_profile == gray_profile
    gray_out = write_image(tmp_path / "g.png", like.pixels, like=like)
    assert Image.open(gray_out).info["icc_profile"] == gray_profile
    colour = write_image(tmp_path / "c.png", gradient_rgb(), like=like)
    assert Image.open(colour).mode == "RGB" and "icc_profile" not in Image.open(colour).info


def _gray_icc() -> bytes:
    # write_image only looks at the header's colour-space field and never converts through the
    # profile, so a sRGB profile relabelled GRAY is enough here (Pillow cannot build gray ones).
    rgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return rgb[:16] + b"GRAY" + rgb[20:]


def test_alpha_is_reattached_where_the_format_keeps_it(tmp_path):
    rgba = np.dstack([gradient_rgb(), np.full((48, 64), 7, np.uint8)])
    path = tmp_path / "src.png"
    Image.fromarray(rgba, "RGBA").save(path)
    like = read_image(path)
    for suffix in (".png", ".webp", ".tiff"):
        out = write_image(tmp_path / f"out{suffix}", like.pixels, like=like)
        assert (read_image(out).alpha == 7).all(), suffix
    assert Image.open(write_image(tmp_path / "out.jpg", like.pixels, like=like)).mode == "RGB"
    resized = like.pixels[:20, :20]
    assert read_image(write_image(tmp_path / "small.png", resized, like=like)).alpha is None


def test_bad_pixel_arrays_are_programming_errors(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_image(tmp_path / "x.png", gradient_rgb().astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 2), np.uint8))


# ----------------------------------------------------------------------------- never the input

def test_output_equal_to_input_is_refused_every_way(photo_jpeg, tmp_path):
    digest = sha256(photo_jpeg)
    like = read_image(photo_jpeg)
    link = tmp_path / "link.jpg"
    link.symlink_to(photo_jpeg)
    hard = tmp_path / "hard.jpg"
    os.link(photo_jpeg, hard)
    sub = tmp_path / "sub"
    sub.mkdir()
    relative = Path(os.path.relpath(photo_jpeg))
    for target in (photo_jpeg, link, hard, sub / ".." / photo_jpeg.name, relative):
        with pytest.raises(UsageError) as caught:
            write_image(target, like.pixels, like=like)
        assert caught.value.exit_code == 2
        assert str(photo_jpeg) in str(caught.value) and "overwrite the input" in str(caught.value)
    assert sha256(photo_jpeg) == digest
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------ atomic writes

def test_failure_mid_write_leaves_nothing_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"previous result")

    real_save = Image.Image.save

    def save_then_fill_the_disk(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG\r\n\x1a\n partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", save_then_fill_the_disk)
    with pytest.raises(ImageWriteError) as caught:
        write_image(target, gradient_rgb())
    assert str(caught.value).startswith(str(target)) and "disk is full" in str(caught.value)
    assert target.read_bytes() == b"previous result"
    assert _leftovers(tmp_path) == []
    monkeypatch.setattr(Image.Image, "save", real_save)

    fresh = tmp_path / "fresh.jpg"

    def fsync_fails(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync_fails)
    with pytest.raises(ImageWriteError, match="disk is full"):
        write_image(fresh, gradient_rgb())
    assert not fresh.exists() and _leftovers(tmp_path) == []


def test_a_real_write_failure_cleans_up(tmp_path):
    """No mock: the OS refuses the write part-way (a file-size limit, EFBIG, in a child process)."""
    script = textwrap.dedent(f"""
        import resource, signal, sys
        import numpy as np
        sys.path.insert(0, {str(ROOT)!r})
        from engine.imageio import write_image
        from engine.errors import ImageWriteError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        noise = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
        hard_limit = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, hard_limit))
        try:
            write_image({str(tmp_path / "big.png")!r}, noise)
        except ImageWriteError as error:
            print("REFUSED", error)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert "REFUSED" in result.stdout, result.stderr
    assert str(tmp_path / "big.png") in result.stdout
    assert not (tmp_path / "big.png").exists() and _leftovers(tmp_path) == []


def test_unwritable_folder(tmp_path):
    regular_file = tmp_path / "notes.txt"
    regular_file.write_text("a file, not a folder")
    target = regular_file / "out.jpg"
    with pytest.raises(ImageWriteError) as caught:
        write_image(target, gradient_rgb())
    assert str(caught.value).startswith(str(target)) and "is not a folder" in str(caught.value)
    with pytest.raises(ImageWriteError, match="folder does not exist"):
        write_image(tmp_path / "missing" / "out.jpg", gradient_rgb())


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into read-only folders; the regular-file case covers it")
def test_read_only_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(ImageWriteError, match="not writable"):
            write_image(folder / "out.jpg", gradient_rgb())
    finally:
        folder.chmod(0o755)


def test_overwriting_an_earlier_output_is_atomic(tmp_path):
    target = tmp_path / "out.png"
    first = write_image(target, gradient_rgb(seed=1))
    inode = first.stat().st_ino
    write_image(target, gradient_rgb(seed=2))
    assert target.stat().st_ino != inode  # replaced by rename, never rewritten in place
    np.testing.assert_array_equal(read_image(target).pixels, gradient_rgb(seed=2))
    assert _leftovers(tmp_path) == []


def test_loaded_image_properties():
    image = LoadedImage(path=Path("x.png"), pixels=np.zeros((3, 5, 3), np.uint8), format="PNG")
    assert (image.width, image.height) == (5, 3)


XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/">'
       b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/"'
       b' xmlns:dc="http://purl.org/dc/elements/1.1/" tiff:Orientation="6">'
       b'<dc:subject><rdf:Bag><rdf:li>Grandma</rdf:li></rdf:Bag></dc:subject>'
       b'</rdf:Description></rdf:RDF></x:xmpmeta>')


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tiff"])
def test_xmp_is_kept_with_its_orientation_reset(tmp_path, suffix):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "tagged.jpg"
    Image.fromarray(gradient_rgb()).save(path, exif=exif.tobytes(), xmp=XMP)
    like = read_image(path)
    assert like.orientation == 6 and like.xmp is not None
    assert b'tiff:Orientation="1"' in like.xmp and b"Grandma" in like.xmp
    out = write_image(tmp_path / f"out{suffix}", like.pixels, like=like)
    again = read_image(out)
    assert again.xmp is not None and b"Grandma" in again.xmp, suffix
    assert again.orientation == 1 and again.pixels.shape == like.pixels.shape


def test_a_killed_write_leaves_only_a_hidden_partial_that_resume_removes(tmp_path):
    """SIGKILL in the middle of a write (real, in a child process): the target never exists in a
    half-written state; the hidden temporary is recognisable and remove_partial_writes clears it."""
    import signal

    from engine.imageio import remove_partial_writes

    album = tmp_path / "out" / "2019"
    album.mkdir(parents=True)
    script = textwrap.dedent(f"""
        import os, signal, sys
        import numpy as np
        sys.path.insert(0, {str(ROOT)!r})
        import engine.imageio as imageio
        real_fsync = os.fsync
        def die(fd):
            os.kill(os.getpid(), signal.SIGKILL)
        os.fsync = die
        imageio.write_image({str(album / "photo.jpg")!r}, np.zeros((64, 64, 3), np.uint8))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == -signal.SIGKILL
    assert not (album / "photo.jpg").exists()
    leftovers = list(album.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".photo.jpg.")
    assert leftovers[0].name.endswith(PARTIAL_SUFFIX)
    keep = album / "kept.jpg"
    keep.write_bytes(b"an earlier, finished output")
    assert remove_partial_writes(tmp_path / "out") == leftovers
    assert sorted(album.iterdir()) == [keep]


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    """A batch writing into the same output folder (another job, a live process) keeps its temporary while a
    resuming batch cleans up; a dead process's temporary is removed."""
    from engine.imageio import remove_partial_writes

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        live_temp = tmp_path / f".p.jpg.pid{live.pid}-abc{PARTIAL_SUFFIX}"
        dead_temp = tmp_path / f".q.jpg.pid{dead.pid}-abc{PARTIAL_SUFFIX}"
        for temp in (live_temp, dead_temp):
            temp.write_bytes(b"half")
        assert remove_partial_writes(tmp_path) == [dead_temp]
        assert live_temp.exists()
    finally:
        live.kill()
        live.wait()
