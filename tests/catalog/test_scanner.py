"""The incremental scanner on real photos (LFW, dlib): what changes cost, moves, bad files, cancel.

Kills (a SIGKILLed multi-process scan restarting cleanly) are in test_scan_parallel.py."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from catalog_testkit import add_photos, lfw_numbers
from sqlalchemy import func, select

from engine.catalog.models import Assignment, Face, Person, Photo, PhotoStatus
from engine.catalog.scanner import scan
from engine.errors import CancelledError
from engine.people import corrections, references

def _counts(catalog) -> dict:
    with catalog.session() as s:
        return {"photos": s.scalar(select(func.count(Photo.id))), "faces": s.scalar(select(func.count(Face.id))),
                "people": s.scalar(select(func.count(Person.id)))}


def test_rescan_costs_nothing_and_changes_are_seen(shared, tmp_path, catalog, analyzer, monkeypatch):
    album = tmp_path / "album"
    add_photos(shared, album / "x", "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:3])
    add_photos(shared, album / "y", "Winona_Ryder", lfw_numbers(shared, "Winona_Ryder")[:3])
    (album / "notes.txt").write_text("not a photo")
    (album / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    os.symlink(album, album / "x" / "loop")  # a symlink loop must not stop the scan
    progress = []
    first = scan(catalog, [album], analyzer=analyzer, progress=lambda d, t, m: progress.append((d, t)))
    assert first.files == 7 and first.added == 6 and len(first.unreadable) == 1
    assert "broken.jpg" in first.unreadable[0][0] and first.unreadable[0][1]
    assert any("loop" in path for path, _ in first.skipped_folders)
    assert progress[-1] == (7, 7) and all(t == 7 for _, t in progress)
    assert analyzer.calls == 6
    with catalog.session() as s:
        bad = s.scalar(select(Photo).where(Photo.path.like("%broken.jpg")))
        assert bad.status == PhotoStatus.unreadable and bad.error
        good = s.scalars(select(Photo).where(Photo.status == PhotoStatus.ok)).all()
        assert all(p.thumbnail and Path(p.thumbnail).is_file() for p in good)
        assert all(p.width == 250 and p.content_hash for p in good)
    before = _counts(catalog)
    assert before["people"] == 2

    # unchanged: not one file is decoded or hashed
    import engine.imageio as imageio

    def forbidden(*a, **k):
        raise AssertionError("an unchanged photo was read")

    with monkeypatch.context() as m:
        m.setattr(imageio, "read_image", forbidden)
        m.setattr(imageio, "content_hash", forbidden)
        again = scan(catalog, [album], analyzer=analyzer)
    assert again.unchanged == 7 and again.added == again.changed == again.moved == 0
    assert _counts(catalog) == before

    # touched (new mtime, same bytes): hashed, not decoded
    touched = next((album / "x").glob("*.jpg"))
    os.utime(touched, (time.time() + 5, time.time() + 5))
    with monkeypatch.context() as m:
        m.setattr(imageio, "read_image", forbidden)
        r = scan(catalog, [album], analyzer=analyzer)
    assert r.touched == 1 and _counts(catalog) == before

    # changed content: re-read; the face keeps its row (and so its person) when it is still there
    with catalog.session() as s:
        face_before = s.scalar(select(Face.id).join(Photo).where(Photo.path == str(touched)))
    from PIL import Image

    Image.open(touched).save(touched, quality=80)
    calls = analyzer.calls
    r = scan(catalog, [album], analyzer=analyzer)
    assert r.changed == 1 and analyzer.calls == calls + 1
    with catalog.session() as s:
        assert s.scalar(select(Face.id).join(Photo).where(Photo.path == str(touched))) == face_before
        assert s.scalar(select(Assignment.person_id).where(Assignment.face_id == face_before)) is not None

    # deleted: marked missing, not dropped
    gone = next((album / "y").glob("*.jpg"))
    gone.unlink()
    r = scan(catalog, [album], analyzer=analyzer)
    assert r.missing == 1
    with catalog.session() as s:
        row = s.scalar(select(Photo).where(Photo.path == str(gone)))
        assert row.status == PhotoStatus.missing and row.missing_since is not None and row.faces


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder; an unreadable folder can't be made")
def test_unreadable_folder_is_skipped(shared, tmp_path, catalog, analyzer):
    add_photos(shared, tmp_path / "a", "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:1])
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        r = scan(catalog, [tmp_path], analyzer=analyzer)
    finally:
        locked.chmod(0o755)
    assert r.added == 1 and any("locked" in p for p, _ in r.skipped_folders)


def test_folder_that_cannot_be_listed_is_skipped(shared, tmp_path, catalog, analyzer, monkeypatch):
    """The same as above where root can read everything: listing the folder fails with EACCES."""
    add_photos(shared, tmp_path / "a", "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:1])
    (tmp_path / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    r = scan(catalog, [tmp_path], analyzer=analyzer)
    assert r.added == 1 and any(p.endswith("locked") and "denied" in why for p, why in r.skipped_folders)


def test_moved_folder_keeps_people_and_references(shared, tmp_path, catalog, analyzer):
    album = tmp_path / "album"
    add_photos(shared, album / "2003" / "cheney", "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:4])
    add_photos(shared, album / "2003" / "ryder", "Winona_Ryder", lfw_numbers(shared, "Winona_Ryder")[:3])
    scan(catalog, [album], analyzer=analyzer)
    with catalog.transaction() as s:
        cheney = s.scalar(select(Person).join(Assignment).join(Face).join(Photo)
                          .where(Photo.path.like("%Dick_Cheney_0001%")))
        corrections.rename(s, cheney, "Dick")
        faces = corrections.find_faces(s, str(album / "2003" / "cheney"
                                              / f"Dick_Cheney_{lfw_numbers(shared, 'Dick_Cheney')[1]:04d}.jpg"))
        corrections.confirm(s, cheney, faces)
        references.set_references(s, cheney, faces)
        person_id, face_ids = cheney.id, sorted(a.face_id for a in cheney.assignments if a.origin != "rejected")
    before = _counts(catalog)

    shutil.move(album / "2003", tmp_path / "moved-2003")  # outside the scanned folder, then scan both
    calls = analyzer.calls
    r = scan(catalog, [album, tmp_path / "moved-2003"], analyzer=analyzer)
    assert r.moved == 7 and r.added == 0 and r.missing == 0
    assert analyzer.calls == calls  # moved photos are not analysed again
    assert _counts(catalog) == before
    with catalog.session() as s:
        person = s.get(Person, person_id)
        assert person.name == "Dick"
        assert sorted(a.face_id for a in person.assignments if a.origin != "rejected") == face_ids
        refs = references.references(s, person)
        assert [c.picked_by_user for c in refs] == [True]
        assert refs[0].face.photo.path.startswith(str(tmp_path / "moved-2003"))
        assert all(p.status == PhotoStatus.ok for p in s.scalars(select(Photo)))


def test_cancel_leaves_a_consistent_catalog(shared, tmp_path, catalog, analyzer):
    add_photos(shared, tmp_path / "a", "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:4])
    seen = []
    with pytest.raises(CancelledError):
        scan(catalog, [tmp_path / "a"], analyzer=analyzer,
             progress=lambda d, t, m: seen.append(d), cancel=lambda: len(seen) >= 3)
    done = _counts(catalog)["photos"]
    assert 1 <= done < 4
    r = scan(catalog, [tmp_path / "a"], analyzer=analyzer)
    assert r.unchanged == done and r.added == 4 - done
    assert catalog.integrity_check() == "ok"


def test_a_catalog_keeps_one_face_model(shared, tmp_path, catalog, analyzer, tiny_pack):
    """Issue 19: a scan with another face model than the catalog's is refused before anything is stored
    (it used to add that model's faces beside dlib's: two faces for one person); the catalog's model is
    what a scan without a choice uses; `reanalyse_album` moves the album and records the new model."""
    from engine.catalog.face_model import FaceModelMismatchError, analyzer_for_catalog, catalog_face_model
    from engine.catalog.scanner import reanalyse_album
    from engine.faces.choice import make_face_analyzer

    album = tmp_path / "album"
    add_photos(shared, album, "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:3])
    scan(catalog, [album], analyzer=analyzer)
    assert catalog_face_model(catalog) == "dlib/resnet-128"
    with catalog.session() as s:
        faces_before = s.scalar(select(func.count(Face.id)))
    arcface = make_face_analyzer("antelopev2", tiny_pack)
    with pytest.raises(FaceModelMismatchError, match="faceme catalog reanalyse --model antelopev2"):
        scan(catalog, [album], analyzer=arcface)
    with pytest.raises(FaceModelMismatchError):
        analyzer_for_catalog(catalog, tiny_pack, choice="antelopev2")
    assert analyzer_for_catalog(catalog, tiny_pack).embedding_model == "dlib/resnet-128"  # a pack installed
    with catalog.session() as s:
        assert s.scalar(select(func.count(Face.id))) == faces_before
        assert {m for (m,) in s.execute(select(Face.embedding_model).distinct())} == {"dlib/resnet-128"}

    reanalyse_album(catalog, [album], arcface, workers=1)
    assert catalog_face_model(catalog) == arcface.embedding_model
    assert scan(catalog, [album], analyzer=analyzer_for_catalog(catalog, tiny_pack)).unchanged == 3
    with catalog.session() as s:
        assert {m for (m,) in s.execute(select(Face.embedding_model).distinct())} == {arcface.embedding_model}
        for person in s.scalars(select(Person)):
            assert {a.face.embedding_model for a in person.assignments} <= {person.embedding_model}
