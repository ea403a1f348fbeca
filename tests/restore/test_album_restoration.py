"""Issue 10's done-means: restoration follows the album's people, face by face.

A two-person photo composed from real photos (deepface_ids, MIT: person_01 left, person_03 right),
scanned with the real dlib analyser, each person confirmed and given references; restored with the
tiny model pack (its real SCRFD detector refines the geometry; the person always comes from the
album). What is asserted is the per-face record of each restoration (person, action, reason), not only
"done".
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "catalog"))

from catalog_testkit import analyzer, catalog  # noqa: E402,F401 (shared fixtures)

from engine.catalog import jobs  # noqa: E402
from engine.catalog.models import Face, Photo  # noqa: E402
from engine.catalog.scanner import scan  # noqa: E402
from engine.people import corrections  # noqa: E402
from engine.people.references import set_references  # noqa: E402
from engine.restore.album import plan_from_album  # noqa: E402
from engine.restore.batch import ServiceRestorer, run_job  # noqa: E402
from engine.restore.options import RestoreOptions  # noqa: E402

IMAGES = ("person_01", ["img1.jpg", "img2.jpg"], "img10.jpg"), ("person_03", ["img8.jpg", "img9.jpg"], "img47.jpg")
OPTIONS = RestoreOptions(steps=1, seed=5, min_face_size=0)


def _fit_height(pixels: np.ndarray, height: int) -> np.ndarray:
    import cv2

    width = round(pixels.shape[1] * height / pixels.shape[0])
    return cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)


@pytest.fixture
def album(shared, tmp_path, catalog, analyzer):
    """{"photo": the two-person photo's id, "left"/"right": its catalog face ids, "anna"/"ben": person ids}."""
    import shutil

    from engine.imageio import read_image, write_image

    root = shared / "data" / "deepface_ids" / "images"
    folder = tmp_path / "album"
    (folder / "refs").mkdir(parents=True)
    tiles = []
    for person, refs, other in IMAGES:
        for ref in refs:
            shutil.copy2(root / person / ref, folder / "refs" / f"{person}_{ref}")
        tiles.append(_fit_height(read_image(root / person / other).pixels, 400))
    write_image(folder / "two.png", np.ascontiguousarray(np.concatenate(tiles, axis=1)))
    scan(catalog, [folder], analyzer=analyzer)
    with catalog.transaction() as s:
        photo = s.scalar(select(Photo).where(Photo.path == str(folder / "two.png")))
        left, right = sorted(photo.faces, key=lambda f: f.x1)
        ids = {"photo": photo.id, "left": left.id, "right": right.id, "folder": folder}
        model = left.embedding_model
        for key, (person, refs, _) in zip(("anna", "ben"), IMAGES):
            who = corrections.new_person(s, model, key.title())
            ref_faces = [s.scalar(select(Face).join(Photo).where(Photo.path == str(folder / "refs" / f"{person}_{r}")))
                         for r in refs]
            corrections.confirm(s, who, ref_faces + [left if key == "anna" else right])
            set_references(s, who, ref_faces)
            ids[key] = who.id
    return ids


class CountingService:
    """The real restoration service on the tiny pack; counts identity encodings (FaceMe's encoder)."""

    def __init__(self, tiny_pack):
        from engine.restore.service import RestorationService, get_service

        shared_service = get_service(Path(tiny_pack).resolve(), "cpu", "auto")
        self.service = RestorationService(tiny_pack, "cpu", "auto", pipeline=shared_service.pipeline)
        self.encodes: list[int] = []
        pipeline = self.service.pipeline
        original = type(pipeline).encode_identity

        def counting(images, progress=None, cancel=None):
            self.encodes.append(len(images))
            return original(pipeline, images, progress, cancel)

        pipeline.encode_identity = counting
        self._pipeline, self._original = pipeline, original

    def close(self):
        del self._pipeline.encode_identity


@pytest.fixture
def counting_service(tiny_pack):
    service = CountingService(tiny_pack)
    yield service
    service.close()


def _batch(catalog, album, service, tmp_path, name: str, options: RestoreOptions = OPTIONS):
    """Restore the two-person photo in a batch job; returns (summary, {face id: FaceRecord})."""
    job_id = jobs.start_or_resume(catalog, [album["folder"] / "two.png"], tmp_path / name, options, scan_first=False)
    summary = run_job(catalog, job_id, ServiceRestorer(service.service))
    item = jobs.get_job(catalog, job_id).items[0]
    assert item.status == "done", item.reason
    return summary, {f.face_id: f for f in item.faces}, item.output


def test_swapping_confirmations_swaps_the_identity_each_face_is_restored_with(catalog, album, counting_service,
                                                                            tmp_path):
    from engine.imageio import read_image

    summary, before, out_before = _batch(catalog, album, counting_service, tmp_path, "before")
    assert before[album["left"]].person_id == album["anna"] and before[album["left"]].action == "restored"
    assert before[album["right"]].person_id == album["ben"] and before[album["right"]].action == "restored"
    assert "confirmed by you" in before[album["left"]].reason
    assert any("face 1: restored as Anna" in line for line in summary.lines(verbose=True))
    with catalog.transaction() as s:  # the user swaps the confirmations
        corrections.confirm(s, s.get(corrections.Person, album["ben"]), [album["left"]])
        corrections.confirm(s, s.get(corrections.Person, album["anna"]), [album["right"]])
    _, after, out_after = _batch(catalog, album, counting_service, tmp_path, "after")
    assert after[album["left"]].person_id == album["ben"] and after[album["left"]].action == "restored"
    assert after[album["right"]].person_id == album["anna"] and after[album["right"]].action == "restored"
    # same seed, same geometry: only the identities changed, and the pixels with them
    assert [f.seed for f in before.values()] == [f.seed for f in after.values()]
    assert not np.array_equal(read_image(out_before).pixels, read_image(out_after).pixels)


def test_not_this_person_is_never_restored_with_that_identity(catalog, album, counting_service, tmp_path):
    with catalog.transaction() as s:
        corrections.reject(s, s.get(corrections.Person, album["anna"]), [album["left"]])
        plan = plan_from_album(s, album["photo"], OPTIONS)
        left = next(f for f in plan.faces if f.catalog_face_id == album["left"])
        assert left.action == "blind" and left.identity is None and "in no person" in left.reason
        assert plan_from_album(s, album["photo"], RestoreOptions(unmatched="skip", min_face_size=0)).faces[0].action \
            == "skipped"
    with catalog.transaction() as s:
        corrections.reject(s, s.get(corrections.Person, album["anna"]), [album["right"]])  # not Anna either
        plan = plan_from_album(s, album["photo"], OPTIONS)
        assert all(f.identity != f"person:{album['anna']}" for f in plan.faces)
    _, faces, _ = _batch(catalog, album, counting_service, tmp_path, "rejected")
    assert faces[album["left"]].person_id is None and faces[album["left"]].action == "blind"
    assert faces[album["right"]].person_id == album["ben"]


def test_faces_the_album_does_not_know_are_blind_or_left_alone_never_someone(catalog, album):
    from engine.faces.types import Face as Detected

    with catalog.transaction() as s:
        corrections.hide(s, s.get(corrections.Person, album["ben"]))
        right = s.get(Face, album["right"])
        stranger = Detected(box=(right.x1, right.y1, right.x2, right.y2), score=0.9,
                            landmarks=np.asarray(right.landmarks, np.float32))
        extra = Detected(box=(5.0, 5.0, 85.0, 85.0), score=0.9, landmarks=np.asarray(right.landmarks, np.float32) * 0)
        for unmatched, action in (("blind", "blind"), ("skip", "skipped")):
            plan = plan_from_album(s, album["photo"], RestoreOptions(unmatched=unmatched, min_face_size=0),
                                   refine=[stranger, extra])
            by_id = {f.catalog_face_id: f for f in plan.faces}
            assert by_id[album["left"]].identity == f"person:{album['anna']}"
            hidden = by_id[album["right"]]
            assert hidden.action == action and hidden.identity is None and "hidden" in hidden.reason
            assert hidden.face.box == stranger.box  # geometry refined by overlap, the person kept
            found_only = by_id[None]
            assert found_only.action == action and found_only.identity is None and found_only.person_id is None
            assert "not in the album (found only by the restore detector)" in found_only.reason
            assert set(plan.identities) == {f"person:{album['anna']}"}


def test_a_photo_the_scan_says_has_faces_is_never_skipped_for_no_face(catalog, album):
    with catalog.transaction() as s:
        plan = plan_from_album(s, album["photo"], OPTIONS, refine=[])  # the restore detector finds nothing
        assert [f.action for f in plan.faces] == ["restored", "restored"]
        assert all("the restore detector did not find this face" in f.reason for f in plan.faces)
        assert all(f.catalog_face_id is not None for f in plan.faces)
        # geometry from the catalog: the scan's box and landmarks
        left = s.get(Face, album["left"])
        assert plan.faces[0].face.box == left.box
        np.testing.assert_allclose(plan.faces[0].face.landmarks, np.asarray(left.landmarks), rtol=0, atol=1e-4)


def test_two_people_with_the_same_name_restore_fine(catalog, album, counting_service, tmp_path):
    with catalog.transaction() as s:
        for key in ("anna", "ben"):
            corrections.rename(s, s.get(corrections.Person, album[key]), "Sam")
    _, faces, _ = _batch(catalog, album, counting_service, tmp_path, "sams")
    assert faces[album["left"]].person_id == album["anna"] and faces[album["right"]].person_id == album["ben"]
    assert {f.person_name for f in faces.values()} == {"Sam"}
    assert all(f.action == "restored" for f in faces.values())
    assert counting_service.encodes == [2, 2]  # two identities, not one "Sam"


def test_identity_tokens_are_computed_once_per_person_and_kept_in_the_catalog(catalog, album, counting_service,
                                                                             tmp_path, tiny_pack):
    from engine.catalog.models import IdentityTokens
    from engine.restore.service import RestorationService

    # a second photo of the same two people in the same job
    from engine.imageio import read_image, write_image

    two = read_image(album["folder"] / "two.png").pixels
    write_image(album["folder"] / "two_again.png", np.ascontiguousarray(two[:, ::-1]))
    scan(catalog, [album["folder"]], analyzer=__import__("catalog_testkit").MemoDlibAnalyzer())
    with catalog.transaction() as s:
        photo = s.scalar(select(Photo).where(Photo.path == str(album["folder"] / "two_again.png")))
        ben_face, anna_face = sorted(photo.faces, key=lambda f: f.x1)  # mirrored
        corrections.confirm(s, s.get(corrections.Person, album["anna"]), [anna_face])
        corrections.confirm(s, s.get(corrections.Person, album["ben"]), [ben_face])
    job_id = jobs.start_or_resume(catalog, [album["folder"] / "two.png", album["folder"] / "two_again.png"],
                                  tmp_path / "both", OPTIONS, scan_first=False)
    summary = run_job(catalog, job_id, ServiceRestorer(counting_service.service))
    assert summary.restored == 2 and not summary.skipped
    assert counting_service.encodes == [2, 2]  # once per person for the whole job (4 faces)
    with catalog.session() as s:
        # the identity check's reference embeddings share the table under their own fingerprint
        rows = s.scalars(select(IdentityTokens).where(~IdentityTokens.pack_fingerprint.startswith("check:"))).all()
        assert sorted(r.person_id for r in rows) == sorted([album["anna"], album["ben"]])
        assert all(r.pack_fingerprint == counting_service.service.fingerprint and r.count == 2 for r in rows)

    # a new process (a fresh service on the same pack) reads them from the catalog: no encoding
    fresh = RestorationService(tiny_pack, "cpu", "auto", pipeline=counting_service.service.pipeline)
    retry = jobs.start_or_resume(catalog, [album["folder"] / "two.png"], tmp_path / "again", OPTIONS,
                                 scan_first=False)
    run_job(catalog, retry, ServiceRestorer(fresh))
    assert counting_service.encodes == [2, 2]

    # new references: that person's tokens are computed again, the other's are reused
    with catalog.transaction() as s:
        anna = s.get(corrections.Person, album["anna"])
        set_references(s, anna, [s.get(Face, album["left"])])
    third = jobs.start_or_resume(catalog, [album["folder"] / "two.png"], tmp_path / "third", OPTIONS,
                                 scan_first=False)
    run_job(catalog, third, ServiceRestorer(fresh))
    assert counting_service.encodes == [2, 2, 1]


def test_a_reference_face_moved_to_someone_else_is_no_longer_a_reference(catalog, album):
    """After "this face is Ben", Anna's references no longer include it, even if it was picked."""
    from engine.restore.album import person_identity

    with catalog.transaction() as s:
        anna = s.get(corrections.Person, album["anna"])
        set_references(s, anna, [s.get(Face, album["left"])])  # the photo's own face as Anna's only pick
        corrections.confirm(s, s.get(corrections.Person, album["ben"]), [album["left"]])
        identity = person_identity(s, anna)
        assert identity is not None and album["left"] not in [f.face_id for f in identity.faces]
