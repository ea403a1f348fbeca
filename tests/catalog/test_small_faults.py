"""Small faults of issue 18 (finding 10), each tried with real processes and real files: a backup killed
mid-copy, a catalog on read-only media, a catalog whose header is zeroed, named pipes and devices in an
album, a newline in a file name."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from catalog_testkit import add_photos, lfw_numbers
from catalog_testkit import cli_env as _env
from catalog_testkit import faceme_cli as _faceme
from catalog_testkit import filled_catalog as _filled_catalog
from engine.catalog.maintenance import remove_abandoned_partials
from engine.cli.printable import printable
from engine.testing.small_disk import SmallDiskUnavailable, small_disk

ROOT = Path(__file__).resolve().parents[2]


def _photo_count(path: Path) -> int:
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM photos").fetchone()[0]


# --- a: a backup killed mid-copy --------------------------------------------------------------------------

#: a backup that stops inside the copy (in SQLite's backup loop, after its first step) until killed
_PAUSED_BACKUP = """
import sys, time
from engine.catalog.maintenance import backup_catalog

def pause(done, total, message):
    print(f"copying {done}/{total}", flush=True)
    time.sleep(600)

backup_catalog(sys.argv[1], sys.argv[2], progress=pause)
"""


def _start_paused_backup(catalog: Path, target: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _PAUSED_BACKUP, str(catalog), str(target)], cwd=ROOT,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("copying"), proc.stderr.read() if proc.poll() is not None else line
    return proc


def _partials(target: Path) -> set[Path]:
    return set(target.parent.glob(f".{target.name}.*.partial"))


def test_a_partial_copy_left_by_a_killed_backup_is_removed_by_the_next_one_but_not_a_live_ones(tmp_path):
    catalog = _filled_catalog(tmp_path / "family.sqlite3", photos=400)
    target = tmp_path / "backups" / "copy.sqlite3"
    target.parent.mkdir()

    killed = _start_paused_backup(catalog, target)
    left_by_killed = _partials(target)
    assert len(left_by_killed) == 1 and next(iter(left_by_killed)).stat().st_size > 0
    live = _start_paused_backup(catalog, target)  # another backup to the same name, still copying
    try:
        written_by_live = _partials(target) - left_by_killed
        assert len(written_by_live) == 1
        killed.send_signal(signal.SIGKILL)  # kill -9 in the middle of the copy
        killed.wait(timeout=30)
        assert _partials(target) == left_by_killed | written_by_live  # the finding: nothing removes it

        done = _faceme("catalog", "backup", target, "--catalog", catalog)
        assert done.returncode == 0, done.stderr
        removed = next(iter(left_by_killed))
        assert not removed.exists()
        assert f"removed {removed}" in done.stderr and "interrupted backup" in done.stderr, done.stderr
        assert f"process {killed.pid}" in done.stderr
        assert _partials(target) == written_by_live  # the live backup's partial is left alone
        assert live.poll() is None
        assert _photo_count(target) == 400
        assert _faceme("catalog", "check", "--catalog", target).returncode == 0
    finally:
        live.kill()
        live.wait(timeout=30)
    for partial in _partials(target):
        partial.unlink()


def test_a_partial_copy_whose_writer_cannot_be_asked_is_removed_only_once_long_untouched(tmp_path):
    """Partials named by the version before this one (no pid), or written from another computer: a live
    backup writes at every step, so one untouched for hours is abandoned; a recent one is kept."""
    target = tmp_path / "copy.sqlite3"
    old_style = tmp_path / ".copy.sqlite3.k2x_9qzt.partial"
    elsewhere = tmp_path / ".copy.sqlite3.backup-by-4242@another-computer.local.ab12cd34.partial"
    recent = tmp_path / ".copy.sqlite3.mm3n_0a1.partial"
    other_target = tmp_path / ".copy.sqlite3.old.k2x_9qzt.partial"  # a backup to "copy.sqlite3.old"
    for path in (old_style, elsewhere, recent, other_target):
        path.write_bytes(b"\0" * 4096)
    hours_ago = time.time() - 3 * 3600
    for path in (old_style, elsewhere, other_target):
        os.utime(path, (hours_ago, hours_ago))

    assert sorted(remove_abandoned_partials(target)) == sorted([old_style, elsewhere])
    assert recent.exists() and other_target.exists()


# --- b: a catalog on read-only media ----------------------------------------------------------------------

@contextmanager
def _read_only_media(folder: Path, files: list[Path]) -> Iterator[Path]:
    """`folder` holding copies of `files`, then made read-only: as root a tmpfs remounted read-only (root
    ignores file modes), otherwise the folder and files without write permission."""
    if os.geteuid() != 0:
        folder.mkdir()
        for file in files:
            shutil.copy2(file, folder / file.name)
            os.chmod(folder / file.name, 0o444)
        os.chmod(folder, 0o555)
        try:
            yield folder
        finally:
            os.chmod(folder, 0o755)
        return
    try:
        with small_disk(folder, 16 << 20) as disk:
            for file in files:
                shutil.copy2(file, disk.path / file.name)
            done = subprocess.run(["mount", "-o", "remount,ro", str(disk.path)], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"cannot remount a tmpfs read-only here: {done.stderr.strip()}")
            yield disk.path
    except SmallDiskUnavailable as exc:
        pytest.skip(f"no read-only file system can be made here ({exc})")


def _wal_snapshot(catalog: Path, into: Path) -> tuple[Path, Path, Path]:
    """Copies of `catalog` with changes still in its -wal (as a live or killed writer leaves it):
    main file, -wal, -shm; the 5 photos added after the checkpoint are only in the -wal."""
    writer = sqlite3.connect(catalog)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.executemany("INSERT INTO photos (path, size, mtime_ns, status, scanned_at) "
                       "VALUES (?, 1, 1, 'ok', '2026-01-01 00:00:00')",
                       [(f"/album/late-{i}.jpg",) for i in range(5)])
    writer.commit()
    into.mkdir()
    copies = []
    for suffix in ("", "-wal", "-shm"):
        copies.append(Path(shutil.copy2(f"{catalog}{suffix}", into / f"{catalog.name}{suffix}")))
    writer.close()
    return copies[0], copies[1], copies[2]


def test_a_wal_catalog_on_read_only_media_can_be_checked_and_backed_up(tmp_path):
    catalog = _filled_catalog(tmp_path / "family.sqlite3")
    assert catalog.read_bytes()[18:20] == b"\x02\x02"  # WAL mode
    assert not Path(f"{catalog}-wal").exists() and not Path(f"{catalog}-shm").exists()
    with _read_only_media(tmp_path / "cdrom", [catalog]) as media:
        on_media = media / catalog.name
        assert not os.access(media, os.W_OK)

        done = _faceme("catalog", "check", "--catalog", on_media)
        assert done.returncode == 0 and ": ok" in done.stdout and "40 photos" in done.stdout, done.stdout + done.stderr
        done = _faceme("catalog", "backup", tmp_path / "copy.sqlite3", "--catalog", on_media)
        assert done.returncode == 0, done.stderr
        assert _photo_count(tmp_path / "copy.sqlite3") == 40

        # using it (it would need the -wal/-shm beside it): a message that says read-only, and what to do
        done = _faceme("people", "list", "--catalog", on_media)
        assert done.returncode == 5
        assert "read-only" in done.stderr and "faceme catalog backup" in done.stderr, done.stderr
        assert "missing folder" not in done.stderr and "Traceback" not in done.stderr
        assert sorted(p.name for p in media.iterdir()) == [catalog.name]  # nothing was written there


def test_changes_still_in_the_wal_on_read_only_media_are_never_ignored(tmp_path):
    """With its -shm, SQLite reads the -wal read-only: the 5 late photos are in the check and the copy.
    Without it they can't be read, and checking or copying the main file alone would give an older
    catalog: that is refused, saying what to do."""
    catalog = _filled_catalog(tmp_path / "family.sqlite3")
    main, wal, shm = _wal_snapshot(catalog, tmp_path / "snapshot")
    with _read_only_media(tmp_path / "stick", [main, wal, shm]) as media:
        done = _faceme("catalog", "check", "--catalog", media / main.name)
        assert done.returncode == 0 and "45 photos" in done.stdout, done.stdout + done.stderr
        done = _faceme("catalog", "backup", tmp_path / "copy.sqlite3", "--catalog", media / main.name)
        assert done.returncode == 0 and _photo_count(tmp_path / "copy.sqlite3") == 45, done.stderr
    with _read_only_media(tmp_path / "stick2", [main, wal]) as media:
        for command in (["check"], ["backup", tmp_path / "copy2.sqlite3"]):
            done = _faceme("catalog", *command, "--catalog", media / main.name)
            assert done.returncode == 5, done.stdout + done.stderr
            assert "read-only" in done.stderr and "-wal" in done.stderr, done.stderr
            assert "missing folder" not in done.stderr and "Traceback" not in done.stderr
        assert not (tmp_path / "copy2.sqlite3").exists()


# --- c: a catalog whose header is zeroed ------------------------------------------------------------------

def _overwrite_start(path: Path, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.write(data)


@pytest.mark.parametrize("damage", ["header zeroed", "magic overwritten"])
def test_a_catalog_whose_header_is_lost_is_called_damaged_not_another_file(tmp_path, damage):
    path = _filled_catalog(tmp_path / "family.sqlite3")
    _overwrite_start(path, bytes(100) if damage == "header zeroed" else b"\xde\xad\xbe\xef" * 4)
    before = path.read_bytes()

    check = _faceme("catalog", "check", "--catalog", path)
    assert check.returncode == 5
    assert "damaged" in check.stdout and "header" in check.stdout and "restore a backup" in check.stdout, check.stdout
    assert "not an SQLite database" not in check.stdout
    for command in (["people", "list"], ["scan", tmp_path / "no-photos-here"]):
        (tmp_path / "no-photos-here").mkdir(exist_ok=True)
        done = _faceme(*command, "--catalog", path)
        assert done.returncode == 5, done.stderr
        assert "damaged" in done.stderr and "header" in done.stderr and "restore" in done.stderr, done.stderr
        assert "not a FaceMe catalog" not in done.stderr and "move this one away" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == before


def test_a_file_of_another_kind_with_a_zero_start_is_still_not_a_catalog(tmp_path):
    """The other side of the line: a file whose first 100 bytes are zero but whose next bytes are not an
    SQLite page (a disk image, a raw dump) is another kind of file, as before."""
    path = tmp_path / "disk.img"
    rest = np.random.default_rng(3).integers(0, 256, 8192 - 100, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(100) + b"\x01" + rest[1:])
    done = _faceme("people", "list", "--catalog", path)
    assert done.returncode == 5 and "not a FaceMe catalog" in done.stderr, done.stderr


# --- d: named pipes, devices and sockets in an album ------------------------------------------------------

def _special_files(album: Path) -> list[str]:
    """A named pipe named like a photo and one not, a socket and (as root) a character device named like
    photos; returns their names. Opening the pipes for reading would wait for a writer forever."""
    os.mkfifo(album / "pipe.jpg")
    os.mkfifo(album / "pipe")
    names = ["pipe.jpg", "pipe"]
    if len(os.fsencode(album / "socket.jpg")) < 100:  # AF_UNIX paths are short
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(album / "socket.jpg"))
        server.close()  # the socket file stays
        names.append("socket.jpg")
    if os.geteuid() == 0:
        os.mknod(album / "null.jpg", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # as /dev/null
        names.append("null.jpg")
    return names


def test_named_pipes_and_devices_in_an_album_are_left_out_never_opened(shared, tmp_path):
    album = tmp_path / "album"
    add_photos(shared, album, "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:2])
    special = _special_files(album)
    (album / "notes.txt").write_text("who is who")
    left_out = len(special) + 1
    catalog = tmp_path / "c.sqlite3"

    # a real scan, under a timeout: a scan that opened a pipe would hang here
    done = _faceme("scan", album, "--catalog", catalog, "--workers", "1", timeout=180)
    assert done.returncode == 0, done.stderr
    assert "scanned: 2 photos, 2 new" in done.stdout, done.stdout
    assert f"{left_out} left out ({left_out} not a photo)" in done.stdout, done.stdout
    assert _photo_count(catalog) == 2

    again = _faceme("scan", album, "--catalog", catalog, "--workers", "1", timeout=180)
    assert again.returncode == 0 and f"2 unchanged, 0 unreadable, {left_out} left out" in again.stdout, again.stdout


# --- e: a newline in a file name --------------------------------------------------------------------------

def test_printable_escapes_what_would_break_a_line_and_keeps_the_rest():
    assert printable("two\nlines.jpg") == "two\\nlines.jpg"
    assert printable(Path("/a/tab\there\r.jpg")) == "/a/tab\\there\\r.jpg"
    assert printable("esc\x1b[31mred\x7f\x85") == "esc\\x1b[31mred\\x7f\\x85"
    assert printable("para\u2028graph") == "para\\u2028graph"
    assert printable(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg"  # a Latin-1 name on a UTF-8 system
    assert printable("Zoë 李 no\u00a0break.jpg") == "Zoë 李 no\u00a0break.jpg"


def test_a_newline_in_a_file_name_does_not_split_listing_lines(shared, tmp_path):
    album = tmp_path / "album"
    cheney = lfw_numbers(shared, "Dick_Cheney")
    add_photos(shared, album, "Dick_Cheney", cheney[:2])
    newline_photo = album / "two\nlines.jpg"
    shutil.copy2(add_photos(shared, tmp_path / "more", "Dick_Cheney", cheney[2:3])[0], newline_photo)
    (album / "broken\nfile.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    catalog = tmp_path / "c.sqlite3"

    scanned = _faceme("scan", album, "--catalog", catalog, "--workers", "1", timeout=180)
    assert scanned.returncode == 0, scanned.stderr
    unreadable = [line for line in scanned.stdout.splitlines() if line.startswith("unreadable:")]
    assert len(unreadable) == 1 and "broken\\nfile.jpg: " in unreadable[0], scanned.stdout

    listing = _faceme("people", "list", "--catalog", catalog)
    assert listing.returncode == 0, listing.stderr
    face_lines = [line for line in listing.stdout.splitlines() if line.lstrip().startswith("#")]
    assert len(face_lines) == 3, listing.stdout  # one line per face
    assert all(line.lstrip().startswith("#") or line[:5].strip().isdigit() or line.startswith("unknown")
               for line in listing.stdout.splitlines()), listing.stdout
    assert any(f"{album}/two\\nlines.jpg  [" in line for line in face_lines), listing.stdout

    exact = json.loads(_faceme("people", "list", "--json", "--catalog", catalog).stdout)
    photos = {face["photo"] for person in exact["people"] for face in person["faces"]}
    photos |= {face["photo"] for face in exact["unassigned"]}
    assert str(newline_photo) in photos  # --json keeps the exact name

    person = exact["people"][0]["id"]
    refs = _faceme("people", "refs", str(person), "--catalog", catalog)
    assert refs.returncode == 0 and all(line.startswith(("references of", "  ")) for line in refs.stdout.splitlines())


def test_a_catalog_path_with_a_newline_stays_on_one_line(tmp_path):
    folder = tmp_path / "odd\nfolder"
    folder.mkdir()
    catalog = _filled_catalog(folder / "c.sqlite3", photos=2)
    done = _faceme("catalog", "check", "--catalog", catalog)
    assert done.returncode == 0 and done.stdout.count("\n") == 1 and "odd\\nfolder" in done.stdout, done.stdout
    done = _faceme("catalog", "backup", tmp_path / "copy.sqlite3", "--catalog", catalog)
    assert done.returncode == 0 and done.stdout.count("\n") == 1, done.stdout
