"""One album, one truth (issue 19, item 1): a catalog keeps one face model, whatever scans it — the CLI
with or without a pack, the app's scan with a pack installed (a batch's pre-scan with `--models`: the
app trial test) — so each real face is one face in the catalog. Real `faceme` processes, the tiny
pack's real SCRFD + tiny ArcFace standing in for antelopev2."""

from __future__ import annotations

import json

from catalog_testkit import add_photos, faceme_cli, lfw_numbers
from sqlalchemy import func, select

from engine.catalog.db import open_catalog
from engine.catalog.models import Face


def _faces(db) -> tuple[int, set[str]]:
    catalog = open_catalog(db)
    try:
        with catalog.session() as s:
            return (s.scalar(select(func.count(Face.id))),
                    {m for (m,) in s.execute(select(Face.embedding_model).distinct())})
    finally:
        catalog.close()


def test_a_pack_installed_later_never_doubles_the_albums_faces(shared, tmp_path, tiny_pack):
    album, db = tmp_path / "album", tmp_path / "catalog.sqlite3"
    add_photos(shared, album, "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:2])
    add_photos(shared, album, "Winona_Ryder", lfw_numbers(shared, "Winona_Ryder")[:2])
    first = faceme_cli("scan", album, "--catalog", db, "--faces", "dlib", "--workers", "1", timeout=300)
    assert first.returncode == 0, first.stderr
    faces, models = _faces(db)
    assert models == {"dlib/resnet-128"} and faces >= 4
    named = faceme_cli("people", "list", "--json", "--catalog", db)
    people = json.loads(named.stdout)["people"]
    assert all(isinstance(face["face_id"], int) for person in people for face in person["faces"])  # item 3
    rename = faceme_cli("people", "rename", str(people[0]["id"]), "Ann", "--catalog", db)
    assert rename.returncode == 0, rename.stderr

    # the pack is installed: a plain scan (what the app does) keeps the catalog's model, adds nothing
    again = faceme_cli("scan", album, "--catalog", db, "--models", tiny_pack, "--workers", "1", timeout=300)
    assert again.returncode == 0 and "4 unchanged" in again.stdout, (again.stdout, again.stderr)
    from app.people_actions import scan_albums  # the app's Library scan, with the pack's folder

    catalog = open_catalog(db)
    try:
        result = scan_albums(catalog, [str(album)], workers=1, models_dir=str(tiny_pack))
        assert result.unchanged == 4
    finally:
        catalog.close()
    assert _faces(db) == (faces, models)

    # asking for the other model is refused with the way to move the album, nothing changed
    other = faceme_cli("scan", album, "--catalog", db, "--models", tiny_pack, "--faces", "antelopev2", timeout=300)
    assert other.returncode == 2 and "faceme catalog reanalyse --model antelopev2" in other.stderr, other.stderr
    assert "Traceback" not in other.stderr and _faces(db) == (faces, models)

    # a batch with --models while the app has the catalog open: tests/app/test_app_trial_issue19.py
    check = faceme_cli("catalog", "check", "--catalog", db)
    assert check.returncode == 0 and "face model dlib/resnet-128" in check.stdout, check.stdout

    # the explicit step moves the album, keeping the name
    moved = faceme_cli("catalog", "reanalyse", "--model", "antelopev2", "--models", tiny_pack, "--catalog", db,
                       "--workers", "1", timeout=600)
    assert moved.returncode == 0 and "re-analysed with antelopev2 (was dlib)" in moved.stdout, moved.stderr
    count, models = _faces(db)
    assert len(models) == 1 and models != {"dlib/resnet-128"}
    listing = faceme_cli("people", "list", "--catalog", db)
    assert "Ann" in listing.stdout
