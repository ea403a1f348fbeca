"""The GUI sees what the CLI did (issue 19, item 2): albums scanned with `faceme scan` are listed in the
Library with their sub-folders' photos, as the app's own albums are; a batch whose process was killed
shows in the Queue as interrupted, in the words `faceme jobs list` uses."""

from __future__ import annotations

import signal
from pathlib import Path

from app_testkit import hold_job_then_signal, make_window, one_photo_job, wait_idle
from PySide6.QtCore import Qt



def make_album(folder: Path, photos: list[Path]) -> Path:
    """Links to `photos` in `folder`, named "<person>_<photo>" (conftest imports by another name elsewhere)."""
    folder.mkdir(parents=True, exist_ok=True)
    for photo in photos:
        (folder / f"{photo.parent.name}_{photo.name}").symlink_to(photo)
    return folder


def _album_rows(library) -> dict[str, str | None]:
    """{shown name: folder} of the Library's album list (None: a heading)."""
    return {library.albums.item(n).text(): library.albums.item(n).data(Qt.ItemDataRole.UserRole)
            for n in range(library.albums.count())}


def _select(qtbot, window, folder: str) -> None:
    library = window.library
    row = next(n for n in range(library.albums.count())
               if library.albums.item(n).data(Qt.ItemDataRole.UserRole) == folder)
    library.albums.setCurrentRow(row)
    wait_idle(qtbot, window)


def test_library_lists_an_album_scanned_with_the_cli_with_its_subfolders(qtbot, scanned, scanned_env, shared,
                                                                      run_cli):
    images = shared / "data" / "deepface_ids" / "images"
    cli_album = make_album(scanned_env / "Holidays", [images / "person_01" / "img10.jpg"])
    make_album(cli_album / "2019", [images / "person_03" / "img9.jpg"])
    code, _out, err = run_cli("scan", cli_album, "--catalog", scanned_env / "catalog.sqlite3", "--workers", "1")
    assert code == 0, err

    window = make_window(qtbot, scanned_env)
    wait_idle(qtbot, window)
    library = window.library
    rows = _album_rows(library)
    app_album = str(scanned["album"])
    assert rows["Holidays"] == str(cli_album) and rows["album"] == app_album
    assert "Scanned elsewhere" in rows and rows["Scanned elsewhere"] is None  # a heading between the two
    assert list(rows).index("album") < list(rows).index("Scanned elsewhere") < list(rows).index("Holidays")
    assert window.context.preferences.albums == [app_album]  # shown, not adopted

    _select(qtbot, window, str(cli_album))  # its photos, those of its sub-folder included
    assert {p.path for p in library.photos} == {cli_album / "person_01_img10.jpg",
                                               cli_album / "2019" / "person_03_img9.jpg"}
    assert not library.remove_album_button.isEnabled()  # not one of the app's albums

    library.albums.setCurrentRow(0)  # All photos: the app's albums and the CLI's
    wait_idle(qtbot, window)
    assert len(library.photos) == len(scanned["photos"]) + 2

    # an album the user removes from the Library stays in the catalog, and does not come back as a CLI one
    _select(qtbot, window, app_album)
    library.remove_selected_album()
    wait_idle(qtbot, window)
    assert "album" not in _album_rows(library) and "Holidays" in _album_rows(library)
    assert library.stack.currentIndex() != 0  # the CLI's album is still there to show: no "No albums yet"
    window.close()


def test_a_killed_batch_shows_as_interrupted_in_the_words_of_faceme_jobs_list(qtbot, env, run_cli):
    from engine.catalog.leases import this_host

    job_id = one_photo_job(env)
    holder_pid = hold_job_then_signal(env, job_id, signal.SIGKILL)  # as `kill -9` leaves a `faceme batch`: running, owner gone

    code, listed, err = run_cli("jobs", "list", "--catalog", env / "catalog.sqlite3")
    assert code == 0, err
    stopped = f"was running in process {holder_pid} on {this_host()}, which stopped"
    assert "interrupted — resume" in listed and stopped in listed  # the same words as the Queue

    window = make_window(qtbot, env)
    window.show_page("queue")
    wait_idle(qtbot, window)
    page = window.queue
    assert page.job_list.item(0).text().endswith("interrupted — resume")
    assert stopped in page.job_folder.text() and "it can be resumed" in page.job_folder.text()
    assert page.resume_button.isVisible() and page.resume_button.isEnabled()
    window.close()
