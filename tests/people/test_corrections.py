"""Done-means 2: the user's corrections hold across re-scans that add new photos of the same people."""

from __future__ import annotations

import json

from catalog_testkit import add_photos, lfw_numbers, scan_two_people_with_the_cli
from sqlalchemy import select

from engine.catalog.models import Assignment, AssignmentOrigin, Face, Person, Photo
from engine.catalog.scanner import scan
from engine.people import corrections

PEOPLE = ("Dick_Cheney", "Winona_Ryder", "Jacques_Chirac", "Queen_Elizabeth_II")


def _face(session, shared, identity: str, k: int) -> Face:
    number = lfw_numbers(shared, identity)[k]
    return session.scalar(select(Face).join(Photo).where(Photo.path.like(f"%{identity}_{number:04d}.jpg")))


def _person(session, face: Face) -> Person | None:
    return corrections.person_of(session, face)


def test_corrections_survive_rescans(shared, tmp_path, catalog, analyzer):
    album = tmp_path / "album"
    for name in PEOPLE:
        add_photos(shared, album / "first", name, lfw_numbers(shared, name)[:3])
    scan(catalog, [album], analyzer=analyzer)

    with catalog.transaction() as s:
        # the machine found the four people
        for name in PEOPLE:
            owners = {_person(s, _face(s, shared, name, k)).id for k in range(3)}
            assert len(owners) == 1, name
        cheney = _person(s, _face(s, shared, "Dick_Cheney", 0))
        corrections.rename(s, cheney, "Dick")
        corrections.confirm(s, cheney, [_face(s, shared, "Dick_Cheney", 0)])
        ryder = _person(s, _face(s, shared, "Winona_Ryder", 0))
        rejected_face = _face(s, shared, "Winona_Ryder", 2)
        corrections.reject(s, ryder, [rejected_face])
        corrections.hide(s, ryder)
        chirac = _person(s, _face(s, shared, "Jacques_Chirac", 0))
        split_faces = [_face(s, shared, "Jacques_Chirac", 1), _face(s, shared, "Jacques_Chirac", 2)]
        chirac_b = corrections.split(s, chirac, split_faces, name="Jacques B")
        queen = _person(s, _face(s, shared, "Queen_Elizabeth_II", 0))
        queen_part = corrections.split(s, queen, [_face(s, shared, "Queen_Elizabeth_II", 2)])
        corrections.merge(s, queen, [queen_part])
        ids = dict(cheney=cheney.id, ryder=ryder.id, chirac=chirac.id, chirac_b=chirac_b.id, queen=queen.id,
                   queen_part=queen_part.id, rejected_face=rejected_face.id,
                   split_faces=[f.id for f in split_faces])

    def check(s, after_rescan: bool):
        cheney = s.get(Person, ids["cheney"])
        assert cheney.name == "Dick"
        first = _face(s, shared, "Dick_Cheney", 0)
        row = s.scalar(select(Assignment).where(Assignment.face_id == first.id, Assignment.origin != "rejected"))
        assert row.person_id == cheney.id and row.origin == AssignmentOrigin.confirmed
        # rejected: out of Ryder for good, the rejection row still there
        owner = _person(s, s.get(Face, ids["rejected_face"]))
        assert owner is None or owner.id != ids["ryder"]
        assert s.scalar(select(Assignment).where(Assignment.face_id == ids["rejected_face"],
                                                 Assignment.person_id == ids["ryder"])).origin == "rejected"
        assert s.get(Person, ids["ryder"]).hidden
        # split: the chosen faces stay in the new person, confirmed; the first stays behind
        for face_id in ids["split_faces"]:
            row = s.scalar(select(Assignment).where(Assignment.face_id == face_id, Assignment.origin != "rejected"))
            assert row.person_id == ids["chirac_b"] and row.origin == AssignmentOrigin.confirmed
        assert _person(s, _face(s, shared, "Jacques_Chirac", 0)).id == ids["chirac"]
        assert s.get(Person, ids["chirac_b"]).name == "Jacques B"
        # merge: one queen, holding all her first faces
        assert s.get(Person, ids["queen_part"]) is None
        assert {_person(s, _face(s, shared, "Queen_Elizabeth_II", k)).id for k in range(3)} == {ids["queen"]}
        if after_rescan:
            # new photos of known people join them (the machine still works around the constraints)
            for k in (3, 4):
                assert _person(s, _face(s, shared, "Dick_Cheney", k)).id == ids["cheney"]
                assert _person(s, _face(s, shared, "Queen_Elizabeth_II", k)).id == ids["queen"]
                assert _person(s, _face(s, shared, "Winona_Ryder", k)).id == ids["ryder"]

    with catalog.session() as s:
        check(s, after_rescan=False)
    # new photos of the same people, in a new folder, then a re-scan of everything (twice)
    for name in PEOPLE:
        add_photos(shared, album / "second", name, lfw_numbers(shared, name)[3:5])
    scan(catalog, [album], analyzer=analyzer)
    with catalog.session() as s:
        check(s, after_rescan=True)
    scan(catalog, [album], analyzer=analyzer)
    with catalog.session() as s:
        check(s, after_rescan=True)


