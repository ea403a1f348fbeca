"""Damaged catalogs, full disks and two processes creating one catalog: one CatalogError naming the
file, nothing modified, never a half-made schema (issue 14, items 3 and 4)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, func, select

from catalog_testkit import add_photos, lfw_numbers
from catalog_testkit import cli_env as _env
from catalog_testkit import faceme_cli as _faceme
from catalog_testkit import filled_catalog as _filled_catalog
from engine.catalog.db import current_revision, head_revision, open_catalog
from engine.catalog.maintenance import backup_catalog, check_catalog
from engine.catalog.models import Base, Face, Person, Photo
from engine.errors import CatalogError, UsageError
from engine.testing.small_disk import SmallDiskUnavailable, fill, small_disk

ROOT = Path(__file__).resolve().parents[2]


def _damage(path: Path, kind: str) -> None:
    data = bytearray(path.read_bytes())
    if kind == "garbage":
        data = bytearray(np.random.default_rng(1).integers(0, 256, len(data), dtype=np.uint8).tobytes())
    elif kind == "truncated":
        data = data[: len(data) // 3]
    elif kind == "malformed":  # the b-tree page headers of a table in the middle of the file
        page = 4096
        for start in range(3 * page, len(data) - page, 5 * page):
            data[start:start + 8] = bytes(8 * [0xFF])
    elif kind == "zeroed":  # a block of the file lost (as after a crash of the disk, not of SQLite)
        data[8192:8192 + 16384] = bytes(16384)
    elif kind == "text":
        data = bytearray(b"photo,person\na.jpg,Ann\n" * 100)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["garbage", "truncated", "malformed", "zeroed", "text"])
def test_a_damaged_catalog_is_one_clear_error_and_is_not_modified(tmp_path, kind, run_cli):
    path = _filled_catalog(tmp_path / "family.sqlite3")
    _damage(path, kind)
    before = path.read_bytes()
    with pytest.raises(CatalogError) as caught:
        open_catalog(path)
    assert caught.value.path == path
    assert caught.value.reason in ("damaged", "not-a-database")
    assert "was not changed" in str(caught.value)
    assert path.read_bytes() == before

    # the CLI: one line naming the file and what to do, exit 5, no traceback; still unchanged
    done = _faceme("people", "list", "--catalog", path)
    assert done.returncode == 5, done.stderr
    assert "Traceback" not in done.stderr and "sqlalchemy" not in done.stderr.lower()
    assert str(path) in done.stderr and "was not changed" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    code, out, _ = run_cli("catalog", "check", "--catalog", path)
    assert code == 5 and str(path) in out, out
    assert path.read_bytes() == before


def test_a_half_made_schema_left_by_an_older_version_is_rebuilt_on_open(tmp_path):
    """What the old code left after a full disk: some tables created (autocommitted), no revision."""
    path = tmp_path / "half.sqlite3"
    connection = sqlite3.connect(path)
    from sqlalchemy.schema import CreateTable
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    for table in Base.metadata.sorted_tables[:3]:
        connection.execute(str(CreateTable(table).compile(dialect=sqlite_dialect.dialect())))
    connection.commit()
    connection.close()
    assert "half-made" in check_catalog(path).problems[0]

    catalog = open_catalog(path)
    try:
        assert current_revision(catalog.engine) == head_revision()
        with catalog.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert catalog.integrity_check() == "ok"
    finally:
        catalog.close()
    assert check_catalog(path).ok


def test_a_database_of_something_else_is_refused_untouched(tmp_path):
    path = tmp_path / "other.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE photos (name TEXT)")
    connection.execute("INSERT INTO photos VALUES ('mine')")
    connection.commit()
    connection.close()
    before = path.read_bytes()
    with pytest.raises(CatalogError, match="no FaceMe schema revision") as caught:
        open_catalog(path)
    assert caught.value.reason == "unknown-schema"
    assert path.read_bytes() == before


_CREATE = """
import sys, time
from engine.catalog.db import open_catalog
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
open_catalog(sys.argv[1]).close()
print("ok")
"""


@pytest.mark.parametrize("round_", range(3))
def test_processes_creating_one_catalog_at_the_same_moment_all_succeed(tmp_path, round_):
    path = tmp_path / "new.sqlite3"
    start = time.time() + 3.0  # all interpreters are up and waiting by then
    procs = [subprocess.Popen([sys.executable, "-c", _CREATE, str(path), str(start)], cwd=ROOT, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outcomes]
    catalog = open_catalog(path)
    try:
        assert current_revision(catalog.engine) == head_revision()
        assert catalog.integrity_check() == "ok"
        with catalog.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        catalog.close()


def _page_limit(catalog, pages: int) -> None:
    """SQLite's own "disk full": the database may not grow past `pages` pages."""
    @event.listens_for(catalog.engine, "connect")
    def _limit(dbapi_connection, _record):
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")
    catalog.engine.dispose()


