"""A photo (or a folder) in an album whose name is not valid UTF-8, as another system writes names in
Latin-1 ("caf\\xe9.jpg"): Python keeps such a name as lone surrogates, which the catalog's text columns
refuse. The scan used to crash on it (UnicodeEncodeError: surrogates not allowed) when writing the path;
now it is left out, counted as "name not valid UTF-8", logged once with its bytes escaped, and the rest
of the album is scanned."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from catalog_testkit import add_photos, lfw_numbers, lfw_photo

ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from engine.cli import main; sys.exit(main())"

pytestmark = pytest.mark.skipif(sys.platform in ("win32", "darwin"),
                                reason="needs a file system that takes any bytes as a name")


def _faceme(*args, timeout=180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FACEME_CATALOG": "/nonexistent/never-used.sqlite3"}
    return subprocess.run([sys.executable, "-c", CLI, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _photo_paths(catalog: Path) -> list[str]:
    with sqlite3.connect(f"{catalog.as_uri()}?mode=ro", uri=True) as db:
        return [row[0] for row in db.execute("SELECT path FROM photos ORDER BY path")]


def _undecodable_album(shared: Path, album: Path) -> list[Path]:
    """Two photos with ordinary names, a photo named b"caf\\xe9.jpg" and a folder b"d\\xe9j\\xe0" holding two
    photos (one in a sub-folder of ordinary name); returns the ordinary photos."""
    cheney = lfw_numbers(shared, "Dick_Cheney")
    ordinary = add_photos(shared, album, "Dick_Cheney", cheney[:2])
    album_bytes = os.fsencode(album)
    shutil.copyfile(lfw_photo(shared, "Dick_Cheney", cheney[2]), os.path.join(album_bytes, b"caf\xe9.jpg"))
    folder = os.path.join(album_bytes, b"d\xe9j\xe0")
    os.makedirs(os.path.join(folder, b"inner"))
    shutil.copyfile(lfw_photo(shared, "Dick_Cheney", cheney[3]), os.path.join(folder, b"x.jpg"))
    shutil.copyfile(lfw_photo(shared, "Dick_Cheney", cheney[4]), os.path.join(folder, b"inner", b"y.jpg"))
    return ordinary


def test_photos_and_folders_whose_names_are_not_utf8_are_left_out_not_a_crash(shared, tmp_path):
    album = tmp_path / "album"
    ordinary = _undecodable_album(shared, album)
    catalog = tmp_path / "c.sqlite3"

    done = _faceme("scan", album, "--catalog", catalog, "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "surrogates not allowed" not in done.stderr, done.stderr
    assert "scanned: 2 photos, 2 new" in done.stdout, done.stdout
    assert "3 left out (3 name not valid UTF-8)" in done.stdout, done.stdout
    assert _photo_paths(catalog) == sorted(str(p) for p in ordinary)

    # logged once each, the bad bytes escaped: the file by its name, the folder once for its two photos
    file_lines = [line for line in done.stderr.splitlines() if "caf\\xe9.jpg" in line]
    assert len(file_lines) == 1 and "not valid UTF-8" in file_lines[0], done.stderr
    folder_lines = [line for line in done.stderr.splitlines() if "d\\xe9j\\xe0" in line]
    assert len(folder_lines) == 1 and "2 photo(s)" in folder_lines[0], done.stderr
    assert "\\udc" not in done.stderr, done.stderr  # never Python's surrogates

    again = _faceme("scan", album, "--catalog", catalog, "--workers", "2")  # the parallel path too
    assert again.returncode == 0, again.stderr
    assert "2 photos, 0 new" in again.stdout and "2 unchanged, 0 unreadable, 3 left out" in again.stdout, again.stdout
    assert "0 missing" in again.stdout, again.stdout


def test_a_folder_or_photo_given_with_a_name_not_utf8_is_left_out(shared, tmp_path):
    album = tmp_path / "album"
    ordinary = _undecodable_album(shared, album)
    catalog = tmp_path / "c.sqlite3"
    album_bytes = os.fsencode(album)

    folder = os.fsdecode(os.path.join(album_bytes, b"d\xe9j\xe0"))
    photo = os.fsdecode(os.path.join(album_bytes, b"caf\xe9.jpg"))
    done = _faceme("scan", folder, photo, ordinary[0], "--catalog", catalog, "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert "scanned: 1 photo, 1 new" in done.stdout and "3 left out (3 name not valid UTF-8)" in done.stdout, \
        done.stdout
    assert _photo_paths(catalog) == [str(ordinary[0])]
