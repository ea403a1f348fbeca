"""Restore page: each face's person comes from the album, the user may change it, and the change is kept
in the catalog; identity tokens computed by a batch are reused by the page (issue 10)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from sqlalchemy import select

from app_testkit import make_window, wait_idle


def _restore(qtbot, window, page):
    page.steps.setValue(1)
    page.seed.setValue(7)
    qtbot.mouseClick(page.restore_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window, 240)
    assert page.outcome is not None, page.status.text()
    return page.outcome


@pytest.mark.slow
def test_person_choice_per_face_changes_the_restoration_and_is_kept_in_the_album(qtbot, scanned, scanned_env,
                                                                                 tiny_pack, shared_model):
    from app import restore_flow
    from engine.catalog import jobs
    from engine.catalog.models import Assignment, AssignmentOrigin, Face, Photo
    from engine.people.corrections import person_of
    from engine.restore.batch import ServiceRestorer, run_job
    from engine.restore.options import RestoreOptions

    window = make_window(qtbot, scanned_env, model=shared_model)
    window.context.preferences.models_dir = str(tiny_pack)
    photo_path = Path(scanned["album"]) / "person_01_img5.jpg"
    catalog = window.context.catalog()
    with catalog.session() as s:
        face = s.scalar(select(Face).join(Photo).where(Photo.path == str(photo_path)))
        anna = person_of(s, face)
        other = s.scalar(select(Face).join(Photo).where(Photo.path == str(Path(scanned["album"]) /
                                                                          "person_03_img51.jpg")))
        ben = person_of(s, other)
        face_id, anna_id, ben_id = face.id, anna.id, ben.id
    assert anna_id != ben_id

    # a batch restores the photo first: Anna's identity tokens are stored in the catalog
    settings = window.context.settings
    encodes: list[int] = []
    with shared_model.use(settings) as service:
        pipeline = service.pipeline
        original = type(pipeline).encode_identity
        pipeline.encode_identity = lambda images, progress=None, cancel=None: (
            encodes.append(len(images)), original(pipeline, images, progress, cancel))[1]
        job = jobs.start_or_resume(catalog, [photo_path], scanned_env / "batch-out",
                                   RestoreOptions(steps=1, seed=3, models_dir=str(tiny_pack)), scan_first=False)
        run_job(catalog, job, ServiceRestorer(service))
    try:
        assert len(encodes) == 1
        assert jobs.get_job(catalog, job).items[0].faces[0].person_id == anna_id

        window.handle_dropped_paths([photo_path])
        wait_idle(qtbot, window)
        page = window.restore
        analysis = page.analysis
        assert analysis.in_album and len(analysis.faces) == 1
        assert analysis.faces[0].person_id == anna_id and analysis.faces[0].catalog_face_id == face_id
        assert page.person_choice.currentData() == anna_id

        first = _restore(qtbot, window, page)
        assert [(f.person_id, f.action) for f in first.faces] == [(anna_id, "restored")]
        assert len(encodes) == 1  # the page reused the batch's tokens

        # the user says the face is Ben: restored as Ben, and the album knows
        page.set_face_person(0, ben_id)
        wait_idle(qtbot, window)
        assert page.person_choice.currentData() == ben_id
        with catalog.session() as s:
            assert person_of(s, s.get(Face, face_id)).id == ben_id
            assert s.scalar(select(Assignment.origin).where(Assignment.face_id == face_id,
                                                            Assignment.person_id == ben_id)) == AssignmentOrigin.confirmed
        second = _restore(qtbot, window, page)
        assert [(f.person_id, f.action) for f in second.faces] == [(ben_id, "restored")]
        assert not np.array_equal(first.pixels, second.pixels)  # same seed: the identity made the difference
        assert len(encodes) == 2  # Ben's tokens, once

        # "nobody": restored blind, and "not Ben" is kept in the album
        page.set_face_person(0, restore_flow.BLIND)
        wait_idle(qtbot, window)
        with catalog.session() as s:
            assert person_of(s, s.get(Face, face_id)) is None
            assert s.scalar(select(Assignment.origin).where(Assignment.face_id == face_id,
                                                            Assignment.person_id == ben_id)) == AssignmentOrigin.rejected
        third = _restore(qtbot, window, page)
        assert [(f.person_id, f.action) for f in third.faces] == [(None, "blind")]

        # "leave alone": nothing to restore
        page.set_face_person(0, restore_flow.SKIP)
        wait_idle(qtbot, window)
        assert not page.restore_button.isEnabled()
    finally:
        del pipeline.encode_identity
        window.close()


@pytest.mark.slow
def test_setting_the_model_folder_with_a_photo_open_reads_it_again_and_restores(qtbot, scanned_env, shared, tiny_pack,
                                                                                shared_model):
    """Issue 10: a photo opened before the pack was set (dlib faces) and restored after it was set gave
    "Cannot compare a dlib/resnet-128 face embedding with … glintr100 references" for good."""
    window = make_window(qtbot, scanned_env, model=shared_model)
    errors = []
    window.context.error.connect(errors.append)
    outside = shared / "data" / "deepface_ids" / "images" / "person_01" / "img10.jpg"  # not in the album
    window.handle_dropped_paths([outside])
    wait_idle(qtbot, window)
    page = window.restore
    assert not page.analysis.in_album
    assert page.analysis.faces[0].detected.embedding_model == "dlib/resnet-128"
    window.context.preferences.models_dir = str(tiny_pack)
    window.context.save_preferences()  # what the Settings page does
    wait_idle(qtbot, window)
    assert page.analysis.faces[0].detected.embedding_model.startswith("insightface/")
    outcome = _restore(qtbot, window, page)
    assert outcome.faces and outcome.faces[0].action in ("restored", "blind")
    assert not [e for e in errors if "compare" in str(getattr(e, "what", e))]
    window.close()
