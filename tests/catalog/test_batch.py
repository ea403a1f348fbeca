"""Batch restoration with the tiny model pack: mirrored output, summary, and resuming after SIGKILL."""

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
from engine.catalog.models import BatchItem, ItemStatus, Restoration
from engine.imageio import PARTIAL_SUFFIX, read_image

ROOT = Path(__file__).resolve().parents[2]


def test_batch_killed_and_resumed(shared, tmp_path, tiny_pack, run_cli):
    album = tmp_path / "album"
    cheney = add_photos(shared, album / "2003" / "trip", "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:2])
    ryder = add_photos(shared, album / "misc", "Winona_Ryder", lfw_numbers(shared, "Winona_Ryder")[:1])
    inputs = {p: p.read_bytes() for p in [*cheney, *ryder]}
    out, db = tmp_path / "out", tmp_path / "catalog.sqlite3"
    # the album's faces found with dlib (the tiny pack's ArcFace has random weights: its people would be noise);
    # the batch's pre-scan then keeps the catalog's model although the pack has an InsightFace part
    code, _, err = run_cli("scan", str(album), "--catalog", str(db), "--faces", "dlib", "--workers", "1")
    assert code == 0, err
    args = ["batch", str(album), "--out", str(out), "--catalog", str(db), "--models", str(tiny_pack),
            "--steps", "2", "--seed", "3", "--unmatched", "skip"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())", *args],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(0.2)
            assert proc.poll() is None, f"the batch ended before it could be killed: {proc.stderr.read()[-2000:]!r}"
            try:
                with sqlite3.connect(db, timeout=5) as con:
                    if con.execute("select count(*) from batch_items where status='done'").fetchone()[0] >= 1:
                        break
            except sqlite3.OperationalError:
                pass  # not created yet
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)

    code, stdout, stderr = run_cli(*args)
    assert code == 0, stderr
    assert "restored" in stdout and "skipped" in stdout
    # Ryder's single photo: its face is in no person, and unmatched faces are left alone
    assert "no face to restore: in no person of the album; unmatched faces are left alone" in stdout

    catalog = open_catalog(db)
    try:
        assert catalog.integrity_check() == "ok"
        with catalog.session() as s:
            items = s.scalars(select(BatchItem)).all()
            assert len(items) == 3 and len({i.photo_id for i in items}) == 3
            assert {i.status for i in items} <= {ItemStatus.done, ItemStatus.skipped}
            done = [i for i in items if i.status == ItemStatus.done]
            assert len(done) == 2
            # each photo restored once: one restoration row per done photo, none for the others
            per_photo = dict(s.execute(select(Restoration.photo_id, func.count(Restoration.id))
                                       .group_by(Restoration.photo_id)).all())
            assert per_photo == {i.photo_id: 1 for i in done}
    finally:
        catalog.close()
    # the output tree mirrors the album, every output is whole, nothing partial is left
    for path in cheney:
        target = out / path.relative_to(album)
        assert read_image(target).pixels.shape == read_image(path).pixels.shape
    assert not (out / "misc").exists() or not any((out / "misc").iterdir())
    assert list(out.rglob(f"*{PARTIAL_SUFFIX}")) == []
    assert all(p.read_bytes() == data for p, data in inputs.items())  # inputs untouched
    # running it again does nothing more
    code, stdout, _ = run_cli(*args)
    # the same job again (issue 19: not a new job): every photo was done before, Ryder's skipped in an earlier
    # run; each photo counted once (issue 14 item 13: no photo both "skipped" and "done before"), and it says so
    assert code == 0 and "3 photos: 0 restored, 0 skipped, 0 failed in this run (3 done before this run)" in stdout
    assert f"skipped in an earlier run: {ryder[0]}" in stdout and "batch 1 had finished already" in stdout
    # --verbose (and `jobs resume --verbose`) print the faces of the photos restored in earlier runs too
    for verbose in ([*args, "--verbose"], ["jobs", "resume", "1", "--catalog", str(db), "--verbose"]):
        code, stdout, err = run_cli(*verbose)
        assert code == 0, err
        lines = stdout.splitlines()
        for path in cheney:
            at = lines.index(f"restored in an earlier run: {path} → {out / path.relative_to(album)}")
            assert lines[at + 1].startswith("  face 1: ") and "seed" in lines[at + 1], stdout


def test_batch_needs_a_model_pack_and_a_separate_output(tmp_path, run_cli):
    album = tmp_path / "album"
    album.mkdir()
    code, _, err = run_cli("batch", album, "--out", tmp_path / "out", "--models", tmp_path / "empty",
                           "--catalog", tmp_path / "c.sqlite3")
    assert code == 4 and "model pack" in err
    assert not (tmp_path / "c.sqlite3").exists()  # refused before any scanning
    code, _, err = run_cli("batch", tmp_path / "missing", "--out", tmp_path / "out")
    assert code == 2 and "no such folder" in err


def test_output_inside_the_album_is_refused(tmp_path, catalog):
    import pytest

    from engine.catalog.jobs import start_or_resume
    from engine.errors import UsageError
    from engine.restore.options import RestoreOptions

    (tmp_path / "album").mkdir()
    with pytest.raises(UsageError, match="inside an album"):
        start_or_resume(catalog, [tmp_path / "album"], tmp_path / "album" / "restored", RestoreOptions(),
                        scan_first=False)
