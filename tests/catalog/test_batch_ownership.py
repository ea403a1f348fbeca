"""A batch job run by one process at a time, with real processes (issue 14, items 6 and 9): while a
`faceme batch` runs, a second `faceme batch` or `faceme jobs resume` of the same job is refused (exit 6
naming the process); after a kill -9 of the first, the second takes over and no photo is restored twice.
Output folders that contain an album are refused before anything is written."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from catalog_testkit import add_photos, lfw_numbers
from sqlalchemy import func, select

from engine.catalog.db import open_catalog
from engine.catalog.models import BatchItem, BatchJob, ItemStatus, Restoration

ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from engine.cli import main; sys.exit(main())"


def _query(db: Path, sql: str):
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute(sql).fetchone()
    except sqlite3.OperationalError:
        return None  # not created yet


def _wait_for(proc: subprocess.Popen, condition, what: str, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the batch ended before {what}: {proc.stderr.read()[-2000:]!r}"
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_running_batch_is_not_run_twice_and_is_taken_over_after_a_kill(shared, tmp_path, tiny_pack, run_cli):
    album = tmp_path / "album"
    add_photos(shared, album, "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:2])
    out, db = tmp_path / "out", tmp_path / "catalog.sqlite3"
    args = ["batch", str(album), "--out", str(out), "--catalog", str(db), "--models", str(tiny_pack),
            "--steps", "2", "--seed", "3"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    first = subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(first, lambda: _query(db, "select owner_pid from batch_jobs") == (first.pid,), "it held the job")
        job_id = _query(db, "select id from batch_jobs")[0]
        # a second `faceme batch` of the same albums and folder, and `faceme jobs resume`: refused, exit 6
        for second in (args, ["jobs", "resume", str(job_id), "--catalog", str(db)]):
            code, _, err = run_cli(*second)
            assert code == 6 and f"running in process {first.pid}" in err, (second, code, err)
        _wait_for(first, lambda: (_query(db, "select count(*) from batch_items where status='done'") or (0,))[0] >= 1,
                  "a photo was done")
        first.send_signal(signal.SIGKILL)
    finally:
        if first.poll() is None:
            first.kill()
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL, "the first batch finished before it could be killed"

    code, stdout, err = run_cli("jobs", "resume", str(job_id), "--catalog", str(db))  # takes over at once
    assert code == 0, err
    catalog = open_catalog(db)
    try:
        assert catalog.integrity_check() == "ok"
        with catalog.session() as s:
            items = s.scalars(select(BatchItem)).all()
            assert len(items) == 2 and {i.status for i in items} == {ItemStatus.done}
            assert all(i.output_sha256 for i in items)
            per_photo = dict(s.execute(select(Restoration.photo_id, func.count(Restoration.id))
                                       .group_by(Restoration.photo_id)).all())
            assert per_photo == {i.photo_id: 1 for i in items}  # each photo restored once
            assert s.get(BatchJob, job_id).owner_token is None  # released at the end
    finally:
        catalog.close()


def test_an_output_folder_containing_the_albums_is_refused_before_anything_is_written(tmp_path, run_cli, tiny_pack):
    parent = tmp_path / "photos"
    for name in ("A", "B"):
        (parent / name).mkdir(parents=True)
        (parent / name / "x.jpg").write_bytes(b"not looked at")
    db = tmp_path / "c.sqlite3"
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, out, err = run_cli("batch", parent / "A", parent / "B", "--out", parent, "--catalog", db,
                             "--models", tiny_pack)
    assert code == 2 and str(parent) in err and "contains the album folder" in err, err
    code, _, err = run_cli("batch", parent / "A", "--out", parent / "A" / "restored", "--catalog", db,
                           "--models", tiny_pack)
    assert code == 2 and "inside an album folder" in err, err
    code, _, err = run_cli("batch", parent / "A", "--out", parent / "A", "--catalog", db, "--models", tiny_pack)
    assert code == 2, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written, no catalog
