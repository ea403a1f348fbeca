"""Issue 21 end to end on real album faces (LFW) with the tiny pack: `faceme people learn` prints the
held-out comparison and stores it; restorations then use what the check kept and record which identity
each face used (`--identity references` forces the references); a fit on another person's faces is
rejected by the check; splitting, rejecting, merging or a new pack make a learning stale; one process
learns a person at a time; fewer than 8 faces is refused with the counts.

The pack's weights are random, so the check's decision between references and a learned identity is
chance here: where a test needs a learning in use, it marks the stored one accepted itself."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from learn_testkit import ANN, copy_catalog
from engine.catalog.db import open_catalog
from engine.catalog.models import LearnedIdentity, RestorationFace
from engine.errors import JobBusyError
from engine.imageio import read_image
from engine.learn.faces import NotEnoughFacesError, aligned_crops, learning_face
from engine.learn.learning import learn_person
from engine.learn.store import in_use, learned_token_source, learnings
from engine.people import corrections
from engine.people.references import set_references

LEARN = ("--steps", "2", "--check-steps", "1", "--fit-size", "64", "--learning-rate", "0.05")


@pytest.fixture(scope="module")
def learned(learn_album, tiny_pack, tmp_path_factory):
    """(catalog file after `faceme people learn Ann` (both methods), its stdout, the cache folder)."""
    from engine.cli import main

    folder = tmp_path_factory.mktemp("learned")
    db = copy_catalog(learn_album, folder)
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEME_CACHE", str(folder / "cache"))
        with contextlib.redirect_stdout(out):
            code = main(["people", "learn", "Ann", *LEARN, "--models", str(tiny_pack), "--catalog", str(db)])
    assert code == 0, out.getvalue()
    return db, out.getvalue(), folder / "cache"


def _set_status(db: Path, **status) -> None:
    catalog = open_catalog(db)
    with catalog.transaction() as session:
        for method, value in status.items():
            session.execute(update(LearnedIdentity).where(LearnedIdentity.method == method).values(status=value))
    catalog.close()


def test_people_learn_prints_the_held_out_comparison_and_stores_it(learned, run_cli):
    db, out, cache = learned
    assert "learned Ann from " in out and "2 held out for the check" in out
    table = out[out.index("held-out check: 2 faces of Ann"):]
    for way in ("references", "fitted", "adapter"):
        assert any(line.split()[:1] == [way] and len(line.split()) == 3 for line in table.splitlines()), table
    decision = out.strip().splitlines()[-1]
    assert decision.startswith(("learning helped Ann", "learning did not help Ann (")), decision
    catalog = open_catalog(db)
    with catalog.session() as session:
        rows = session.scalars(select(LearnedIdentity).order_by(LearnedIdentity.method)).all()
        assert [(r.method, r.version) for r in rows] == [("adapter", 1), ("fitted", 1)]
        assert sum(r.status == "accepted" for r in rows) <= 1
        figures = rows[0].figures
        assert figures["faces"] == 2 and set(figures["ways"]) == {"references", "fitted", "adapter"}
        assert figures["fit_similarity"] >= figures["fit_threshold"]  # Ann's own faces pass the guard
        assert Path(rows[0].adapter_file).is_file() and rows[1].count == 4
    catalog.close()
    assert not list((cache / "learning").rglob("*.safetensors"))  # checkpoints gone once stored
    code, shown, err = run_cli("people", "show", "Ann", "--catalog", db)
    assert code == 0, err
    assert "fitted v1" in shown and "adapter v1, strength 1" in shown and "references" in shown


def _restore(run_cli, pack: Path, db: Path, photo: Path, out: Path, *extra) -> dict:
    code, stdout, stderr = run_cli("restore", photo, "--catalog", db, "-o", out, "--models", pack, "--steps", "1",
                                   "--seed", "7", "--no-identity-check", "--json", *extra)
    assert code == 0, stderr
    return next(f for f in json.loads(stdout)["faces"] if f["person"] == "Ann")


def test_restorations_use_what_was_kept_and_record_which(learned, learn_album, tiny_pack, run_cli, tmp_path,
                                                         monkeypatch):
    db = copy_catalog(learned[0], tmp_path / "c")
    monkeypatch.setenv("FACEME_CACHE", str(learned[2]))
    photo = sorted((learn_album.parent / "album" / ANN).glob("*.jpg"))[0]
    _set_status(db, fitted="accepted", adapter="rejected")
    fitted = _restore(run_cli, tiny_pack, db, photo, tmp_path / "fitted.png")
    plain = _restore(run_cli, tiny_pack, db, photo, tmp_path / "plain.png", "--identity", "references")
    assert (fitted["identity_used"], plain["identity_used"]) == ("fitted v1", "references")
    _set_status(db, fitted="rejected", adapter="accepted")
    adapted = _restore(run_cli, tiny_pack, db, photo, tmp_path / "adapter.png")
    assert adapted["identity_used"] == "adapter v1"
    pixels = {name: read_image(tmp_path / f"{name}.png").pixels for name in ("fitted", "plain", "adapter")}
    assert not np.array_equal(pixels["fitted"], pixels["plain"])
    assert not np.array_equal(pixels["adapter"], pixels["plain"])
    catalog = open_catalog(db)
    with catalog.session() as session:
        used = session.scalars(select(RestorationFace.identity_used).where(RestorationFace.person_name == "Ann")
                               .order_by(RestorationFace.id)).all()
        assert used == ["fitted v1", "references", "adapter v1"]
        from engine.catalog.jobs import face_record

        row = session.scalars(select(RestorationFace).where(RestorationFace.person_name == "Ann")).first()
        assert "identity: fitted v1" in face_record(row).describe()  # what `faceme batch --verbose` prints
    catalog.close()
    # an adapter file that is not the one stored (changed, half-written) is never loaded: references
    adapter_file = next((learned[2] / "learned").glob("*.safetensors"))
    saved = adapter_file.read_bytes()
    catalog = open_catalog(db)
    try:
        adapter_file.write_bytes(saved[: len(saved) // 2])
        from engine.learn.adapter import _LOADED
        from engine.restore.album import person_identity
        from engine.restore.service import get_service

        _LOADED.clear()  # as a new process would
        service = get_service(Path(tiny_pack).resolve(), "cpu", "auto")
        source = learned_token_source(lambda identity: "reference tokens", catalog, service.fingerprint,
                                      service.pipeline.unet)
        with catalog.session() as session:
            identity = person_identity(session, corrections.find_person(session, "Ann"))
        use = source(identity)
        assert (use.tokens, use.used, use.adapter) == ("reference tokens", "references", None)
    finally:
        catalog.close()
        adapter_file.write_bytes(saved)


def test_a_fit_on_another_persons_faces_is_rejected_by_the_check(learn_album, ann_faces, service):
    from engine.learn.check import held_out_check
    from engine.learn.denoising import DenoisingModels, FitSettings
    from engine.learn.fitted_identity import fit_identity

    split, ann_fit, held = ann_faces
    catalog = open_catalog(learn_album)
    with catalog.session() as session:
        bob = corrections.find_person(session, "Bob")
        bob_crops = aligned_crops([learning_face(a.face) for a in bob.assignments])
    catalog.close()
    start = service.pipeline.encode_identity(ann_fit[:2]).float().cpu().numpy()
    wrong = fit_identity(DenoisingModels.from_pipeline(service.pipeline), start, bob_crops,
                         FitSettings(steps=2, learning_rate=0.05, resolution=64))
    report = held_out_check(service.pipeline, service.identity_check, "Ann", start, held, held, bob_crops,
                            fitted_tokens=wrong.tokens, steps=1)
    assert report.chosen is None and report.kept == {"fitted": False}
    assert report.fit_similarity < report.fit_threshold
    assert "do not look like the held-out faces" in report.reasons["fitted"]
    assert report.message.startswith("learning did not help Ann: the faces it was fitted on do not look like")
    assert report.message.endswith("kept the references")


def test_split_reject_merge_and_a_new_pack_make_a_learning_stale(learned, service, tmp_path):
    fingerprint = service.fingerprint

    def fresh(name: str):
        db = copy_catalog(learned[0], tmp_path / name)
        _set_status(db, fitted="accepted", adapter="rejected")
        return open_catalog(db)

    catalog = fresh("split")
    with catalog.transaction() as session:
        ann = corrections.find_person(session, "Ann")
        assert in_use(session, ann, fingerprint).label == "fitted v1"
        assert in_use(session, ann, "a-new-pack") is None
        assert learnings(session, ann, "a-new-pack")[0].stale == "the model pack changed since it was learned"
        fitted = session.scalar(select(LearnedIdentity).where(LearnedIdentity.method == "fitted"))
        corrections.split(session, ann, [str(fitted.fit_face_ids[-1])], name="Someone")
    with catalog.session() as session:
        ann = corrections.find_person(session, "Ann")
        assert in_use(session, ann, fingerprint) is None
        assert "no longer this person's" in learnings(session, ann, fingerprint)[0].stale
    catalog.close()

    catalog = fresh("reject")
    with catalog.transaction() as session:
        ann = corrections.find_person(session, "Ann")
        held = session.scalar(select(LearnedIdentity).where(LearnedIdentity.method == "fitted")).held_out_face_ids
        corrections.reject(session, ann, [str(held[0])])
    with catalog.session() as session:
        assert in_use(session, corrections.find_person(session, "Ann"), fingerprint) is None
    catalog.close()

    catalog = fresh("merge-into-ann")  # Bob's references come with him: Ann's references change
    with catalog.transaction() as session:
        ann, bob = corrections.find_person(session, "Ann"), corrections.find_person(session, "Bob")
        set_references(session, bob, [a.face for a in bob.assignments][:2])
        corrections.merge(session, ann, [bob])
    with catalog.session() as session:
        ann = corrections.find_person(session, "Ann")
        assert in_use(session, ann, fingerprint) is None
        assert learnings(session, ann, fingerprint)[0].stale == "the person's references changed since it was learned"
    catalog.close()

    catalog = fresh("merge-into-bob")  # Ann's faces are Bob's now; her learning does not follow
    with catalog.transaction() as session:
        bob = corrections.find_person(session, "Bob")
        corrections.merge(session, bob, [corrections.find_person(session, "Ann")])
    with catalog.session() as session:
        assert in_use(session, corrections.find_person(session, "Bob"), fingerprint) is None
        assert session.scalar(select(LearnedIdentity)) is None
    catalog.close()


def test_fewer_than_8_faces_is_refused_with_the_counts(learn_album):
    catalog = open_catalog(learn_album)
    try:
        with pytest.raises(NotEnoughFacesError, match="Bob has 6 usable faces .* at least 8: 2 more") as caught:
            learn_person(catalog, "Bob", None, "no-pack", None)
        assert (caught.value.found, caught.value.needed) == (6, 8)
    finally:
        catalog.close()


def test_one_process_learns_a_person_at_a_time(learn_album, tmp_path):
    from engine.catalog.locks import catalog_lock

    db = copy_catalog(learn_album, tmp_path / "c")
    catalog = open_catalog(db)
    try:
        with catalog.session() as session:
            ann_id = corrections.find_person(session, "Ann").id
        with catalog_lock(catalog, f"learning-person-{ann_id}", "learning Ann"):
            with pytest.raises(JobBusyError, match=r"another process is learning Ann \(learning Ann \(process "):
                learn_person(catalog, "Ann", None, "no-pack", None)
    finally:
        catalog.close()
