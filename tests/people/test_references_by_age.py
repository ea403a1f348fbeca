"""References of the right age (issue 23): photo dates from EXIF, scanner EXIF, folder and file names and
the user; a birth year; the album's plan choosing each face's references nearest in age, saying why,
and falling back with a message; today's plan exactly when no date is known."""

from __future__ import annotations

import re
import shutil
import struct
from datetime import datetime
from pathlib import Path

import pytest
from catalog_testkit import lfw_numbers, lfw_photo
from PIL import Image
from sqlalchemy import select

from engine import photo_dates
from engine.catalog.db import open_catalog
from engine.catalog.models import Face, IdentityTokens, Person, Photo
from engine.catalog.scanner import scan
from engine.people import corrections, references
from engine.restore.album import person_identity, plan_from_album
from engine.restore.identity import identity_cache_key
from engine.restore.options import RestoreOptions

WHO = "Dick_Cheney"
OPTIONS = RestoreOptions(min_face_size=40)


def copy_with_exif(source: Path, target: Path, **tags) -> Path:
    """A copy of the JPEG `source` with an EXIF block of `tags` (make, model, software, original,
    modified) spliced in after the SOI marker: the pixels stay the very same bytes."""
    exif = Image.Exif()
    for key, tag in (("make", 0x010F), ("model", 0x0110), ("software", 0x0131), ("modified", 0x0132)):
        if key in tags:
            exif[tag] = tags[key]
    if "original" in tags:
        exif.get_ifd(0x8769)[0x9003] = tags["original"]
    block = exif.tobytes()
    data = source.read_bytes()
    assert data[:2] == b"\xff\xd8"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(block) + 2) + block + data[2:])
    return target


