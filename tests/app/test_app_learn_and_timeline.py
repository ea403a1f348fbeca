"""The People page's "Learn this person…" (issue 21) and a person's timeline with their birth year
(issue 23), on a small dated album of real LFW photos: two photos in each of four year folders."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app_testkit import make_window, wait_idle

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "catalog"))

from catalog_testkit import MemoDlibAnalyzer, lfw_numbers, lfw_photo  # noqa: E402

WHO = "George_Robertson"
YEARS = ("1978", "1985", "1992", "2001")


@pytest.fixture(scope="module")
def dated_catalog(shared, tmp_path_factory) -> Path:
    """A closed catalog: Ann = the largest face of each of 8 photos, two per year folder; her references
    are her two 2001 faces (picked), so the earlier eras lack one. Tests copy it."""
    from sqlalchemy import select

    from engine.catalog.db import open_catalog
    from engine.catalog.models import Photo
    from engine.catalog.scanner import scan
    from engine.people import corrections, references

    root = tmp_path_factory.mktemp("dated")
    numbers = lfw_numbers(shared, WHO)[:8]
    for n, number in enumerate(numbers):
        target = root / "album" / YEARS[n // 2] / f"{number}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lfw_photo(shared, WHO, number), target)
    catalog = open_catalog(root / "catalog.sqlite3")
    try:
        scan(catalog, [root / "album"], analyzer=MemoDlibAnalyzer(), workers=1)
        with catalog.transaction() as session:
            photos = session.scalars(select(Photo)).all()
            faces = [max(p.faces, key=lambda f: (f.x2 - f.x1) * (f.y2 - f.y1)) for p in photos if p.faces]
            assert len(faces) == 8
            ann = corrections.new_person(session, faces[0].embedding_model, "Ann")
            corrections.confirm(session, ann, faces)
            references.set_references(session, ann, [f for f in faces if "/2001/" in f.photo.path])
    finally:
        catalog.close()
    return root / "catalog.sqlite3"


@pytest.fixture
def dated_env(dated_catalog, env) -> Path:
    shutil.copy2(dated_catalog, env / "catalog.sqlite3")
    return env


def _mark_learned(catalog, person_id: int) -> None:
    """An accepted learning of Ann as engine.learn.learning stores one (fitted on all her faces)."""
    from engine.catalog.models import LearnedIdentity, Person
    from engine.learn.store import current_references_key

    with catalog.transaction() as session:
        person = session.get(Person, person_id)
        faces = [a.face_id for a in person.assignments]
        session.add(LearnedIdentity(person_id=person_id, method="fitted", version=1, status="accepted",
                                    pack_fingerprint="another pack", faces_key="k", fit_face_ids=faces,
                                    held_out_face_ids=[], references_key=current_references_key(session, person),
                                    figures={}, settings={}, message=""))


def test_the_timeline_shows_years_references_and_eras_and_takes_a_birth_year(qtbot, dated_env):
    from engine.catalog.models import Person

    window = make_window(qtbot, dated_env)
    window.show_page("people")
    wait_idle(qtbot, window)
    page = window.people
    ann = next(c for c in page.cards if c.name == "Ann")
    _mark_learned(window.context.catalog(), ann.id)
    window.context.catalog_changed.emit()
    wait_idle(qtbot, window)
    item = page.model.item(page.model.row_of(("person", ann.id)))
    assert "learned" in item.subtitle and "fitted v1" in item.tooltip  # the badge of a learned identity
    page.select_people([ann.id])
    assert "learned identity in use (fitted v1)" in page.detail_info.text()

    page.detail_tabs.setCurrentWidget(page.timeline)
    wait_idle(qtbot, window)
    view = page.timeline.view
    assert view is not None and view.person_id == ann.id
    tree = page.timeline.years
    assert [tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount())] == list(YEARS)
    assert [tree.topLevelItem(i).text(2) for i in range(tree.topLevelItemCount())] == ["2"] * 4
    assert [y.references for y in view.years] == [0, 0, 0, 2]  # the picks: her 2001 faces
    assert page.timeline.lacking_eras() == ["1970s", "1980s", "1990s"]
    assert page.timeline.born.text() == "unknown"

    # the birth year, as `faceme people set Ann --born 1972`: ages and eras by age
    page.timeline.born.setFocus()
    page.timeline.born.selectAll()
    qtbot.keyClicks(page.timeline.born, "1972")
    qtbot.keyClick(page.timeline.born, Qt.Key.Key_Return)
    wait_idle(qtbot, window)
    with window.context.catalog().session() as session:
        assert session.get(Person, ann.id).birth_year == 1972
    view = page.timeline.view
    assert view.born == 1972
    assert [(y.when, y.age, y.era) for y in view.years] == [
        ("1978", "6", "child"), ("1985", "13", "teen"), ("1992", "20", "adult"), ("2001", "29", "adult")]
    assert page.timeline.lacking_eras() == ["child", "teen"]
    assert page.timeline.eras.topLevelItem(0).text(2) == "no reference"

    page.timeline.set_born(None)  # unknown again
    wait_idle(qtbot, window)
    with window.context.catalog().session() as session:
        assert session.get(Person, ann.id).birth_year is None
    assert page.timeline.lacking_eras() == ["1970s", "1980s", "1990s"]


def test_learning_starts_a_job_that_cancel_stops_and_too_few_faces_are_named(qtbot, dated_env, tiny_pack,
                                                                          shared_model):
    from sqlalchemy import func, select

    from app import people_actions
    from engine.catalog.models import LearnedIdentity

    window = make_window(qtbot, dated_env, model=shared_model)
    window.context.preferences.models_dir = str(tiny_pack)
    window.show_page("people")
    wait_idle(qtbot, window)
    page = window.people
    ann = next(c for c in page.cards if c.name == "Ann")
    page.select_people([ann.id])
    assert page.learn_button.isEnabled()
    qtbot.mouseClick(page.learn_button, Qt.MouseButton.LeftButton)
    dialog = page.learn_dialog
    assert dialog is not None and dialog.isVisible()

    # 8 faces: learning starts as a job; Cancel stops it cleanly (usually before the model loads: a cancel
    # mid-fit, which keeps a checkpoint, is the engine's and tested in tests/learn)
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    job = page.learn_job
    assert job is not None and job.doing == "Learning Ann" and dialog.running
    assert dialog.cancel_button.isEnabled() and not dialog.start_button.isEnabled()
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window, 120)
    assert job.outcome == "cancelled", dialog.status.text()
    assert dialog.status.text().startswith("Stopped") and dialog.start_button.isEnabled() and not dialog.running
    with window.context.catalog().session() as session:
        assert session.scalar(select(func.count()).select_from(LearnedIdentity)) == 0

    # 6 faces: the clear message, before any model is loaded
    people_actions.reject(window.context.catalog(), ann.id, [f.id for f in ann.faces[:2]])
    loads = shared_model.loads
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    assert page.learn_job.outcome == "failed"
    text = dialog.status.text()
    assert "Ann has 6 usable faces" in text and "learning needs at least 8" in text, text
    assert shared_model.loads == loads
    dialog.close()
