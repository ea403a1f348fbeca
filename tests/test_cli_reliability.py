"""The command line under the faults of issue 14 (item 13 and the CLI side of 6): a closed pipe, Ctrl-C,
a --catalog in a missing folder, a merge of a person with itself, `faceme jobs` using a job's own options."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.catalog.db import open_catalog
from engine.catalog.models import Assignment, AssignmentOrigin, BatchItem, BatchJob, Face, Person, Photo

ROOT = Path(__file__).resolve().parent.parent
CLI = "import sys; from engine.cli import main; sys.exit(main())"


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "FACEME_CATALOG": "/nonexistent/never-used.sqlite3"}


def _people_catalog(path: Path, people: int = 30, faces_each: int = 100) -> Path:
    catalog = open_catalog(path)
    rng = np.random.default_rng(0)
    with catalog.transaction() as session:
        for p in range(people):
            person = Person(name=f"Person {p}", embedding_model="dlib/resnet-128")
            session.add(person)
            session.flush()
            photo = Photo(path=f"/album/some/long/folder/name/photo-{p:04d}.jpg", size=1, mtime_ns=1)
            session.add(photo)
            for _ in range(faces_each):
                face = Face(x1=1, y1=2, x2=30, y2=40, score=0.9, landmarks=[[1, 2]] * 5,
                            embedding=Face.pack(rng.normal(size=128)), embedding_model="dlib/resnet-128")
                photo.faces.append(face)
                session.flush()
                session.add(Assignment(face_id=face.id, person_id=person.id, origin=AssignmentOrigin.machine))
    catalog.close()
    return path


def test_a_listing_piped_into_head_ends_quietly(tmp_path):
    catalog = _people_catalog(tmp_path / "c.sqlite3")
    proc = subprocess.Popen([sys.executable, "-c", CLI, "people", "list", "--catalog", str(catalog)], cwd=ROOT,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # `head -1` is done reading
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert first.startswith(b"    ")  # a person line was written
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert proc.returncode == 141

    shell = subprocess.run(f"'{sys.executable}' -c '{CLI}' people list --catalog '{catalog}' | head -3",
                           shell=True, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert len(shell.stdout.splitlines()) == 3 and shell.stderr == "", shell.stderr


def test_ctrl_c_during_a_scan_says_how_to_resume_and_the_rerun_finishes(shared, tmp_path):
    album = tmp_path / "album"
    album.mkdir()
    photos = sorted((shared / "data" / "deepface_ids").rglob("*.jpg"))[:6]
    for i, photo in enumerate(photos):
        shutil.copy2(photo, album / f"{i}-{photo.name}")
    catalog = tmp_path / "c.sqlite3"
    open_catalog(catalog).close()
    proc = subprocess.Popen([sys.executable, "-c", CLI, "scan", str(album), "--catalog", str(catalog)], cwd=ROOT,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:  # wait until the first photo is stored
        with sqlite3.connect(f"{catalog.as_uri()}?mode=ro", uri=True) as db:
            if db.execute("SELECT count(*) FROM photos").fetchone()[0] >= 1:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the scan finished before Ctrl-C arrived (machine too fast for this album)")
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run the same command again" in err
    assert "\rscanning" not in err.splitlines()[-1]  # the message starts on its own line
    again = subprocess.run([sys.executable, "-c", CLI, "scan", str(album), "--catalog", str(catalog)], cwd=ROOT,
                           env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(catalog) as db:
        paths = [row[0] for row in db.execute("SELECT path FROM photos")]
    assert sorted(paths) == sorted(str(p) for p in album.iterdir())


@pytest.mark.parametrize("command", [("people", "list"), ("jobs", "list"), ("scan", "ALBUM")])
def test_a_catalog_in_a_missing_folder_is_refused_not_created(tmp_path, run_cli, command):
    album = tmp_path / "album"
    album.mkdir()
    missing = tmp_path / "typo" / "deeper" / "catalog.sqlite3"
    args = [str(album) if a == "ALBUM" else a for a in command]
    code, out, err = run_cli(*args, "--catalog", missing)
    assert code == 5 and "does not exist" in err and str(missing.parent) in err, err
    assert not (tmp_path / "typo").exists()
    # an existing folder: the first scan starts a catalog there, as before
    code, _, err = run_cli("people", "list", "--catalog", tmp_path / "new.sqlite3")
    assert code == 0 and (tmp_path / "new.sqlite3").is_file(), err


def test_merging_a_person_with_itself_is_refused(tmp_path, run_cli):
    catalog = _people_catalog(tmp_path / "c.sqlite3", people=2, faces_each=2)
    for args in (("Person 0", "Person 0"), ("Person 0", "1"), ("1", "Person 1", "Person 0")):
        code, out, err = run_cli("people", "merge", *args, "--catalog", catalog)
        assert code == 2 and "itself" in err, (args, err)
    code, out, _ = run_cli("people", "list", "--catalog", catalog)
    assert "Person 0" in out and "Person 1" in out  # nothing was merged


def test_jobs_resume_uses_the_models_folder_the_job_was_started_with(tmp_path, run_cli):
    catalog_path = tmp_path / "c.sqlite3"
    job_models = tmp_path / "the-jobs-own-models"
    catalog = open_catalog(catalog_path)
    with catalog.transaction() as session:
        photo = Photo(path=str(tmp_path / "album" / "a.jpg"), size=1, mtime_ns=1)
        photo.faces.append(Face(x1=1, y1=2, x2=300, y2=400, score=0.9, landmarks=[[1, 2]] * 5,
                                embedding=Face.pack(np.ones(128) / np.sqrt(128)), embedding_model="dlib/resnet-128"))
        job = BatchJob(out_dir=str(tmp_path / "out"), roots=[str(tmp_path / "album")],
                       options={"unmatched": "blind", "steps": 2, "guidance_scale": 5.0, "seed": 1,
                                "models_dir": str(job_models)})
        session.add_all([photo, job])
        session.flush()
        session.add(BatchItem(job_id=job.id, photo_id=photo.id, relative_output="a.jpg"))
        job_id = job.id
    catalog.close()
    code, out, err = run_cli("jobs", "list", "--catalog", catalog_path)
    assert code == 0 and f"{job_id}  interrupted — resume" in out and "1 left" in out  # nobody runs it
    code, out, err = run_cli("jobs", "resume", str(job_id), "--catalog", catalog_path)
    assert code != 0 and str(job_models) in out + err, (out, err)
    code, out, _ = run_cli("jobs", "cancel", str(job_id), "--catalog", catalog_path)
    assert code == 0 and "cancelled" in out
    code, out, _ = run_cli("jobs", "list", "--json", "--catalog", catalog_path)
    assert '"status": "cancelled"' in out