def test_a_full_database_mid_write_is_a_catalog_error_and_loses_nothing(tmp_path):
    path = _filled_catalog(tmp_path / "c.sqlite3", photos=5)
    catalog = open_catalog(path)
    pages = catalog.engine.connect().exec_driver_sql("PRAGMA page_count").scalar()
    _page_limit(catalog, pages + 1)
    rng = np.random.default_rng(2)
    with pytest.raises(CatalogError) as caught:
        with catalog.transaction() as session:
            for i in range(200):
                photo = Photo(path=f"/big/{i}.jpg", size=1, mtime_ns=1)
                photo.faces.append(Face(x1=0, y1=0, x2=1, y2=1, score=1, landmarks=[], embedding=Face.pack(
                    rng.normal(size=512)), embedding_model="m"))
                session.add(photo)
    assert caught.value.reason == "disk-full" and caught.value.path == path
    assert "Free some space" in str(caught.value)
    with catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Photo)) == 5
    assert catalog.integrity_check() == "ok"
    catalog.close()


@pytest.fixture
def disk(tmp_path):
    try:
        with small_disk(tmp_path / "disk", 96 * 1024) as mounted:
            yield mounted
    except SmallDiskUnavailable as exc:
        pytest.skip(f"no small filesystem here ({exc}); the max_page_count test covers a full database")


def test_creating_a_catalog_on_a_full_disk_leaves_no_half_made_schema(disk):
    path = disk.path / "catalog.sqlite3"
    with pytest.raises(CatalogError) as caught:
        open_catalog(path)
    assert caught.value.reason in ("disk-full", "io-error") and caught.value.path == path
    left = check_catalog(path) if path.exists() else None
    assert left is None or not any("half-made" in p for p in left.problems)
    disk.resize(4 << 20)  # the user frees some space
    catalog = open_catalog(path)
    try:
        assert current_revision(catalog.engine) == head_revision()
        assert catalog.integrity_check() == "ok"
    finally:
        catalog.close()


def test_a_scan_onto_a_full_disk_says_so_and_resumes_after_space_is_freed(shared, tmp_path, disk):
    album = tmp_path / "album"
    add_photos(shared, album, "Arnold_Schwarzenegger", lfw_numbers(shared, "Arnold_Schwarzenegger")[:6])
    catalog_path = disk.path / "catalog.sqlite3"
    disk.resize(8 << 20)
    open_catalog(catalog_path).close()
    fill(disk, leave=4096)
    done = _faceme("scan", album, "--catalog", catalog_path, "--no-thumbnails")
    assert done.returncode == 5, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and str(catalog_path) in done.stderr
    assert "the disk holding the catalog is full" in done.stderr and "damaged" not in done.stderr
    (disk.path / "filler").unlink()
    assert check_catalog(catalog_path).ok
    done = _faceme("scan", album, "--catalog", catalog_path, "--no-thumbnails")
    assert done.returncode == 0, done.stderr
    catalog = open_catalog(catalog_path)
    try:
        with catalog.session() as session:
            paths = session.scalars(select(Photo.path)).all()
        assert sorted(paths) == sorted(str(p) for p in album.iterdir()) and len(paths) == 6
        assert catalog.integrity_check() == "ok"
    finally:
        catalog.close()


def test_backup_copies_a_catalog_in_use(tmp_path):
    path = _filled_catalog(tmp_path / "c.sqlite3")
    catalog = open_catalog(path)
    try:
        writer = catalog.session()  # a reader/writer holding the catalog open while it is copied
        writer.add(Person(name="Bo", embedding_model="dlib/resnet-128"))
        writer.commit()
        target = backup_catalog(path, tmp_path / "copy.sqlite3")
        with pytest.raises(UsageError, match="already exists"):
            backup_catalog(path, target)
        writer.close()
    finally:
        catalog.close()
    copy = open_catalog(target)
    try:
        with copy.session() as session:
            assert session.scalar(select(func.count()).select_from(Photo)) == 40
            assert sorted(session.scalars(select(Person.name))) == ["Ann", "Bo"]
    finally:
        copy.close()
    assert not list(tmp_path.glob("*.partial"))
    done = _faceme("catalog", "backup", tmp_path / "cli-copy.sqlite3", "--catalog", path)
    assert done.returncode == 0 and (tmp_path / "cli-copy.sqlite3").is_file(), done.stderr
    assert _faceme("catalog", "check", "--catalog", tmp_path / "cli-copy.sqlite3").returncode == 0


_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("UPDATE people SET name = 'held' WHERE 0")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""


def test_a_catalog_locked_too_long_by_another_process_is_a_catalog_error(tmp_path, monkeypatch):
    import engine.catalog.db as db

    path = _filled_catalog(tmp_path / "c.sqlite3", photos=2)
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 500)
    catalog = open_catalog(path)
    holder = subprocess.Popen([sys.executable, "-c", _LOCK, str(path), "20"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(CatalogError) as caught:
            with catalog.transaction() as session:
                session.add(Person(name="Cy", embedding_model="dlib/resnet-128"))
        assert 0.4 < time.monotonic() - started < 10  # it waited for the lock, then gave up
        assert caught.value.reason == "locked" and caught.value.path == path
        assert "locked for more than 0.5 s" in str(caught.value)
    finally:
        holder.kill()
        holder.wait()
    with catalog.transaction() as session:  # the lock is gone: the same write goes through
        session.add(Person(name="Cy", embedding_model="dlib/resnet-128"))
    catalog.close()
