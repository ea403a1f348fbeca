"""Re-analysing a dlib-scanned album with the InsightFace backend (the tiny pack's real SCRFD + tiny
ArcFace) keeps every name, confirmation, rejection and reference; it can be stopped and resumed."""

from __future__ import annotations

import pytest
from catalog_testkit import add_photos, lfw_numbers
from sqlalchemy import select

from engine.catalog.models import Assignment, Face, Person, Photo, Reference
from engine.catalog.scanner import reanalyse_album, scan
from engine.errors import CancelledError
from engine.people import corrections, references


def _decisions(catalog) -> dict:
    """Everything the user decided, by photo path and person name (not by row ids, which change)."""
    with catalog.session() as s:
        names = {p.id: p.name for p in s.scalars(select(Person))}
        out = {"people": sorted(n for n in names.values() if n), "assignments": set(), "references": set()}
        for a in s.scalars(select(Assignment)):
            if names[a.person_id] is not None or a.origin.value != "machine":
                out["assignments"].add((a.face.photo.path.rsplit("/", 1)[1], names[a.person_id], a.origin.value))
        for r in s.scalars(select(Reference).where(Reference.picked_by_user.is_(True))):
            out["references"].add((r.face.photo.path.rsplit("/", 1)[1], names[r.person_id]))
    return out


def _face_ids(catalog) -> dict[int, str]:
    """{face id: photo name} of the faces the user decided something about (a name, a rejection, a pick)."""
    with catalog.session() as s:
        decided = {a.face_id for a in s.scalars(select(Assignment)) if a.origin.value != "machine"}
        decided |= {r.face_id for r in s.scalars(select(Reference))}
        return {f.id: f.photo.path.rsplit("/", 1)[1] for f in s.scalars(select(Face).where(Face.id.in_(decided)))}


@pytest.fixture
def dlib_album(shared, tmp_path, catalog, analyzer):
    album = tmp_path / "album"
    add_photos(shared, album, "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:3])
    add_photos(shared, album, "Winona_Ryder", lfw_numbers(shared, "Winona_Ryder")[:3])
    scan(catalog, [album], analyzer=analyzer, workers=1)
    with catalog.transaction() as s:
        people = s.scalars(select(Person)).all()
        assert len(people) == 2
        for person in people:
            photo = min(a.face.photo.path for a in person.assignments)
            name = "Dick" if "Cheney" in photo else "Winona"
            corrections.rename(s, person, name)
            faces = sorted((a.face for a in person.assignments), key=lambda f: f.photo.path)
            corrections.confirm(s, person, [faces[0]])
            references.set_references(s, person, [faces[1]])
        dick = corrections.find_person(s, "Dick")
        winona_face = s.scalars(select(Face).join(Photo).where(Photo.path.like("%Winona%"))
                                .order_by(Photo.path)).first()
        corrections.reject(s, dick, [winona_face])  # "not Dick" on a face of Winona
    return album


def test_reanalysing_with_insightface_keeps_every_decision(dlib_album, catalog, tiny_pack):
    from engine.faces.choice import make_face_analyzer

    before = _decisions(catalog)
    assert len(before["assignments"]) >= 3 and len(before["references"]) == 2
    ids_before = _face_ids(catalog)
    arcface = make_face_analyzer("antelopev2", tiny_pack)
    seen = []
    with pytest.raises(CancelledError):  # stopped part-way ...
        reanalyse_album(catalog, [dlib_album], arcface, workers=1,
                        progress=lambda d, t, m: seen.append(d), cancel=lambda: len(seen) >= 3)
    with catalog.session() as s:
        models = {p.analysed_with for p in s.scalars(select(Photo))}
        assert models == {"dlib/resnet-128", arcface.embedding_model}  # half done, each photo whole
    assert _decisions(catalog) == before
    result = reanalyse_album(catalog, [dlib_album], arcface, workers=2)  # ... and resumed, in 2 processes
    assert result.workers == 2
    assert result.unchanged >= 1 and result.unchanged + result.changed + result.added <= 6
    assert result.reanalysed == 6 - result.unchanged and result.accounted() == result.files  # every photo counted
    assert f"{result.reanalysed} re-analysed with the new face model" in result.summary()
    assert _decisions(catalog) == before
    with catalog.session() as s:
        assert {f.embedding_model for f in s.scalars(select(Face))} == {arcface.embedding_model}
        assert {p.embedding_model for p in s.scalars(select(Person))} == {arcface.embedding_model}
        assert {p.analysed_with for p in s.scalars(select(Photo))} == {arcface.embedding_model}
    # issue 19: the faces keep the ids the user knows them by (PHOTO#N, face #id): rows are updated in place
    assert _face_ids(catalog) == ids_before
    # done: nothing left to re-analyse
    assert scan(catalog, [dlib_album], analyzer=arcface, workers=1).unchanged == 6
