"""The pages' worker functions (people_actions, catalog_views, batch_flow) on a small catalog, without
windows: each is a thin call into the engine, and these catch a broken call quickly."""

from __future__ import annotations

import numpy as np
import pytest

from engine.catalog.db import open_catalog
from engine.catalog.models import Face, Photo
from engine.errors import NoFaceError, UsageError
from engine.imageio import write_image
from engine.people.corrections import new_person

MODEL = "dlib/resnet-128"


@pytest.fixture
def catalog(tmp_path):
    cat = open_catalog(tmp_path / "catalog.sqlite3")
    with cat.transaction() as s:
        for n in range(3):
            photo = Photo(path=f"/album/p{n}.jpg", size=1, mtime_ns=1, content_hash=f"{n:064d}", width=400, height=300)
            photo.faces.append(Face(x1=0, y1=0, x2=100 + n, y2=100 + n, score=1, landmarks=[], quality=0.5 + n / 10,
                                    embedding=b"", embedding_model=MODEL))
            s.add(photo)
    yield cat
    cat.close()


def test_people_actions_and_views(catalog):
    from app import catalog_views, people_actions

    unknown = catalog_views.list_people(catalog)
    assert [(c.name, c.face_count) for c in unknown] == [("Unknown", 3)]
    face_ids = [f.id for f in unknown[0].faces]  # best first
    with pytest.raises(UsageError, match="choose at least one face"):
        people_actions.new_person_from(catalog, [999])
    person = people_actions.new_person_from(catalog, face_ids, "Ann")
    people_actions.rename(catalog, person, "Anna")
    other = people_actions.split(catalog, person, face_ids[2:], "Bea")
    people_actions.reject(catalog, other, face_ids[2:])
    cards = catalog_views.list_people(catalog)
    assert [(c.name, c.face_count, c.faces[0].confirmed if c.faces else None) for c in cards] == \
        [("Anna", 2, True), ("Unknown", 1, False)]
    people_actions.set_references(catalog, person, face_ids[1:2])
    picks, suggested = people_actions.references(catalog, person)
    assert [r.face.id for r in picks] == [face_ids[1]] and [r.face.id for r in suggested] == face_ids[:2]
    assert catalog_views.list_people(catalog)[0].picked_count == 1
    with pytest.raises(UsageError, match="no longer exists"):
        people_actions.hide(catalog, 999)
    people_actions.hide(catalog, person)
    assert [c.name for c in catalog_views.list_people(catalog)] == ["Unknown"]
    assert [(r.path.name, r.faces) for r in catalog_views.list_photos(catalog, ["/album"])] == \
        [("p0.jpg", 1), ("p1.jpg", 1), ("p2.jpg", 1)]


def test_add_reference_file_needs_a_face(catalog, tmp_path):
    from app import people_actions

    with catalog.transaction() as s:
        person = new_person(s, MODEL, "Ann").id
    blank = tmp_path / "blank.png"
    write_image(blank, np.full((64, 64, 3), 128, np.uint8))
    with pytest.raises(NoFaceError, match="can't be a reference"):
        people_actions.add_reference_file(catalog, person, blank, [])


def test_queue_functions_on_a_catalog_without_batches(catalog):
    from app import batch_flow

    assert batch_flow.list_jobs(catalog) == [] and batch_flow.unfinished_job(catalog) is None
    batch_flow.cancel_job(catalog, 7)  # already gone: nothing to do
    with pytest.raises(UsageError, match="batch 7 no longer exists"):
        batch_flow.retry_failed(catalog, 7)
