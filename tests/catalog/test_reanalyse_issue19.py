"""A re-analysis stopped part-way (issue 19): the catalog already names the new face model, and some photos
still carry the old model's faces. Any scan then — `faceme scan`, a batch's pre-scan, the app's — must
move the photos it analyses the way the re-analysis does (people, names, rejections carried over), never
add the new model's faces beside the old ones (two faces for one); `faceme catalog check` says how many
photos are left, and stops saying it once they are all moved."""

from __future__ import annotations

import pytest
from catalog_testkit import add_photos, lfw_numbers
from sqlalchemy import func, select

from engine.catalog.face_model import unfinished_move
from engine.catalog.models import Assignment, Face, Person, Photo
from engine.catalog.scanner import reanalyse_album, scan
from engine.errors import CancelledError
from engine.people import corrections


def _state(catalog) -> tuple[dict[str, int], set[tuple[str, str, str]], set[str]]:
    """({photo name: faces}, {(photo name, person's name, origin) the user decided}, face models)."""
    with catalog.session() as s:
        faces = dict(s.execute(select(Photo.path, func.count(Face.id)).join(Face).group_by(Photo.id)).all())
        word = {(a.face.photo.path.rsplit("/", 1)[1], a.person.name, a.origin.value)
                for a in s.scalars(select(Assignment)) if a.origin.value != "machine"}
        models = set(s.scalars(select(Face.embedding_model).distinct()))
    return {path.rsplit("/", 1)[1]: n for path, n in faces.items()}, word, models


def test_any_scan_after_a_stopped_reanalysis_finishes_it_without_doubles(shared, tmp_path, catalog, analyzer,
                                                                          tiny_pack, run_cli):
    from engine.faces.choice import make_face_analyzer

    album = tmp_path / "album"
    add_photos(shared, album, "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:2])
    add_photos(shared, album, "Winona_Ryder", lfw_numbers(shared, "Winona_Ryder")[:2])
    scan(catalog, [album], analyzer=analyzer, workers=1)
    with catalog.transaction() as s:
        for person in s.scalars(select(Person)).all():
            faces = sorted((a.face for a in person.assignments), key=lambda f: f.photo.path)
            corrections.rename(s, person, "Dick" if "Cheney" in faces[0].photo.path else "Winona")
            corrections.confirm(s, person, faces[:1])
        dick = corrections.find_person(s, "Dick")
        winona_face = s.scalars(select(Face).join(Photo).where(Photo.path.like("%Winona%"))).first()
        corrections.reject(s, dick, [winona_face])
    before = _state(catalog)

    seen = []
    with pytest.raises(CancelledError):
        reanalyse_album(catalog, [album], make_face_analyzer("antelopev2", tiny_pack), workers=1,
                        progress=lambda d, t, m: seen.append(d), cancel=lambda: len(seen) >= 3)
    with catalog.session() as s:
        move = unfinished_move(s)
    assert move is not None and (move.behind, move.photos, move.old_model) == (2, 4, "dlib/resnet-128")
    assert move.text() == "2 of 4 photos still use the built-in face model"
    db = tmp_path / "catalog.sqlite3"
    code, out, err = run_cli("catalog", "check", "--catalog", db)
    assert code == 0 and "2 of 4 photos still use the built-in face model" in out, (out, err)
    assert "`faceme catalog reanalyse --model antelopev2` finishes it" in out

    # a plain scan, with the pack installed (what `faceme batch --models` pre-scans with, and the app)
    code, out, err = run_cli("scan", album, "--catalog", db, "--models", tiny_pack, "--workers", "1")
    assert code == 0 and "2 re-analysed with the new face model" in out, (out, err)
    faces, word, models = _state(catalog)
    assert faces == before[0] and word == before[1] and len(models) == 1 and models != before[2]
    with catalog.session() as s:
        assert unfinished_move(s) is None
    code, out, err = run_cli("catalog", "check", "--catalog", db)
    assert code == 0 and "still use" not in out, out
