"""Several real processes on one catalog: scans of the same and of overlapping folders, edits meanwhile.

Invariants checked after each run: PRAGMA integrity_check, no duplicate photo rows, no face doubled,
no face with two machine-or-confirmed people, every face clustered, and the people (as sets of
faces) identical to a serial run's — or, where merges ran concurrently, not one face fewer in people.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from catalog_testkit import add_photos, lfw_numbers
from sqlalchemy import func, select

from engine.catalog.db import open_catalog
from engine.catalog.models import Assignment, AssignmentOrigin, Face, Photo
from engine.catalog.scanner import scan

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]
POSITIVE = (AssignmentOrigin.machine, AssignmentOrigin.confirmed)
#: a whole concurrent round may take this long on a loaded 2-core machine
ROUND_SECONDS = 120

MERGER = r"""
import sys, time
from pathlib import Path
from engine.catalog.db import open_catalog
from engine.people import corrections
from engine.catalog.models import Person
from sqlalchemy import select
catalog = open_catalog(sys.argv[1])
stop = Path(sys.argv[2])
deadline = time.monotonic() + 90
merges = 0
while time.monotonic() < deadline:
    last = stop.exists()
    with catalog.transaction() as s:
        people = {p.name: p for p in s.scalars(select(Person)) if p.name}
        for name, person in people.items():
            if name.endswith("-split") and name[:-6] in people:
                corrections.merge(s, people[name[:-6]], [person])
                merges += 1
    if last:
        break
    time.sleep(0.05)
