"""The database refuses a face in two people; migration 0005 repairs catalogs that have such faces."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from engine.catalog.db import make_engine, normalise_url, open_catalog, upgrade
from engine.catalog.models import Assignment, Face, Person, Photo


def _face(session, path: str) -> Face:
    photo = Photo(path=path, size=1, mtime_ns=0)
    session.add(photo)
    session.flush()
    face = Face(photo_id=photo.id, x1=0, y1=0, x2=10, y2=10, score=1, landmarks=[], embedding=b"\0" * 512,
                embedding_model="dlib/resnet-128")
    session.add(face)
    session.flush()
    return face


def test_a_second_machine_assignment_is_refused(catalog):
    with catalog.transaction() as s:
        face = _face(s, "/a.jpg")
        people = [Person(embedding_model="dlib/resnet-128") for _ in range(3)]
        s.add_all(people)
        s.flush()
        s.add(Assignment(face_id=face.id, person_id=people[0].id, origin="machine"))
        s.add(Assignment(face_id=face.id, person_id=people[1].id, origin="rejected"))  # any number of these
        face_id, other = face.id, people[2].id
    for origin in ("machine", "confirmed"):
        with pytest.raises(IntegrityError):
            with catalog.transaction() as s:
                s.add(Assignment(face_id=face_id, person_id=other, origin=origin))


def test_migration_repairs_faces_with_two_people(tmp_path):
    url = normalise_url(tmp_path / "old.sqlite3")
    engine = make_engine(url)
    upgrade(engine, "0001")  # a catalog made before the constraint
    with engine.begin() as con:  # the 0001 schema, in plain SQL (the models are newer)
        def insert(sql: str, **values) -> int:
            return con.execute(text(sql), values).lastrowid

        face_ids = []
        for path in ("/doubled.jpg", "/confirmed.jpg"):
            photo = insert("insert into photos (path, size, mtime_ns, status, scanned_at) "
                           "values (:p, 1, 0, 'ok', '2026-01-01')", p=path)
            face_ids.append(insert(
                "insert into faces (photo_id, x1, y1, x2, y2, score, landmarks, quality, sharpness, frontalness, "
                "yaw, embedding, embedding_model, created_at) values (:photo, 0, 0, 10, 10, 1, '[]', 0, 0, 0, 0, "
                "x'00', 'dlib/resnet-128', '2026-01-01')", photo=photo))
        person_ids = [insert("insert into people (name, hidden, embedding_model, created_at) "
                             "values (:n, 0, 'dlib/resnet-128', '2026-01-01')", n=name) for name in (None, None, "Ann")]
        doubled_id, confirmed_id = face_ids
        a_id, b_id, named_id = person_ids
        for face, person, origin in ((doubled_id, a_id, "machine"), (doubled_id, b_id, "machine"),
                                     (confirmed_id, a_id, "machine"), (confirmed_id, named_id, "confirmed")):
            insert("insert into assignments (face_id, person_id, origin, created_at) "
                   "values (:f, :p, :o, '2026-01-01')", f=face, p=person, o=origin)
    engine.dispose()
    catalog = open_catalog(tmp_path / "old.sqlite3")  # migrates to the newest revision
    try:
        with catalog.session() as s:
            rows = {(r.face_id, r.person_id, r.origin.value) for r in s.scalars(select(Assignment))}
            assert rows == {(doubled_id, a_id, "machine"), (confirmed_id, named_id, "confirmed")}
            # the person the repair emptied (no face, no name) is gone; Ann stays
            assert set(s.scalars(select(Person.id))) == {a_id, named_id}
            assert s.scalar(select(func.count(Face.id)).where(Face.clustered.is_(True))) == 2
        with catalog.engine.connect() as connection:
            assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    finally:
        catalog.close()
