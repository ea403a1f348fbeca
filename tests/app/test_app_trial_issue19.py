"""Issue 19's trial, as a new user ran it: an album of real photos scanned with the built-in model from the
CLI, the user's corrections (a name, a rejection), the same catalog opened in the app with an InsightFace
pack installed, and a CLI `faceme batch --models PACK` run as a real process while the app's window is
open and scans the album itself. It must end with one face per real face, the corrections as the user
left them, each face restored once, no traceback, and the app offering the re-analysis, not doing it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from app_testkit import make_window, wait_idle

ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from engine.cli import main; sys.exit(main())"


def _faces_by_photo(catalog) -> dict[str, list[tuple[int, str]]]:
    """{photo name: [(face id, embedding model)]}."""
    from sqlalchemy import select

    from engine.catalog.models import Face, Photo

    faces: dict[str, list[tuple[int, str]]] = {}
    with catalog.session() as session:
        for name, face_id, model in session.execute(select(Photo.path, Face.id, Face.embedding_model)
                                                    .join(Face, Face.photo_id == Photo.id).order_by(Face.id)):
            faces.setdefault(Path(name).name, []).append((face_id, model))
    return faces


def _users_word(catalog) -> set[tuple[int, str, str]]:
    """(face id, person's name, origin) of every assignment the user made (confirmed, rejected)."""
    from sqlalchemy import select

    from engine.catalog.models import Assignment, AssignmentOrigin, Person

    with catalog.session() as session:
        return {(face_id, name, origin.value) for face_id, name, origin in session.execute(
            select(Assignment.face_id, Person.name, Assignment.origin).join(Person, Person.id == Assignment.person_id)
            .where(Assignment.origin != AssignmentOrigin.machine))}


def _restorations_per_face(catalog) -> dict[int, list[str | None]]:
    """{face id: the person each of its restorations restored it as}."""
    from sqlalchemy import select

    from engine.catalog.models import RestorationFace

    restored: dict[int, list[str | None]] = {}
    with catalog.session() as session:
        for face_id, action, name in session.execute(select(RestorationFace.face_id, RestorationFace.action,
                                                            RestorationFace.person_name)):
            restored.setdefault(face_id, []).append(name if action == "restored" else None)
    return restored


@pytest.mark.slow  # a real `faceme batch` process restoring 3 faces with the tiny pack: about 30 s
def test_scan_in_the_cli_correct_open_in_the_app_with_a_pack_and_batch_with_models_meanwhile(
        qtbot, env, shared, tiny_pack, run_cli):
    from engine.catalog.db import open_catalog

    album, db, out = env / "album", env / "catalog.sqlite3", env / "restored"
    album.mkdir()
    shutil.copy2(shared / "data" / "group_photos" / "images" / "dlib_2008_001009.jpg", album / "couple.jpg")
    shutil.copy2(shared / "data" / "deepface_ids" / "images" / "person_01" / "img5.jpg", album / "portrait.jpg")

    code, _out, err = run_cli("scan", album, "--catalog", db, "--workers", "1")  # FACEME_MODELS: no pack
    assert code == 0, err
    catalog = open_catalog(db)
    try:
        before = _faces_by_photo(catalog)
    finally:
        catalog.close()
    assert {name: len(faces) for name, faces in before.items()} == {"couple.jpg": 2, "portrait.jpg": 1}
    assert {model for faces in before.values() for _, model in faces} == {"dlib/resnet-128"}
    (ben, stranger), ((ann, _),) = [face_id for face_id, _ in before["couple.jpg"]], before["portrait.jpg"]
    for args in (("new", "Ben", f"#{ben}"), ("reject", "Ben", f"#{stranger}"), ("new", "Ann", f"#{ann}")):
        code, _out, err = run_cli("people", *args, "--catalog", db)
        assert code == 0, err
    corrections = {(ben, "Ben", "confirmed"), (stranger, "Ben", "rejected"), (ann, "Ann", "confirmed")}

    window = make_window(qtbot, env)
    prefs, library = window.context.preferences, window.library
    prefs.models_dir, prefs.scan_workers = str(tiny_pack), 1  # the pack is installed
    wait_idle(qtbot, window)
    batch = subprocess.Popen([sys.executable, "-c", CLI, "batch", str(album), "--out", str(out), "--catalog", str(db),
                              "--models", str(tiny_pack), "--steps", "2", "--seed", "1", "--no-identity-check"],
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        library.add_album(album)  # the app scans the album itself while the batch pre-scans and restores it
        qtbot.waitUntil(lambda: batch.poll() is not None, timeout=600_000)
        stdout, stderr = batch.communicate()
    finally:
        if batch.poll() is None:
            batch.kill()
            batch.wait(timeout=30)
    assert batch.returncode == 0 and "Traceback" not in stderr, (stdout, stderr[-3000:])
    assert "2 photos: 2 restored" in stdout, stdout
    library.scan()
    window.show_page("queue")
    wait_idle(qtbot, window, 120)

    catalog = open_catalog(db)
    try:
        after, word, restored = _faces_by_photo(catalog), _users_word(catalog), _restorations_per_face(catalog)
    finally:
        catalog.close()
    assert after == before  # one face per real face: the same rows, the same ids, the catalog's model only
    assert word == corrections
    assert restored == {ben: ["Ben"], stranger: [None], ann: ["Ann"]}  # each face once, never as "not Ben"
    assert window.queue.job_list.item(0).text().endswith("2 of 2 restored · finished")  # the app sees the CLI's
    assert library.face_model_label.text() == "Faces found with dlib" and not library.is_reanalysing()
    assert library.reanalyse_button.text().startswith("Re-analyse the album with antelopev2")  # offered, not done
    window.close()
