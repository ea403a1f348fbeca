"""The catalog database: migrations on open, SQLite settings, and the same schema on PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from engine.catalog.db import current_revision, head_revision, open_catalog
from engine.catalog.models import (Assignment, AssignmentOrigin, Base, Face, Person, Photo, PhotoStatus,
                                   Reference)
from engine.errors import CatalogError, UsageError


def _schema_differences(catalog) -> list:
    with catalog.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def _exercise(catalog) -> None:
    with catalog.transaction() as session:
        photo = Photo(path="/album/a.jpg", size=12, mtime_ns=1_700_000_000_123_456_789, content_hash="ab" * 32)
        face = Face(x1=1, y1=2, x2=30, y2=40, score=0.9, landmarks=[[1, 2]] * 5,
                    embedding=Face.pack(np.ones(128) / np.sqrt(128)), embedding_model="dlib/resnet-128")
        photo.faces.append(face)
        person = Person(name="Ann", embedding_model="dlib/resnet-128")
        session.add_all([photo, person])
        session.flush()
        session.add(Assignment(face_id=face.id, person_id=person.id, origin=AssignmentOrigin.confirmed))
        session.add(Reference(person_id=person.id, face_id=face.id, picked_by_user=True, reason="picked by you"))
    with catalog.transaction() as session:
        photo = session.scalar(select(Photo))
        assert photo.mtime_ns == 1_700_000_000_123_456_789  # 64-bit nanoseconds survive
        assert photo.status == PhotoStatus.ok
        assert np.allclose(photo.faces[0].vector, 1 / np.sqrt(128))
        session.delete(photo)  # cascades through faces to assignments and references
    with catalog.transaction() as session:
        assert session.scalar(select(Assignment)) is None
        assert session.scalar(select(Reference)) is None
        assert session.scalar(select(Person)).name == "Ann"


def test_sqlite_catalog_is_migrated_and_tuned(tmp_path):
    catalog = open_catalog(tmp_path / "sub" / "catalog.sqlite3")
    try:
        assert current_revision(catalog.engine) == head_revision()
        assert _schema_differences(catalog) == []
        with catalog.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
        _exercise(catalog)
        assert catalog.integrity_check() == "ok"
        assert catalog.thumbnails_dir == tmp_path / "sub" / "catalog.sqlite3.thumbnails"
    finally:
        catalog.close()
    # opening again is a no-op migration and keeps the data
    again = open_catalog(f"sqlite:///{tmp_path / 'sub' / 'catalog.sqlite3'}")
    with again.session() as session:
        assert session.scalar(select(Person)).name == "Ann"
    again.close()


def test_foreign_keys_are_enforced(catalog):
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        with catalog.transaction() as session:
            session.add(Face(photo_id=999, x1=0, y1=0, x2=1, y2=1, score=1, landmarks=[],
                             embedding=b"", embedding_model="m"))


def test_bad_catalog_url_is_a_usage_error_and_an_unreachable_server_a_catalog_error(tmp_path):
    with pytest.raises(UsageError):
        open_catalog("nosuchdialect://x/y")
    with pytest.raises(CatalogError, match="database server cannot be reached"):
        open_catalog("postgresql+psycopg://nobody@/nodb?host=/nonexistent-socket-dir")


def test_postgresql_catalog(postgres_url):
    catalog = open_catalog(postgres_url)
    try:
        assert catalog.engine.dialect.name == "postgresql"
        assert current_revision(catalog.engine) == head_revision()
        assert _schema_differences(catalog) == []
        _exercise(catalog)
    finally:
        with catalog.engine.begin() as connection:  # leave the session-wide server clean
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
        catalog.close()


def test_scan_and_people_on_postgresql(postgres_url, shared, tmp_path, analyzer):
    """The scanner, clustering and corrections on a PostgreSQL catalog (a family NAS)."""
    import shutil

    from catalog_testkit import add_photos, lfw_numbers

    from engine.catalog.scanner import scan
    from engine.people import corrections
    from engine.people.listing import people_listing

    album = tmp_path / "album"
    add_photos(shared, album / "a", "Dick_Cheney", lfw_numbers(shared, "Dick_Cheney")[:3])
    catalog = open_catalog(postgres_url, thumbnails_dir=tmp_path / "thumbs")
    try:
        assert scan(catalog, [album], analyzer=analyzer).added == 3
        with catalog.transaction() as session:
            listing = people_listing(session)
            assert len(listing["people"]) == 1 and len(listing["people"][0]["faces"]) == 3
            person = corrections.find_person(session, listing["people"][0]["id"])
            corrections.rename(session, person, "Dick")
        shutil.move(album / "a", album / "b_100%_moved")  # LIKE wildcards in a path must not matter
        r = scan(catalog, [album], analyzer=analyzer)
        assert r.moved == 3 and r.added == 0
        with catalog.session() as session:
            listing = people_listing(session)
            assert [p["name"] for p in listing["people"]] == ["Dick"]
            assert all("b_100%_moved" in f["photo"] for f in listing["people"][0]["faces"])
    finally:
        with catalog.engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
        catalog.close()
