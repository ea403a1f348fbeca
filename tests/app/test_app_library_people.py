"""Albums, scanning and people through the app's own actions; the catalog must reflect each one."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from app_testkit import make_window, wait_idle


def _listing(window):
    from engine.people.listing import people_listing

    with window.context.catalog().session() as session:
        return people_listing(session, include_hidden=True, with_ids=True)


def test_dropping_a_folder_adds_an_album_and_the_scan_finds_people(scanned):
    assert [str(scanned["album"])] == scanned["albums"]
    progress = scanned["progress"]
    assert progress, "the scan reported no progress"
    done, total, _ = progress[-1]
    assert total == 9 and done == total
    assert len(scanned["photos"]) == 9 and sum(p.faces for p in scanned["photos"]) == 9
    people = [c for c in scanned["people"] if not c.is_unknown]
    assert len(people) == 3 and sorted(c.face_count for c in people) == [3, 3, 3]


def test_rename_merge_split_and_reject_through_the_ui(qtbot, scanned_env):
    window = make_window(qtbot, scanned_env)
    window.show_page("people")
    wait_idle(qtbot, window)
    page = window.people
    people = [c for c in page.cards if not c.is_unknown]
    assert len(people) == 3

    # rename: select the card, type the name, press Enter
    page.select_people([people[0].id])
    qtbot.wait(10)
    page.name_edit.clear()
    qtbot.keyClicks(page.name_edit, "Grandma")
    qtbot.keyClick(page.name_edit, Qt.Key.Key_Return)
    wait_idle(qtbot, window)
    names = {p["id"]: p["name"] for p in _listing(window)["people"]}
    assert names[people[0].id] == "Grandma"

    # merge: select two cards, press "Merge selected"
    page.select_people([people[0].id, people[1].id])
    assert page.merge_button.isEnabled()
    qtbot.mouseClick(page.merge_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    listing = _listing(window)["people"]
    assert len(listing) == 2
    merged = next(p for p in listing if p["name"] == "Grandma")
    assert len(merged["faces"]) == 6

    # split: pick two faces of the merged person, "Move to a new person"
    page.select_people([merged["id"]])
    qtbot.wait(10)
    faces = [item.payload.id for item in page.face_model.items()]
    assert len(faces) == 6
    moved = faces[:2]
    page.select_faces(moved)
    assert page.split_button.isEnabled()
    qtbot.mouseClick(page.split_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    listing = _listing(window)["people"]
    assert len(listing) == 3
    new = next(p for p in listing if {f["face_id"] for f in p["faces"]} == set(moved))
    assert all(f["confirmed"] for f in new["faces"])

    # not this person: one face out of Grandma, into the unknown bucket for good
    page.select_people([merged["id"]])
    qtbot.wait(10)
    face = page.face_model.items()[0].payload.id
    page.select_faces([face])
    qtbot.mouseClick(page.reject_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    listing = _listing(window)
    grandma = next(p for p in listing["people"] if p["name"] == "Grandma")
    assert face not in {f["face_id"] for f in grandma["faces"]}
    assert len(grandma["faces"]) == 3
    unknown = next(card for card in page.cards if card.is_unknown)

    # an unknown face back to someone: the unknown bucket's "Move to…" menu
    page.select_people([None])
    qtbot.wait(10)
    assert [item.payload.id for item in page.face_model.items()] == [face]
    page.select_faces([face])
    assert page.move_button.isEnabled() and unknown.face_count == 1
    page.move_selected_faces_to(new["id"])
    wait_idle(qtbot, window)
    listing = _listing(window)
    moved_to = next(p for p in listing["people"] if p["id"] == new["id"])
    assert face in {f["face_id"] for f in moved_to["faces"]} and not listing["unassigned"]
    window.close()


def test_merge_by_dragging_one_card_onto_another(qtbot, scanned_env):
    window = make_window(qtbot, scanned_env)
    window.show_page("people")
    wait_idle(qtbot, window)
    page = window.people
    page.confirm_merges = False
    people = [c for c in page.cards if not c.is_unknown]
    page.select_people([people[2].id])
    # the drop handler of the grid: the selected card dropped on the first card's row
    page.grid.drop_on(page.model.row_of(("person", people[0].id)))
    wait_idle(qtbot, window)
    listing = _listing(window)["people"]
    assert len(listing) == 2
    assert any(len(p["faces"]) == 6 for p in listing)
    window.close()


def test_pick_references_and_the_catalog_keeps_them(qtbot, scanned_env):
    window = make_window(qtbot, scanned_env)
    window.show_page("references")
    wait_idle(qtbot, window)
    page = window.references
    assert page.people and page.suggestions, "no suggestions were shown"
    assert all(r.reason for r in page.suggestions)
    chosen = page.suggestions[-1].face.id
    page.select_suggestions([chosen])
    assert page.use_button.isEnabled()
    qtbot.mouseClick(page.use_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    assert [r.face.id for r in page.picks] == [chosen]

    from engine.catalog.models import Reference
    from sqlalchemy import select

    with window.context.catalog().session() as session:
        picked = session.scalars(select(Reference.face_id).where(Reference.picked_by_user.is_(True))).all()
    assert picked == [chosen]
    window.close()


def test_photo_grid_with_10000_photos_loads_only_what_is_visible(qtbot, env, tmp_path):
    """The Library grid is virtualised: setting 10,000 rows is quick and only visible rows ask for
    thumbnails (the reader here counts requests and returns a tiny picture)."""
    import time

    import numpy as np
    from PySide6.QtCore import QSize

    from app.thumbnails import ThumbnailLoader
    from app.widgets.thumbgrid import GridItem, ThumbnailGrid, ThumbnailModel

    asked = []

    def reader(path, size):
        asked.append(path)
        return np.full((8, 8, 3), 128, np.uint8)

    loader = ThumbnailLoader(reader)
    try:
        model = ThumbnailModel(loader)
        grid = ThumbnailGrid(model, QSize(176, 196), 150)
        qtbot.addWidget(grid)
        grid.resize(1000, 700)
        grid.show()
        items = [GridItem(key=n, title=f"photo{n}.jpg", image=tmp_path / f"photo{n}.jpg") for n in range(10_000)]
        start = time.perf_counter()
        model.set_items(items)
        elapsed = time.perf_counter() - start
        qtbot.waitUntil(lambda: len(asked) > 0, timeout=5000)
        qtbot.wait(200)
        assert model.rowCount() == 10_000
        assert 0 < len(asked) < 200, len(asked)
        # the layout is batched: keep going to the bottom until the last row is laid out and painted
        qtbot.waitUntil(lambda: (grid.scrollToBottom(), any(str(p).endswith("photo9999.jpg") for p in asked))[1],
                        timeout=15000)
        assert len(asked) < 400
        assert elapsed < 2
    finally:
        loader.shutdown()


def test_any_photo_file_can_be_added_as_a_reference(qtbot, scanned_env, shared):
    window = make_window(qtbot, scanned_env)
    window.show_page("references")
    wait_idle(qtbot, window)
    page = window.references
    person = page.person_id
    extra = shared / "data" / "deepface_ids" / "images" / "person_01" / "img10.jpg"
    page.add_file(extra)  # what "Add photo from disk…" does with the chosen file
    wait_idle(qtbot, window)
    assert [r.face.photo for r in page.picks] == [extra.resolve()]  # the catalog keeps real paths
    assert page.picks[0].picked_by_user and page.person_id == person
    window.close()


def test_a_photo_of_several_people_as_a_reference_asks_which_face(qtbot, scanned_env, shared):
    """References → "Add photo from disk": a group photo is not read by its largest face; the user picks."""
    from app import people_actions
    from engine.errors import UsageError

    couple = shared / "data" / "group_photos" / "images" / "deepface_couple.jpg"  # MIT, two faces
    window = make_window(qtbot, scanned_env)
    window.show_page("references")
    wait_idle(qtbot, window)
    page = window.references
    asked = []

    def choose_face(path, faces):
        asked.append((path, len(faces)))
        return faces[1].id  # the right-hand face

    page.choose_face = choose_face
    page.add_file(couple)
    wait_idle(qtbot, window, 120)
    assert asked == [(couple, 2)]
    assert [r.face.photo for r in page.picks] == [couple.resolve()]  # the catalog keeps real paths
    assert page.picks[0].face.box[0] > 1000  # the chosen (right-hand) face, not the first
    # without a choice, the engine refuses, naming the file and the count
    with pytest.raises(UsageError, match="shows 2 faces") as error:
        people_actions.add_reference_file(window.context.catalog(), page.person_id, couple, [])
    assert "deepface_couple.jpg" in str(error.value)
    window.close()
