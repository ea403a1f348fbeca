"""The GUI's read-only views of people (engine.people.listing) and photos (engine.catalog.views), and
the id / path lookups the app's actions use."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.catalog.models import Assignment, AssignmentOrigin, Face, Person, Photo, PhotoStatus
from engine.catalog.views import photo_rows
from engine.errors import NoFaceError, UsageError
from engine.people import corrections, references
from engine.people.listing import known_people, people_cards, reference_rows

MODEL = "dlib/resnet-128"


def _photo(session, path, status=PhotoStatus.ok, faces=(), width=800, height=600):
    photo = Photo(path=path, size=1, mtime_ns=1, content_hash=path.rjust(64, "0")[-64:], status=status,
                  width=width, height=height, thumbnail=path + ".thumb.jpg")
    for size, quality, model in faces:
        photo.faces.append(Face(x1=10, y1=10, x2=10 + size, y2=10 + size, score=1, landmarks=[], quality=quality,
                                embedding=b"", embedding_model=model))
    session.add(photo)
    session.flush()
    return photo


def _person(session, name, faces, origin=AssignmentOrigin.machine, hidden=False):
    person = Person(name=name, embedding_model=MODEL, hidden=hidden)
    session.add(person)
    session.flush()
    for face in faces:
        session.add(Assignment(face_id=face.id, person_id=person.id, origin=origin))
    session.flush()
    return person


@pytest.fixture
def album(catalog):
    """Ann: 3 faces (one in a photo now missing from disk, one rejected); Bob: 1 face, confirmed;
    Cy: hidden; 2 faces in nobody."""
    with catalog.transaction() as s:
        a1 = _photo(s, "/album/a1.jpg", faces=[(200, 0.9, MODEL)]).faces[0]
        a2 = _photo(s, "/album/a2.jpg", faces=[(150, 0.7, MODEL), (120, 0.4, MODEL)]).faces
        gone = _photo(s, "/album/gone.jpg", status=PhotoStatus.missing, faces=[(300, 0.99, MODEL)]).faces[0]
        b1 = _photo(s, "/other/b1.jpg", faces=[(100, 0.5, MODEL)]).faces[0]
        c1 = _photo(s, "/album/sub/c1.jpg", faces=[(90, 0.6, MODEL), (80, 0.1, "other/model")]).faces
        _photo(s, "/album/bad.jpg", status=PhotoStatus.unreadable)
        ann = _person(s, "Ann", [a1, a2[0], gone])
        s.add(Assignment(face_id=a2[1].id, person_id=ann.id, origin=AssignmentOrigin.rejected))
        bob = _person(s, "Bob", [b1], origin=AssignmentOrigin.confirmed)
        cy = _person(s, "Cy", [c1[0]], hidden=True)
        references.set_references(s, bob, [b1])
        return {"ann": ann.id, "bob": bob.id, "cy": cy.id, "a1": a1.id, "a2": a2[0].id, "rejected": a2[1].id,
                "b1": b1.id, "c1": c1[0].id, "c1_other": c1[1].id}


def test_people_cards_count_faces_and_references_and_end_with_the_unknown_bucket(catalog, album):
    with catalog.session() as s:
        cards = people_cards(s)
        with_hidden = people_cards(s, include_hidden=True, faces_per_person=1)
    assert [(c.name, c.face_count) for c in cards] == [("Ann", 2), ("Bob", 1), ("Unknown", 2)]
    ann, bob, unknown = cards
    assert [f.id for f in ann.faces] == [album["a1"], album["a2"]]  # best first; missing photo left out
    assert ann.cover == ann.faces[0] and ann.cover.photo == Path("/album/a1.jpg")
    assert ann.cover.image_size == (800, 600) and ann.cover.box == (10, 10, 210, 210)
    assert not ann.cover.confirmed and bob.faces[0].confirmed
    assert (bob.reference_count, bob.picked_count, ann.reference_count) == (1, 1, 0)
    assert unknown.is_unknown and {f.id for f in unknown.faces} == {album["rejected"], album["c1_other"]}
    assert [c.name for c in with_hidden] == ["Ann", "Bob", "Cy", "Unknown"]
    assert with_hidden[0].face_count == 2 and len(with_hidden[0].faces) == 1 and with_hidden[2].hidden


def test_photo_rows_under_albums_with_face_counts(catalog, album):
    with catalog.session() as s:
        everything = photo_rows(s)
        under_album = photo_rows(s, ["/album"])
        sub = photo_rows(s, ["/album/sub/"])
    assert [r.path.name for r in everything] == ["a1.jpg", "a2.jpg", "bad.jpg", "c1.jpg", "b1.jpg"]  # no missing
    assert [r.path.name for r in under_album] == ["a1.jpg", "a2.jpg", "bad.jpg", "c1.jpg"]
    assert [(r.path.name, r.faces) for r in sub] == [("c1.jpg", 2)]
    bad = next(r for r in everything if r.path.name == "bad.jpg")
    assert bad.status == "unreadable" and bad.faces == 0
    assert everything[0].thumbnail == Path("/album/a1.jpg.thumb.jpg") and everything[0].status == "ok"


def test_reference_rows_and_the_people_restoration_knows(catalog, album):
    with catalog.transaction() as s:
        picks, suggested = reference_rows(s, corrections.person_by_id(s, album["bob"]))
        assert [(r.face.id, r.picked_by_user, r.reason) for r in picks] == [(album["b1"], True, "picked by you")]
        assert [r.face.id for r in suggested] == [album["b1"]]  # more to choose from: fresh suggestions
        picks, suggested = reference_rows(s, corrections.person_by_id(s, album["ann"]))
        assert picks == [] and [r.face.id for r in suggested] == [album["a1"], album["a2"]]
        assert [r.rank for r in suggested] == [0, 1] and suggested[0].reason.startswith("best overall quality")
    with catalog.session() as s:
        known = known_people(s)
    assert [(p.id, p.name) for p in known] == [(album["ann"], "Ann"), (album["bob"], "Bob")]  # Cy is hidden
    assert known[0].references == [(Path("/album/a1.jpg"), (10, 10, 210, 210)), (Path("/album/a2.jpg"),
                                                                                (10, 10, 160, 160))]


def test_names_given_to_restoration_are_unique(catalog, album):
    with catalog.transaction() as s:
        corrections.rename(s, corrections.person_by_id(s, album["bob"]), "Ann")
    with catalog.session() as s:
        assert [p.name for p in known_people(s)] == ["Ann", f"Ann ({album['bob']})"]


def test_lookups_by_id_and_by_photo_path(catalog, album):
    with catalog.transaction() as s:
        with pytest.raises(UsageError, match="person 999 no longer exists"):
            corrections.person_by_id(s, 999)
        assert [f.id for f in corrections.faces_by_id(s, [album["b1"], 999, album["a1"]])] == [album["b1"], album["a1"]]
        cy = corrections.person_by_id(s, album["cy"])
        face = references.face_for_reference(s, cy, Path("/album/sub/c1.jpg"))
        assert face.id == album["c1"]  # the largest face of the person's embedding model
        with pytest.raises(NoFaceError, match="can't be a reference"):
            references.face_for_reference(s, cy, "/album/bad.jpg")
        with pytest.raises(NoFaceError):
            references.face_for_reference(s, cy, "/not/catalogued.jpg")
