"""The whole deepface_ids folder added as an album through the window: progress, then its 9 people."""

from __future__ import annotations

import csv
from pathlib import Path

from app_testkit import make_window, wait_idle


def test_dropping_deepface_ids_scans_it_with_progress_and_shows_its_people(qtbot, env, shared):
    album = shared / "data" / "deepface_ids"
    with (album / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    identities = {row["identity"] for row in rows}

    window = make_window(qtbot, env)
    library = window.library
    progress: list[tuple[int, int, str]] = []
    original = library._scan_progress
    library._scan_progress = lambda d, t, m: (progress.append((d, t, m)), original(d, t, m))
    window.handle_dropped_paths([album])  # a folder dropped on the window becomes an album
    wait_idle(qtbot, window, 300)

    assert window.context.preferences.albums == [str(album)]
    assert len(progress) > 2, "the scan reported no progress along the way"
    done, total, _ = progress[-1]
    assert done == total == len(rows)

    window.show_page("people")
    wait_idle(qtbot, window)
    people = [card for card in window.people.cards if not card.is_unknown]
    assert len(people) == len(identities)

    from engine.people.listing import people_listing

    with window.context.catalog().session() as session:
        listing = people_listing(session, include_hidden=True, with_ids=True)
    for person in listing["people"]:
        folders = {Path(face["photo"]).parent.name for face in person["faces"]}
        assert len(folders) == 1, f"{person['name'] or person['id']} mixes {sorted(folders)}"
    window.close()
