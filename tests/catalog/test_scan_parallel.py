"""Multi-process scanning on real photos: the same catalog as one process, kills, re-scan work, links."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from catalog_testkit import add_photos, lfw_numbers, wait_for_photos
from PIL import Image
from sqlalchemy import func, select

from engine.catalog.db import open_catalog
from engine.catalog.models import Assignment, Face, Person, Photo
from engine.catalog.scanner import scan
from engine.faces.dlib_backend import DlibFaceAnalyzer

ROOT = Path(__file__).resolve().parents[2]


def _large_copy(source: Path, target: Path, long_side: int = 2400, orientation: int = 1) -> Path:
    """A real photo upscaled (so that the scan decodes it at reduced size), maybe stored sideways."""
    with Image.open(source) as im:
        picture = im.convert("RGB")
    scale = long_side / max(picture.size)
    picture = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.Resampling.LANCZOS)
    exif = Image.Exif()
    if orientation == 6:
        picture = picture.transpose(Image.Transpose.ROTATE_90)
        exif[0x0112] = 6
    target.parent.mkdir(parents=True, exist_ok=True)
    picture.save(target, quality=90, exif=exif.tobytes())
    return target


def _album(shared: Path, root: Path) -> Path:
    for name in ("Dick_Cheney", "Winona_Ryder"):
        add_photos(shared, root / name, name, lfw_numbers(shared, name)[:4])
    deepface = shared / "data" / "deepface_ids" / "images"
    _large_copy(deepface / "person_01" / "img1.jpg", root / "large" / "a.jpg")
    _large_copy(deepface / "person_01" / "img2.jpg", root / "large" / "b.jpg", orientation=6)
    return root


def _catalog_state(catalog) -> tuple:
    """Photos (path, hash, size), faces (path, rounded box, embedding) and people as sets of faces."""
    with catalog.session() as s:
        photos = sorted((p.path, p.content_hash, p.width, p.height) for p in s.scalars(select(Photo)))
        faces = {}
        for face in s.scalars(select(Face)):
            faces[face.id] = (face.photo.path, tuple(round(v, 1) for v in face.box))
        embeddings = {faces[f.id]: f.vector for f in s.scalars(select(Face))}
        people: dict[int, set] = {}
        for a in s.scalars(select(Assignment).where(Assignment.origin != "rejected")):
            people.setdefault(a.person_id, set()).add(faces[a.face_id])
    return photos, sorted(faces.values()), sorted(sorted(p) for p in people.values()), embeddings


def test_multi_process_scan_gives_the_same_catalog(shared, tmp_path):
    album = _album(shared, tmp_path / "album")
    analyzer = DlibFaceAnalyzer()
    states = []
    for workers in (2, 1):
        catalog = open_catalog(tmp_path / f"w{workers}.sqlite3")
        try:
            result = scan(catalog, [album], analyzer=analyzer, workers=workers)
            assert result.workers == workers and result.added == 10 and not result.unreadable
            states.append(_catalog_state(catalog))
        finally:
            catalog.close()
    (photos2, faces2, people2, emb2), (photos1, faces1, people1, emb1) = states
    assert photos2 == photos1 and len(photos1) == 10
    assert faces2 == faces1 and len(faces1) >= 10
    assert people2 == people1 and len(people1) >= 2
    for key, vector in emb1.items():
        np.testing.assert_allclose(emb2[key], vector, atol=1e-6)
    # the sideways 2400 px photo was decoded at reduced size and its face mapped back upright
    large = [f for f in faces1 if f[0].endswith("b.jpg")]
    assert len(large) == 1
    x1, y1, x2, y2 = large[0][1]
    assert 0 <= x1 < x2 <= photos1[[p[0] for p in photos1].index(large[0][0])][2]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True).stdout.split("\n")[1:]
    pairs = [tuple(int(v) for v in line.split()) for line in out if line.strip()]
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in pairs if pp == parent]
        found.extend(kids)
        frontier.extend(kids)
    return found


@pytest.mark.skipif(os.name != "posix", reason="kill -9 and ps")
def test_killed_multi_process_scan_restarts_cleanly(shared, tmp_path):
    """SIGKILL a two-worker `faceme scan` mid-way: its workers end too, the next scan finishes the album
    without doubling a photo or a face, and every face ends up clustered."""
    album = tmp_path / "album"
    for name in ("Dick_Cheney", "Winona_Ryder"):
        add_photos(shared, album / name, name, lfw_numbers(shared, name)[:6])
    db = tmp_path / "catalog.sqlite3"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())",
                             "scan", str(album), "--catalog", str(db), "--faces", "dlib", "--workers", "2"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        def note_workers() -> None:
            workers[:] = _children(proc.pid) or workers

        wait_for_photos(db, proc, 2, on_tick=note_workers)
        note_workers()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert workers, "the scan ran no worker processes"
    deadline = time.monotonic() + 15
    while any(os.path.exists(f"/proc/{w}") for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [w for w in workers if os.path.exists(f"/proc/{w}")], "workers outlived the killed scan"
    with sqlite3.connect(db) as con:
        partial = con.execute("select count(*) from photos").fetchone()[0]
    assert 2 <= partial < 12
    catalog = open_catalog(db)
    try:
        assert catalog.integrity_check() == "ok"
        r = scan(catalog, [album], analyzer=DlibFaceAnalyzer(), workers=2)
        assert r.added == 12 - partial and r.unchanged == partial and r.accounted() == r.files == 12
        with catalog.session() as s:
            paths = s.scalars(select(Photo.path)).all()
            assert len(paths) == len(set(paths)) == 12
            dup = s.execute(select(Face.photo_id, Face.x1, Face.y1, func.count(Face.id))
                            .group_by(Face.photo_id, Face.x1, Face.y1).having(func.count(Face.id) > 1)).all()
            assert dup == []
            assert s.scalar(select(func.count(Face.id)).where(Face.clustered.is_(False))) == 0
            # every face was clustered, the killed run's included: each person is found
            assert s.scalar(select(func.count(Person.id))) >= 2
    finally:
        catalog.close()


def _add_unknown_faces(catalog, count: int, seed: int = 1) -> None:
    """`count` clustered faces in no person, each unlike any real face (random directions)."""
    rng = np.random.default_rng(seed)
    with catalog.transaction() as s:
        photo = Photo(path="/elsewhere/strangers.jpg", size=1, mtime_ns=0, content_hash="0" * 64,
                      analysed_with="dlib/resnet-128")
        s.add(photo)
        s.flush()
        vectors = rng.normal(size=(count, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        s.add_all(Face(photo_id=photo.id, x1=0, y1=0, x2=10, y2=10, score=1.0, landmarks=[], embedding=Face.pack(v),
                       embedding_model="dlib/resnet-128", clustered=True) for v in vectors)


def test_rescan_work_does_not_depend_on_unknown_faces_elsewhere(shared, tmp_path, analyzer):
    """Counted, not timed: an unchanged re-scan clusters nothing, a changed photo's re-scan clusters that
    photo's faces — the same in a catalog with 3,000 unknown faces elsewhere as in one with none."""
    considered = {}
    for extra in (0, 3000):
        album = tmp_path / f"album{extra}"
        add_photos(shared, album, "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:4])
        catalog = open_catalog(tmp_path / f"c{extra}.sqlite3")
        try:
            scan(catalog, [album], analyzer=analyzer, workers=1)
            if extra:
                _add_unknown_faces(catalog, extra)
            unchanged = scan(catalog, [album], analyzer=analyzer, workers=1)
            assert unchanged.unchanged == 4
            edited = sorted(album.glob("*.jpg"))[0]
            Image.open(edited).save(edited, quality=70)
            changed = scan(catalog, [album], analyzer=analyzer, workers=1)
            assert changed.changed == 1
            considered[extra] = (unchanged.clustering.faces_considered, unchanged.clustering.unknown_compared,
                                 changed.clustering.faces_considered)
            with catalog.session() as s:
                assert s.scalar(select(func.count(Face.id)).where(Face.clustered.is_(False))) == 0
        finally:
            catalog.close()
    assert considered[0] == considered[3000] == (0, 0, 1)


def test_links_leading_outside_the_album_are_not_followed(shared, tmp_path, analyzer):
    outside = tmp_path / "other"
    add_photos(shared, outside, "Winona_Ryder", lfw_numbers(shared, "Winona_Ryder")[:2])
    album = tmp_path / "album"
    add_photos(shared, album / "a", "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:2])
    os.symlink("..", album / "up")                           # the case: a link to ..
    os.symlink("..", album / "a" / "back")                   # to the album itself: inside
    os.symlink(outside, album / "other-link")                # a folder elsewhere
    os.symlink(album / "a", album / "inside-link")           # inside the album: followed (already seen)
    linked = add_photos(shared, tmp_path / "loose", "Jacques_Chirac", lfw_numbers(shared, "Jacques_Chirac")[:1])[0]
    os.symlink(linked, album / "a" / linked.name)            # a linked photo is a photo
    catalog = open_catalog(tmp_path / "c.sqlite3")
    try:
        r = scan(catalog, [album], analyzer=analyzer, workers=1)
        assert r.files == 3 and sorted(Path(p).name for p in r.outside_links) == ["other-link", "up"]
        assert "2 links outside the album not followed" in r.summary()
        followed = scan(catalog, [album], analyzer=analyzer, workers=1, follow_links=True)
        assert followed.files >= 5 and not followed.outside_links  # the parent tree, thumbnails and all
    finally:
        catalog.close()


def test_summary_accounts_for_every_file(shared, tmp_path, analyzer):
    album = tmp_path / "album"
    paths = add_photos(shared, album, "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:4])
    (album / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    catalog = open_catalog(tmp_path / "c.sqlite3")
    try:
        first = scan(catalog, [album], analyzer=analyzer, workers=1)
        assert first.accounted() == first.files == 5
        os.utime(paths[0], (time.time() + 10, time.time() + 10))
        Image.open(paths[1]).save(paths[1], quality=70)
        r = scan(catalog, [album], analyzer=analyzer, workers=1)
        assert (r.touched, r.changed, r.unchanged, len(r.unreadable)) == (1, 1, 3, 0)  # broken.jpg: unchanged
        assert r.accounted() == r.files == 5
        assert "1 touched" in r.summary() and "1 changed" in r.summary()
    finally:
        catalog.close()


def test_people_recluster_retries_every_unknown_face(shared, tmp_path, analyzer, run_cli):
    """Clustering after a scan considers only faces no clustering has seen (and unknown faces resembling
    them); `faceme people recluster` re-tries every face in no person. Here: a face left unknown, then a
    person the user made by hand from two other photos of him — only the full re-cluster joins them."""
    from engine.people import corrections
    from engine.people.clustering import cluster_catalog

    album = tmp_path / "album"
    add_photos(shared, album / "a", "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:1])
    add_photos(shared, album / "b", "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[1:3])
    db = tmp_path / "c.sqlite3"
    catalog = open_catalog(db)
    try:
        assert scan(catalog, [album / "a"], analyzer=analyzer, workers=1).clustering.unknown == 1
        scan(catalog, [album / "b"], analyzer=analyzer, workers=1, cluster=False)
        with catalog.transaction() as s:
            faces = s.scalars(select(Face).join(Photo).where(Photo.path.like("%/b/%"))).all()
            corrections.confirm(s, corrections.new_person(s, analyzer.embedding_model, "Dick"), faces)
        assert cluster_catalog(catalog, analyzer.embedding_model).faces_considered == 0
    finally:
        catalog.close()
    code, out, err = run_cli("people", "recluster", "--catalog", db)
    assert code == 0, err
    assert "dlib/resnet-128: 1 face re-tried, 1 joined people" in out
    catalog = open_catalog(db)
    try:
        with catalog.session() as s:
            placed = s.scalar(select(func.count(Assignment.face_id.distinct())).where(Assignment.origin != "rejected"))
            assert placed == 3  # the first photo's face joined Dick at last
    finally:
        catalog.close()
