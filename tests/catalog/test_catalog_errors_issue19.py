"""Every catalog error a user can meet is one line saying what to do (issue 19, item 2): each kind is made
happen for real — a missing folder, another kind of file, a damaged catalog, a lock held too long, a
database of someone else's, a scan with another face model, a batch run elsewhere or gone, a change
another process made first — and `faceme` must print exactly one line naming the way out, never a
traceback or the driver's SQL."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from engine.catalog.db import open_catalog


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A catalog with one batch job of one photo, its face model recorded (dlib), made once."""
    from engine.catalog.face_model import use_model
    from engine.catalog.models import BatchItem, BatchJob, Photo

    db = tmp_path_factory.mktemp("errors") / "catalog.sqlite3"
    catalog = open_catalog(db)
    try:
        use_model(catalog, "dlib/resnet-128")
        with catalog.transaction() as session:
            photo = Photo(path="/album/a.jpg", size=1, mtime_ns=1)
            job = BatchJob(out_dir="/restored", roots=["/album"], options={"steps": 1})
            session.add_all([photo, job])
            session.flush()
            session.add(BatchItem(job_id=job.id, photo_id=photo.id, relative_output="a.jpg"))
    finally:
        catalog.close()
    return db


def _copy(template: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(template, folder / template.name)  # closed: one file, no -wal
    return folder / template.name


def _missing_folder(tmp: Path, template: Path, monkeypatch, request) -> list:
    return ["jobs", "list", "--catalog", tmp / "no-such-folder" / "catalog.sqlite3"]


def _not_a_catalog(tmp: Path, template: Path, monkeypatch, request) -> list:
    notes = tmp / "notes.sqlite3"
    notes.write_text("shopping list: milk, eggs\n" * 200)
    return ["jobs", "list", "--catalog", notes]


def _damaged(tmp: Path, template: Path, monkeypatch, request) -> list:
    db = _copy(template, tmp)
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size // 2)
    return ["jobs", "list", "--catalog", db]


def _locked(tmp: Path, template: Path, monkeypatch, request) -> list:
    from engine.catalog import db as db_module

    db = _copy(template, tmp)
    monkeypatch.setattr(db_module, "BUSY_TIMEOUT_MS", 300)  # the user's 30 s, shortened
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("BEGIN IMMEDIATE")  # another process writing for a long time
    request.addfinalizer(holder.close)
    return ["jobs", "cancel", "1", "--catalog", db]


def _someone_elses(tmp: Path, template: Path, monkeypatch, request) -> list:
    other = tmp / "recipes.sqlite3"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE recipes (name TEXT)")
        con.execute("INSERT INTO recipes VALUES ('bread')")
    con.close()
    return ["jobs", "list", "--catalog", other]


def _other_face_model(tmp: Path, template: Path, monkeypatch, request) -> list:
    (tmp / "album").mkdir()
    return ["scan", tmp / "album", "--faces", "antelopev2", "--workers", "1", "--catalog", _copy(template, tmp)]


def _batch_elsewhere(tmp: Path, template: Path, monkeypatch, request) -> list:
    from engine.catalog.leases import this_host

    db = _copy(template, tmp)
    with sqlite3.connect(db) as con:  # a live process (this test's parent) holds the job's lease
        con.execute("UPDATE batch_jobs SET owner_pid = ?, owner_host = ?, owner_token = 'theirs', "
                    "owner_heartbeat = datetime('now') WHERE id = 1", (os.getppid(), this_host()))
    con.close()
    return ["jobs", "resume", "1", "--catalog", db]


def _batch_gone(tmp: Path, template: Path, monkeypatch, request) -> list:
    return ["jobs", "resume", "99", "--catalog", _copy(template, tmp)]


def _changed_meanwhile(tmp: Path, template: Path, monkeypatch, request) -> list:
    db = _copy(template, tmp)
    with sqlite3.connect(db) as con:  # the database refuses the change, as when another process removed a row
        con.execute("CREATE TRIGGER refuse BEFORE UPDATE ON batch_jobs "
                    "BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed'); END")
    con.close()
    return ["jobs", "cancel", "1", "--catalog", db]


def _no_catalog_to_check(tmp: Path, template: Path, monkeypatch, request) -> list:
    return ["catalog", "check", "--catalog", tmp / "catalog.sqlite3"]


#: kind → (make it happen, exit code, words of what to do)
KINDS = {
    "missing folder": (_missing_folder, 5, "create it first"),
    "not a catalog": (_not_a_catalog, 5, "choose another catalog file"),
    "damaged": (_damaged, 5, "faceme catalog backup"),
    "locked too long": (_locked, 5, "Try again when it has finished"),
    "someone else's database": (_someone_elses, 5, "Choose another catalog file"),
    "another face model": (_other_face_model, 2, "faceme catalog reanalyse --model antelopev2"),
    "batch run elsewhere": (_batch_elsewhere, 6, "faceme jobs cancel 1"),
    "batch gone": (_batch_gone, 2, "faceme jobs list"),
    "changed by another process": (_changed_meanwhile, 5, "Run the command again"),
    "no catalog to check": (_no_catalog_to_check, 5, "scan an album to create one"),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_catalog_error_is_one_line_with_what_to_do(kind, tmp_path, template, run_cli, monkeypatch, request):
    make, exit_code, what_to_do = KINDS[kind]
    code, out, err = run_cli(*make(tmp_path, template, monkeypatch, request))
    lines = err.strip().splitlines()
    assert code == exit_code, (code, err)
    assert len(lines) == 1 and lines[0].startswith("faceme: error: "), err
    assert what_to_do in lines[0], lines[0]
    assert "Traceback" not in err and "[SQL" not in err and out == ""
