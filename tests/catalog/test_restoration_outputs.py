"""Restoration outputs never become album photos (issue 14, item 10): the scanner leaves out every file
the catalog records as a restoration output (the app's Save, a batch's outputs, even one whose run was
killed after the write), and the app's Save goes to a Restored folder beside the albums by default."""

from __future__ import annotations

import shutil
from pathlib import Path

from catalog_testkit import add_photos, lfw_numbers
from sqlalchemy import select

from app.preferences import Preferences
from app.restore_flow import RestoreOutcome, save
from engine.catalog.models import BatchItem, BatchJob, Photo, Restoration
from engine.catalog.scanner import scan
from engine.imageio import read_image


def _paths(catalog) -> set[str]:
    with catalog.session() as session:
        return {Path(p).name for p in session.scalars(select(Photo.path))}


def test_the_scanner_leaves_out_files_the_catalog_records_as_outputs(shared, tmp_path, catalog, analyzer):
    album = tmp_path / "album"
    photos = add_photos(shared, album, "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:3])
    scan(catalog, [album], analyzer=analyzer)
    with catalog.session() as session:
        photo_id = session.scalar(select(Photo.id).where(Photo.path == str(photos[0])))

    # the app's Save into the album (a folder the user chose there): recorded, so never catalogued
    loaded = read_image(photos[0])
    saved = save(RestoreOutcome(photos[0], loaded.pixels, loaded, "", 1, photo_id=photo_id),
                 album / "restored" / "a_restored.jpg", lambda: catalog)
    # a batch output written (hash recorded first) by a run killed before its commit, inside the album's tree
    killed = album / "old-batch" / "b.jpg"
    killed.parent.mkdir()
    shutil.copy2(photos[1], killed)
    # and a copy of a photo that nobody recorded: an ordinary new photo
    copy = album / "copy.jpg"
    shutil.copy2(photos[2], copy)
    with catalog.transaction() as session:
        job = BatchJob(out_dir=str(album / "old-batch"), roots=[str(tmp_path / "elsewhere")], options={})
        session.add(job)
        session.flush()
        session.add(BatchItem(job_id=job.id, photo_id=photo_id, relative_output="b.jpg", output_sha256="0" * 64))

    result = scan(catalog, [album], analyzer=analyzer)
    names = _paths(catalog)
    assert saved.name not in names and killed.name not in names and copy.name in names
    assert result.files == 4  # the three photos and the copy
    with catalog.session() as session:
        assert session.scalar(select(Restoration.output_path)) == str(saved)
        assert session.scalar(select(Restoration.photo_id)) == photo_id


def test_save_goes_beside_the_albums_by_default(tmp_path):
    albums = tmp_path / "photos"
    prefs = Preferences(albums=[str(albums / "family"), str(albums / "family" / "2003")])
    photo = albums / "family" / "2003" / "trip" / "grandma.jpg"
    target = prefs.output_path_for(photo)
    assert target == albums / "Restored" / "family" / "2003" / "trip" / "grandma_restored.jpg"
    assert not any(target.is_relative_to(a) for a in prefs.albums)
    # a photo outside the albums: a "restored" folder beside it, as before; a chosen folder wins
    assert prefs.output_path_for(tmp_path / "loose" / "p.jpg") == tmp_path / "loose" / "restored" / "p_restored.jpg"
    prefs.output_dir = str(tmp_path / "mine")
    assert prefs.output_path_for(photo) == tmp_path / "mine" / "grandma_restored.jpg"