def copy_as(shared: Path, number: int, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(lfw_photo(shared, WHO, number), target)
    return target


def test_dates_from_names_exif_and_the_user():
    named = photo_dates.date_in_name
    assert named("Christmas 1992.jpg", "filename").year == 1992
    assert (named("1978-12-25 tree.jpg", "filename").month, named("19781225.jpg", "filename").day) == (12, 25)
    assert named("1980s", "folder").precision == "decade" and named("'70s", "folder").year == 1970
    assert named("IMG_1985.JPG", "filename") is None and named("scan0001.jpg", "filename") is None  # counters
    assert named("1978 to 1982", "folder") is None and named("Ann_0004.jpg", "filename") is None
    assert photo_dates.date_from_names("/a/1970s/Ann/x.jpg").describe() == "the 1970s"
    camera = photo_dates.ExifDates(original=datetime(2001, 5, 1), make="Canon")
    assert photo_dates.judge("/a/x.jpg", camera).source == "exif"
    # a camera's picture of an old print: the folder's year, not the camera's
    assert photo_dates.judge("/a/1975/x.jpg", camera).describe() == "1975"
    scanner = photo_dates.ExifDates(modified=datetime(2019, 3, 2), make="EPSON", model="Perfection V600")
    assert photo_dates.ExifDates(digitized=datetime(2019, 3, 2)).from_scanner  # no DateTimeOriginal
    scanned = photo_dates.judge("/a/x.jpg", scanner)
    assert scanned.source == "scan-exif" and not scanned.usable
    assert photo_dates.judge("/a/1980s/x.jpg", scanner).source == "folder"
    assert photo_dates.user_date(decade="1970s").describe() == "the 1970s"
    with pytest.raises(ValueError, match="not a decade"):
        photo_dates.user_date(decade="seventies")


@pytest.fixture
def decades(shared, tmp_path, catalog, analyzer):
    """An album spanning decades: copies of real photos of one man, dated by folder, file name, camera
    EXIF, a scanner's EXIF (not trusted) and a camera's picture of a 1975 print; one person, "Ann"."""
    album = tmp_path / "album"
    # four real photos (the first three other tests scan too: dlib's results are memoised by pixels); the
    # EXIF-spliced copies have the same pixels but are files of their own (another content hash)
    n = lfw_numbers(shared, WHO)[:4]
    paths = {
        "1978a": copy_as(shared, n[0], album / "1978" / "a.jpg"),
        "1978b": copy_as(shared, n[1], album / "1978" / "b.jpg"),
        "1980s": copy_as(shared, n[2], album / "1980s" / "c.jpg"),
        "1992": copy_as(shared, n[3], album / "family" / "Christmas 1992.jpg"),
        "2001": copy_with_exif(lfw_photo(shared, WHO, n[0]), album / "camera" / "e.jpg", make="Canon",
                               model="EOS 300D", original="2001:06:30 12:00:00"),
        "scan": copy_with_exif(lfw_photo(shared, WHO, n[1]), album / "scans" / "f.jpg", make="EPSON",
                               model="Perfection V600", software="EPSON Scan", modified="2019:03:02 10:00:00"),
        "print": copy_with_exif(lfw_photo(shared, WHO, n[2]), album / "prints" / "1975" / "g.jpg",
                                make="Apple", model="iPhone 12", original="2021:01:02 10:00:00"),
    }
    scan(catalog, [album], analyzer=analyzer, workers=1)
    faces = {}
    with catalog.transaction() as s:
        for key, path in paths.items():
            photo = s.scalar(select(Photo).where(Photo.path == str(path)))
            faces[key] = _largest(photo).id
        person = corrections.new_person(s, "dlib/resnet-128", "Ann")
        corrections.confirm(s, person, [s.get(Face, i) for i in faces.values()])
        person_id = person.id
    return {"album": album, "paths": paths, "faces": faces, "person": person_id}


def _largest(photo: Photo) -> Face:
    return max(photo.faces, key=lambda f: (f.x2 - f.x1) * (f.y2 - f.y1))


def _plan(catalog, path):
    with catalog.session() as s:
        photo = s.scalar(select(Photo).where(Photo.path == str(path)))
        return plan_from_album(s, photo.id, OPTIONS)


def _references(plan, face_id) -> tuple[str, set[int]]:
    face = next(f for f in plan.faces if f.catalog_face_id == face_id)
    return face.reason, {ref.face_id for ref in plan.identities[face.identity].faces}


def test_the_plan_picks_references_nearest_in_age(decades, catalog, run_cli):
    paths, faces, db = decades["paths"], decades["faces"], catalog.url
    with catalog.session() as s:
        dated = {key: photo_dates.of_photo(s.get(Face, faces[key]).photo) for key in faces}
    assert {k: (d.describe(), d.source) for k, d in dated.items() if d is not None and d.usable} == {
        "1978a": ("1978", "folder"), "1978b": ("1978", "folder"), "1980s": ("the 1980s", "folder"),
        "1992": ("1992", "filename"), "2001": ("2001-06-30", "exif"), "print": ("1975", "folder")}
    assert dated["scan"].source == "scan-exif" and not dated["scan"].usable

    code, out, err = run_cli("people", "set", "Ann", "--born", "1972", "--catalog", db)
    assert code == 0 and "Ann was born in 1972" in out, err
    young_reason, young = _references(_plan(catalog, paths["1978a"]), faces["1978a"])
    old_reason, old = _references(_plan(catalog, paths["2001"]), faces["2001"])
    # 1978: the faces of 1975, 1978 and the 1980s (middle 1985); never 1992's or 2001's
    assert young <= {faces[k] for k in ("1978a", "1978b", "print", "1980s")} and len(young) >= 3
    assert "references near 1978 (1978, folder name)" in young_reason
    # 2001: 1992's and 2001's faces, none of the childhood ones
    assert old == {faces["1992"], faces["2001"]} and "references near 2001" in old_reason
    # each set is an identity of its own: its tokens, and the identity check's references, are its own
    young_identity = _plan(catalog, paths["1978a"]).identities[f"person:{decades['person']}@1978"]
    old_identity = _plan(catalog, paths["2001"]).identities[f"person:{decades['person']}@2001"]
    assert identity_cache_key(young_identity) != identity_cache_key(old_identity)
    # the scanner's date is not a date: that photo keeps today's references
    for key in ("scan",):
        reason, refs = _references(_plan(catalog, paths[key]), faces[key])
        with catalog.session() as s:
            today = {r.face_id for r in person_identity(s, s.get(Person, decades["person"])).faces}
        assert reason == "Ann (confirmed by you)" and refs == today

    # the user's picks are the pool: only 2001 picked → 1978 falls back, and says so
    code, _, err = run_cli("people", "refs", "Ann", "--set", paths["2001"], "--catalog", db)
    assert code == 0, err
    reason, refs = _references(_plan(catalog, paths["1978a"]), faces["1978a"])
    assert refs == {faces["2001"]}
    assert "no reference of Ann within 10 years of 1978; used the closest, from 2001" in reason
    # curating the child era adds its pick and keeps 2001's
    code, out, err = run_cli("people", "refs", "Ann", "--set", paths["1978b"], "--era", "child", "--catalog", db)
    assert code == 0 and "picked by you for child" in out, err
    reason, refs = _references(_plan(catalog, paths["1978a"]), faces["1978a"])
    assert refs == {faces["1978b"]} and "references near 1978" in reason
    assert _references(_plan(catalog, paths["2001"]), faces["2001"])[1] == {faces["2001"]}

    # the user dates the scan: it now gets the childhood pick
    code, out, err = run_cli("photos", "set-date", paths["scan"], "--year", "1979", "--catalog", db)
    assert code == 0 and "1979 (set by you, 100% sure)" in out, err
    assert _references(_plan(catalog, paths["scan"]), faces["scan"])[1] == {faces["1978b"]}

    # the timeline: faces by year, references marked, the teen years (1985) lack a reference
    code, out, err = run_cli("people", "show", "Ann", "--timeline", "--catalog", db)
    assert code == 0, err
    assert "born 1972" in out and "era teen: 1 face(s), NO REFERENCE" in out and "era child:" in out
    line_1978b = next(line for line in out.splitlines() if f"#{faces['1978b']} " in line and "age 6" in line)
    assert "[reference]" in line_1978b
    assert f"suggested: #{faces['1980s']} " in out


def test_without_dates_the_plan_is_todays(shared, tmp_path, analyzer):
    """No date anywhere (LFW names, no EXIF), no birth year, no apparent ages: the plan is made exactly as
    before dates existed — one identity per person with the person's references, the same reasons."""
    album = tmp_path / "plain"
    for number in lfw_numbers(shared, WHO)[:3]:
        copy_as(shared, number, album / f"{WHO}_{number:04d}.jpg")
    catalog = open_catalog(tmp_path / "plain.sqlite3")
    try:
        scan(catalog, [album], analyzer=analyzer, workers=1)
        with catalog.transaction() as s:
            photos = s.scalars(select(Photo).order_by(Photo.path)).all()
            assert all(photo_dates.of_photo(p) is None for p in photos)
            person = corrections.new_person(s, "dlib/resnet-128", "Ann")
            corrections.confirm(s, person, [_largest(p) for p in photos])
        with catalog.session() as s:
            person = s.scalar(select(Person).where(Person.name == "Ann"))
            today = person_identity(s, person)
            for photo in s.scalars(select(Photo)):
                assert references.references_for_face(s, person, _largest(photo)) is None
                plan = plan_from_album(s, photo.id, OPTIONS)
                assert plan.identities == {today.key: today} and today.key == f"person:{person.id}"
                mine = [(f.action, f.reason, f.identity) for f in plan.faces if f.person_id == person.id]
                assert mine == [("restored", "Ann (confirmed by you)", today.key)]
    finally:
        catalog.close()


@pytest.fixture(scope="session")
def aged_insightface(tiny_pack, tmp_path_factory) -> Path:
    """The tiny pack's InsightFace folder (the real SCRFD detector, a tiny ArcFace) with a tiny model of
    genderage.onnx's interface (engine.testing.tiny_genderage: it reads brighter crops as older)."""
    from engine.models.layout import part_dir
    from engine.testing.tiny_genderage import export_tiny_genderage

    folder = tmp_path_factory.mktemp("aged") / "antelopev2"
    folder.mkdir()
    for model in part_dir(tiny_pack, "antelopev2").glob("*.onnx"):
        shutil.copyfile(model, folder / model.name)
    export_tiny_genderage(folder / "genderage.onnx")
    return folder


def test_apparent_ages_at_scan_time_and_a_reanalysis_keeps_the_users_date(shared, tmp_path, catalog, analyzer,
                                                                         aged_insightface, run_cli):
    from engine.catalog.scanner import reanalyse_album
    from engine.faces.insightface_backend import InsightFaceAnalyzer
    from engine.imageio import read_image, write_image

    album = tmp_path / "album"
    bright = copy_as(shared, lfw_numbers(shared, WHO)[0], album / "a.jpg")
    dark = album / "dark.jpg"
    write_image(dark, (read_image(bright).pixels // 2).astype("uint8"), format="JPEG", quality=95)
    scan(catalog, [album], analyzer=analyzer, workers=1)  # dlib: no age estimator, no ages
    code, out, err = run_cli("photos", "set-date", bright, "--year", "1980", "--catalog", catalog.url)
    assert code == 0, err

    arcface = InsightFaceAnalyzer(aged_insightface, providers=["CPUExecutionProvider"])
    assert arcface.age_model == "insightface/antelopev2/genderage"
    result = reanalyse_album(catalog, [album], arcface, workers=1)
    assert result.reanalysed == 2
    with catalog.transaction() as s:
        photos = {Path(p.path).name: p for p in s.scalars(select(Photo))}
        ages = {name: _largest(p).apparent_age for name, p in photos.items()}
        assert {_largest(p).age_model for p in photos.values()} == {arcface.age_model}
        assert 0 < ages["dark.jpg"] < ages["a.jpg"] <= 80  # the darker copy looks younger to this model
        kept = photo_dates.of_photo(photos["a.jpg"])
        assert (kept.describe(), kept.source) == ("1980", "user")  # the re-analysis kept the user's date
        assert photo_dates.of_photo(photos["dark.jpg"]) is None
        person = corrections.new_person(s, arcface.embedding_model, "Ann")
        corrections.confirm(s, person, [_largest(p) for p in photos.values()])
        # no date: the apparent age stands in for one; the dated face is compared by the age its date gives
        person.birth_year = 1972
        s.flush()
        by_age = references.references_for_face(s, person, _largest(photos["dark.jpg"]))
        assert by_age.target.age == ages["dark.jpg"] and by_age.target.year == pytest.approx(1972 + ages["dark.jpg"])
        dated = references.references_for_face(s, person, _largest(photos["a.jpg"]))
        assert dated.target.year == 1980 and dated.target.age == 8
        # 1980 says 8 years old; the face looks older than 23: the plan flags the date
        assert ages["a.jpg"] > 23 and "but the face looks" in dated.note


def test_a_batch_names_the_references_of_each_face(decades, catalog, tiny_pack, run_cli):
    """`faceme batch --verbose` names each face's references: a photo of 2001 restored with 1992's and
    2001's faces, none of the childhood ones (one photo, one step: the plan tests above cover the rest)."""
    faces, album = decades["faces"], decades["album"]
    code, _, err = run_cli("people", "set", "Ann", "--born", "1972", "--catalog", catalog.url)
    assert code == 0, err
    code, out, err = run_cli("batch", album / "camera", "--out", album.parent / "out", "--catalog", catalog.url,
                             "--models", tiny_pack, "--steps", "1", "--seed", "3", "--unmatched", "skip",
                             "--no-identity-check", "--verbose")
    assert code == 0, err
    line = next(line for line in out.splitlines() if "restored as Ann" in line)
    assert "references near 2001 (2001-06-30, camera EXIF): #" in line, out
    assert f"#{faces['1992']} (1992)" in line and f"#{faces['2001']} (2001)" in line
    assert f"#{faces['1978b']} " not in line and f"#{faces['1978a']} " not in line
    # the tokens were computed from that era's references and are kept for that set
    used = sorted(int(n) for n in re.findall(r"#(\d+) \(\d{4}\)", line.split("references near", 1)[1]))
    with catalog.session() as session:
        kept = [sorted(row.reference_face_ids) for row in session.scalars(
            select(IdentityTokens).where(~IdentityTokens.pack_fingerprint.startswith("check:")))]
    assert kept == [used], (kept, used)


def test_migration_dates_photos_catalogued_before(tmp_path):
    """Revision 0008 dates the photos already catalogued (a rescan never reads an unchanged photo again)
    from what the catalog holds: their folder and file names, the EXIF date and camera of their scan."""
    from sqlalchemy import text

    from engine.catalog.db import make_engine, normalise_url, upgrade

    engine = make_engine(normalise_url(tmp_path / "old.sqlite3"))
    upgrade(engine, "0007")
    with engine.begin() as con:
        for path, taken, camera in (("/album/1978/a.jpg", None, None), ("/album/b.jpg", "2001-06-30 12:00:00", "Canon"),
                                    ("/album/c.jpg", "2019-03-02 10:00:00", "EPSON Perfection V600"),
                                    ("/album/d.jpg", None, None)):
            con.execute(text("insert into photos (path, size, mtime_ns, status, scanned_at, date_taken, camera) "
                             "values (:p, 1, 0, 'ok', '2026-01-01', :t, :c)"), {"p": path, "t": taken, "c": camera})
    engine.dispose()
    catalog = open_catalog(tmp_path / "old.sqlite3")
    try:
        with catalog.session() as s:
            dates = {Path(p.path).name: photo_dates.of_photo(p) for p in s.scalars(select(Photo))}
        assert (dates["a.jpg"].describe(), dates["a.jpg"].source) == ("1978", "folder")
        assert (dates["b.jpg"].describe(), dates["b.jpg"].source) == ("2001-06-30", "exif")
        assert dates["c.jpg"].source == "scan-exif" and not dates["c.jpg"].usable and dates["d.jpg"] is None
    finally:
        catalog.close()