print(merges)
"""


@pytest.fixture
def album(shared, tmp_path) -> Path:
    root = tmp_path / "album"
    for name in ("Dick_Cheney", "Winona_Ryder", "Jacques_Chirac"):
        add_photos(shared, root / name, name, lfw_numbers(shared, name)[:3])
    return root


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


def _start_scan(db: Path, *folders: Path, workers: int = 1) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "scan", *map(str, folders), "--catalog", str(db), "--faces", "dlib",
                             "--workers", str(workers), "--no-thumbnails"],
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(procs: list[subprocess.Popen]) -> list[str]:
    deadline = time.monotonic() + ROUND_SECONDS
    outputs = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"a process did not finish within {ROUND_SECONDS} s: {err[-2000:]}")
        assert proc.returncode == 0, f"exit {proc.returncode}: {err[-3000:]}"
        assert "Traceback" not in err and "IntegrityError" not in err, err[-3000:]
        outputs.append(out)
    return outputs


def _invariants(db: Path, files: int) -> dict:
    """Checks the invariants; returns {face key: person key} (faces keyed by photo path + box)."""
    catalog = open_catalog(db)
    try:
        assert catalog.integrity_check() == "ok"
        with catalog.session() as s:
            paths = s.scalars(select(Photo.path)).all()
            assert len(paths) == len(set(paths)) == files
            doubled = s.execute(select(Face.photo_id, Face.x1, Face.y1, func.count(Face.id))
                                .group_by(Face.photo_id, Face.x1, Face.y1).having(func.count(Face.id) > 1)).all()
            assert doubled == []
            two_people = s.execute(select(Assignment.face_id).where(Assignment.origin.in_(POSITIVE))
                                   .group_by(Assignment.face_id).having(func.count(Assignment.id) > 1)).all()
            assert two_people == []
            assert s.scalar(select(func.count(Face.id)).where(Face.clustered.is_(False))) == 0
            faces = {f.id: (f.photo.path, round(f.x1), round(f.y1)) for f in s.scalars(select(Face))}
            owner = {faces[a.face_id]: a.person_id
                     for a in s.scalars(select(Assignment).where(Assignment.origin.in_(POSITIVE)))}
        return {key: owner.get(key) for key in faces.values()}
    finally:
        catalog.close()


def _partition(owner: dict) -> list:
    groups: dict = {}
    for key, person in owner.items():
        if person is not None:
            groups.setdefault(person, set()).add(key)
    return sorted(sorted(g) for g in groups.values())


def _serial(album: Path, tmp_path: Path, analyzer, files: int = 9) -> dict:
    catalog = open_catalog(tmp_path / "serial.sqlite3")
    try:
        scan(catalog, [album], analyzer=analyzer, workers=1, thumbnails=False)
    finally:
        catalog.close()
    return _invariants(tmp_path / "serial.sqlite3", files)


def test_two_scans_of_the_same_folder_both_finish(album, tmp_path, analyzer):
    """Two `faceme scan` processes started together on one folder, two rounds: both exit 0 (no raw
    IntegrityError), nothing is doubled, and the people are those of one scan."""
    serial = _partition(_serial(album, tmp_path, analyzer))
    assert len(serial) == 3
    for round_ in range(2):
        db = tmp_path / f"together{round_}.sqlite3"
        open_catalog(db).close()  # catalog creation is another matter (issue 14 item 3)
        _finish([_start_scan(db, album), _start_scan(db, album, workers=2)])
        assert _partition(_invariants(db, 9)) == serial


def test_overlapping_scans_and_merges_meanwhile(shared, tmp_path, analyzer):
    """The stress test. A catalog knows three people from earlier photos, each with one face split off
    into a second person ("X-split"). Then, at once: three scans of overlapping folders add three new
    photos per person, and a process merges each "X-split" back into X as soon as both exist. After:
    the invariants hold, and every face is in its person — the same people as a serial scan (a merge
    used to cascade away faces that a concurrent clustering had just put into the person it removed)."""
    from engine.people import corrections

    root = tmp_path / "album"
    names = ("Dick_Cheney", "Winona_Ryder", "Jacques_Chirac")
    for name in names:
        numbers = lfw_numbers(shared, name)
        add_photos(shared, root / name / "earlier", name, numbers[:3])
        add_photos(shared, root / name / "new", name, numbers[3:6])
    serial = _partition(_serial(root, tmp_path, analyzer, files=18))
    assert len(serial) == 3 and sum(map(len, serial)) == 18
    db = tmp_path / "stress.sqlite3"
    catalog = open_catalog(db)
    try:
        scan(catalog, [root / n / "earlier" for n in names], analyzer=analyzer, workers=1, thumbnails=False)
        with catalog.transaction() as s:
            for name in names:
                faces = s.scalars(select(Face).join(Photo).where(Photo.path.like(f"%/{name}/earlier/%"))
                                  .order_by(Photo.path)).all()
                person = corrections.person_of(s, faces[0])
                corrections.rename(s, person, name)
                corrections.split(s, person, [faces[-1].id], name=f"{name}-split")
    finally:
        catalog.close()
    stop = tmp_path / "stop"
    merger = subprocess.Popen([sys.executable, "-c", MERGER, str(db), str(stop)], cwd=ROOT, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    scans = [_start_scan(db, root), _start_scan(db, root / "Dick_Cheney", root / "Winona_Ryder"),
             _start_scan(db, root / "Jacques_Chirac" / "new", workers=2)]
    try:
        _finish(scans)
    finally:
        stop.touch()
    merges = int(_finish([merger])[0].strip() or 0)
    assert merges == 3
    assert _partition(_invariants(db, 18)) == serial


def test_clustering_waits_for_another_process_with_a_message(tmp_path):
    """The clustering lock: a second holder waits, told who holds it; a kill -9 of the holder frees it."""
    from engine.catalog.locks import catalog_lock

    db = tmp_path / "c.sqlite3"
    open_catalog(db).close()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from engine.catalog.db import open_catalog; from engine.catalog.locks import catalog_lock\n"
        f"c = open_catalog({str(db)!r})\n"
        "with catalog_lock(c, 'clustering', 'clustering for a test scan'):\n"
        "    print('held', flush=True); time.sleep(60)\n")],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        catalog = open_catalog(db)
        messages = []
        from engine.catalog.locks import LockTimeout

        with pytest.raises(LockTimeout):
            with catalog_lock(catalog, "clustering", "me", on_wait=messages.append, timeout=0.5):
                pass
        assert messages and "clustering for a test scan" in messages[0] and str(holder.pid) in messages[0]
        holder.kill()
        holder.wait(timeout=10)
        with catalog_lock(catalog, "clustering", "me", timeout=5):
            pass
        catalog.close()
    finally:
        holder.kill()
        holder.wait(timeout=10)


class _Rows(list):
    def all(self):
        return list(self)


def test_merge_while_clustering_loses_no_face(shared, tmp_path, analyzer, monkeypatch):
    """Deterministic form of the race: a merge reads the person it is about to remove, and a clustering
    (another thread, its own connection) would add new faces to that person before the merge writes.
    The merge holds the write lock from its first read, so the clustering waits and then puts the faces
    into the merged person: none falls back to unknown."""
    import threading

    from sqlalchemy.orm import Session

    from engine.people import corrections
    from engine.people.clustering import cluster_catalog

    numbers = lfw_numbers(shared, "Dick_Cheney")
    root = tmp_path / "album"
    add_photos(shared, root / "earlier", "Dick_Cheney", numbers[:3])
    add_photos(shared, root / "new", "Dick_Cheney", numbers[3:6])
    catalog = open_catalog(tmp_path / "c.sqlite3")
    try:
        scan(catalog, [root / "earlier"], analyzer=analyzer, workers=1, thumbnails=False)
        with catalog.transaction() as s:
            faces = s.scalars(select(Face)).all()
            person = corrections.person_of(s, faces[0])
            corrections.rename(s, person, "Dick")
            split_id = corrections.split(s, person, [f.id for f in faces], name="Dick-split").id
            keep_id = person.id
        scan(catalog, [root / "new"], analyzer=analyzer, workers=1, thumbnails=False, cluster=False)

        clustering_done = threading.Event()
        first_read = threading.Event()
        real_scalars = Session.scalars

        calls = []

        def scalars_then_pause(self, *args, **kwargs):
            result = real_scalars(self, *args, **kwargs)
            if threading.current_thread().name == "merge":
                calls.append(args[0])
                if len(calls) == 2:  # the merge has read both people's assignments, written nothing yet
                    rows = _Rows(result.all())
                    first_read.set()
                    clustering_done.wait(timeout=3)  # a clustering free to commit now would, in 3 s
                    return rows
            return result

        monkeypatch.setattr(Session, "scalars", scalars_then_pause)

        def merge() -> None:
            with catalog.transaction() as s:
                corrections.merge(s, corrections.person_by_id(s, keep_id), [corrections.person_by_id(s, split_id)])

        def cluster() -> None:
            first_read.wait(timeout=30)
            cluster_catalog(catalog, analyzer.embedding_model)
            clustering_done.set()

        threads = [threading.Thread(target=merge, name="merge"), threading.Thread(target=cluster, name="cluster")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        with catalog.session() as s:
            in_people = s.scalar(select(func.count(Assignment.face_id.distinct())).where(Assignment.origin.in_(POSITIVE)))
            assert s.scalar(select(func.count(Face.id))) == 6
            assert in_people == 6, "a face fell back to unknown"
    finally:
        catalog.close()