def test_people_cli(shared, tmp_path, run_cli, analyzer, monkeypatch):
    db, cheney, out = scan_two_people_with_the_cli(shared, tmp_path, run_cli, analyzer, monkeypatch)
    assert "6 new" in out

    code, out, _ = run_cli("people", "list", "--json", "--catalog", db)
    assert code == 0
    listing = json.loads(out)
    assert set(listing) == {"people", "unassigned"}
    assert len(listing["people"]) == 2
    for person in listing["people"]:
        assert set(person) == {"id", "name", "faces"}
        for face in person["faces"]:
            assert set(face) == {"photo", "box", "confirmed", "face_id"}
            assert face["photo"].startswith(str(tmp_path / "album")) and len(face["box"]) == 4
    for face in listing["unassigned"]:
        assert set(face) == {"photo", "box", "face_id"}
    pid = next(p["id"] for p in listing["people"] if "Cheney" in p["faces"][0]["photo"])
    other = next(p["id"] for p in listing["people"] if p["id"] != pid)

    assert run_cli("people", "rename", pid, "Dick", "--catalog", db)[0] == 0
    assert run_cli("people", "confirm", "Dick", cheney[0], "--catalog", db)[0] == 0
    code, out, err = run_cli("people", "split", "Dick", cheney[1], "--name", "Other", "--catalog", db)
    assert code == 0, err
    assert run_cli("people", "merge", "Dick", "Other", "--catalog", db)[0] == 0
    assert run_cli("people", "reject", "Dick", cheney[2], "--catalog", db)[0] == 0
    assert run_cli("people", "hide", other, "--catalog", db)[0] == 0
    code, out, _ = run_cli("people", "refs", "Dick", "--catalog", db)
    assert code == 0 and "references of Dick" in out and str(cheney[0]) in out
    code, out, err = run_cli("people", "refs", "Dick", "--set", cheney[1], "--catalog", db)
    assert code == 0, err
    assert "picked by you" in out and str(cheney[1]) in out and str(cheney[0]) not in out

    listing = json.loads(run_cli("people", "list", "--json", "--catalog", db)[1])
    assert [p["name"] for p in listing["people"]] == ["Dick"]  # the other one is hidden
    faces = {f["photo"]: f["confirmed"] for f in listing["people"][0]["faces"]}
    assert faces == {str(cheney[0]): True, str(cheney[1]): True}
    assert str(cheney[2]) in {f["photo"] for f in listing["unassigned"]}

    # the rejected (now unknown) face becomes a person of its own
    code, out, err = run_cli("people", "new", "Dick 2003", cheney[2], "--catalog", db)
    assert code == 0 and "new person Dick 2003" in out, err
    listing = json.loads(run_cli("people", "list", "--json", "--catalog", db)[1])
    assert {p["name"]: [f["photo"] for f in p["faces"]] for p in listing["people"]}["Dick 2003"] == [str(cheney[2])]

    assert run_cli("people", "rename", "Nobody", "X", "--catalog", db)[0] == 2
    assert run_cli("people", "confirm", "Dick", tmp_path / "nope.jpg", "--catalog", db)[0] == 2
