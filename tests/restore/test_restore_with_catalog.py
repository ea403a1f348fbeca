"""`faceme restore PHOTO --catalog C` (issue 19, item 4): a photo the album knows is restored exactly as
`faceme batch` restores it (its people, the user's corrections, their references; the same bytes for the
same options), and recorded; a photo the album does not know is scanned into it first."""

from __future__ import annotations

import json
import shutil

from sqlalchemy import select

from engine.catalog.db import open_catalog
from engine.catalog.models import Photo, Restoration

LFW = "data/lfw_subset/images/Dick_Cheney"


def test_restore_with_the_catalog_is_the_batchs_restoration(shared, tmp_path, tiny_pack, run_cli, caplog):
    album, db = tmp_path / "album", tmp_path / "catalog.sqlite3"
    album.mkdir()
    photos = sorted((shared / LFW).glob("*.jpg"))[:3]
    for photo in photos[:2]:
        shutil.copy2(photo, album / photo.name)
    code, _, err = run_cli("scan", album, "--catalog", db, "--faces", "dlib", "--workers", "1")
    assert code == 0, err
    people = json.loads(run_cli("people", "list", "--json", "--catalog", db)[1])["people"]
    assert run_cli("people", "rename", str(people[0]["id"]), "Dick", "--catalog", db)[0] == 0
    target = album / photos[0].name
    options = ["--models", tiny_pack, "--steps", "1", "--seed", "3", "--no-identity-check"]

    code, out, err = run_cli("restore", target, "--catalog", db, "-o", tmp_path / "one.jpg", *options, "--json")
    assert code == 0, err
    faces = json.loads(out)["faces"]
    assert [f["person"] for f in faces] == ["Dick"] and faces[0]["action"] == "restored"
    code, _, err = run_cli("batch", album, "--out", tmp_path / "batch", "--catalog", db, *options)
    assert code == 0, err
    assert (tmp_path / "one.jpg").read_bytes() == (tmp_path / "batch" / target.name).read_bytes()
    catalog = open_catalog(db)
    with catalog.session() as s:
        outputs = set(s.scalars(select(Restoration.output_path)))
    catalog.close()
    assert str(tmp_path / "one.jpg") in outputs  # recorded: a later scan never takes it for a photo

    # naming people as well is refused; a photo the album does not know is scanned in first
    code, _, err = run_cli("restore", target, "--catalog", db, "--person", f"X={photos[2]}", "-o",
                           tmp_path / "x.jpg", *options)
    assert code == 2 and "--catalog restores with the album's people" in err
    new = album / photos[2].name
    shutil.copy2(photos[2], new)
    code, out, err = run_cli("restore", new, "--catalog", db, "-o", tmp_path / "new.jpg", *options)
    assert code == 0, err
    assert "was not in the album; it was scanned in" in caplog.text  # the CLI prints warnings on stderr
    catalog = open_catalog(db)
    with catalog.session() as s:
        assert s.scalar(select(Photo.id).where(Photo.path == str(new))) is not None
    catalog.close()
