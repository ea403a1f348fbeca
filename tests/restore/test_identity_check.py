"""The identity check on real photos with the real dlib recogniser (engine.restore.identity_check).

Real photos of ../shared/data/deepface_ids stand in for restorations: person_01's img1, img2, img4
are the references; another photo of person_01 (img5) is a restoration that kept the identity, a photo
of person_05 one that turned the face into somebody else, and a Gaussian blur of img5's crop is the
unrestored (degraded) face.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.errors import UsageError
from engine.restore.identity_check import (
    IdentityCheck,
    IdentityThresholds,
    decide,
    similarity_to_references,
    thresholds_for,
)
from engine.restore.matching import PersonEmbeddings

PERSON = "person_01"
REFERENCES = ("img1.jpg", "img2.jpg", "img4.jpg")


@pytest.fixture(scope="module")
def ids(shared):
    return shared / "data" / "deepface_ids" / "images"


@pytest.fixture(scope="module")
def dlib():
    from engine.faces.dlib_backend import DlibFaceAnalyzer

    return DlibFaceAnalyzer()


@pytest.fixture(scope="module")
def check(dlib):
    return IdentityCheck(dlib)


@pytest.fixture(scope="module")
def references(check, ids):
    return check.references("Ann", [ids / PERSON / name for name in REFERENCES])


def aligned_crop(dlib, path):
    """The 512 FFHQ crop of the photo's largest face, as the restorer cuts it."""
    from engine.faceme.references import read_rgb
    from engine.faces.align import align_face, warp_to_crop

    pixels = read_rgb(path)
    face = dlib.detect(pixels, embed=False)[0]
    return warp_to_crop(pixels, align_face(face.landmarks))


@pytest.fixture(scope="module")
def same_person_crop(dlib, ids):
    return aligned_crop(dlib, ids / PERSON / "img5.jpg")


@pytest.fixture(scope="module")
def other_person_crop(dlib, ids):
    return aligned_crop(dlib, ids / "person_05" / "img16.jpg")


def blurred(crop, sigma=8.0):
    return cv2.GaussianBlur(crop, (0, 0), sigma)


def test_the_same_person_is_kept(check, references, same_person_crop):
    verdict = check.check(same_person_crop, blurred(same_person_crop), references)
    assert verdict.verdict == "kept"
    assert verdict.person == "Ann" and verdict.compared_with == "references"
    assert verdict.model == "dlib/resnet-128" and verdict.thresholds == thresholds_for("dlib/resnet-128")
    assert verdict.similarity_restored >= verdict.thresholds.kept
    assert verdict.similarity_unrestored is not None


def test_a_different_person_is_drifted(check, references, other_person_crop, same_person_crop):
    verdict = check.check(other_person_crop, blurred(same_person_crop), references)
    assert verdict.verdict == "drifted"
    assert verdict.similarity_restored < verdict.thresholds.drifted
    # the unrestored face was Ann's: the restoration moved it away from her references
    assert verdict.change < -0.05


def test_a_blurred_copy_has_a_lower_baseline_than_the_sharp_copy(check, references, same_person_crop):
    sharp = check.check(same_person_crop, same_person_crop, references)
    blurry = check.check(same_person_crop, blurred(same_person_crop), references)
    assert sharp.similarity_unrestored == pytest.approx(sharp.similarity_restored)
    assert blurry.similarity_unrestored < sharp.similarity_unrestored - 0.005
    assert blurry.change > 0  # the sharp "restoration" is more like Ann than its blurred original


def test_blind_restoration_is_compared_with_the_unrestored_face(check, same_person_crop, other_person_crop):
    kept = check.check(same_person_crop, blurred(same_person_crop, 4.0))
    assert kept.compared_with == "unrestored" and kept.person is None and kept.similarity_unrestored is None
    assert kept.verdict == "kept"
    swapped = check.check(other_person_crop, same_person_crop)
    assert swapped.verdict == "drifted"


def test_aligned_crops_are_embedded_without_detection_like_whole_photos(check, dlib, ids, same_person_crop):
    from engine.faceme.references import read_rgb

    whole = dlib.detect(read_rgb(ids / PERSON / "img5.jpg"))[0].embedding
    assert float(check.embed_crop(same_person_crop) @ whole) > 0.99
    # any crop size: the template scales with it
    half = cv2.resize(same_person_crop, (256, 256), interpolation=cv2.INTER_AREA)
    assert float(check.embed_crop(half) @ whole) > 0.98


def test_the_verdict_bands():
    bands = IdentityThresholds(kept=0.9, drifted=0.8, source="test")
    assert [decide(s, bands) for s in (0.95, 0.9, 0.85, 0.8, 0.79)] == \
        ["kept", "kept", "uncertain", "uncertain", "drifted"]
    with pytest.raises(UsageError):
        IdentityThresholds(kept=0.5, drifted=0.6, source="test")


def test_thresholds_are_known_per_model_and_arcface_uses_insightface_published_rule():
    arcface = thresholds_for("insightface/buffalo_l/w600k_r50")
    assert (arcface.kept, arcface.drifted) == (0.28, 0.20) and "published" in arcface.source
    dlib = thresholds_for("dlib/resnet-128")
    assert dlib.drifted < dlib.kept and "measured" in dlib.source
    with pytest.raises(UsageError, match="thresholds"):
        thresholds_for("someone/else")


def test_mean_over_references_not_the_best_one():
    refs = np.eye(3, dtype=np.float32)
    assert similarity_to_references(np.array([1, 0, 0], np.float32), refs) == pytest.approx(1 / 3)


def test_bad_inputs_are_refused(check, same_person_crop, references):
    with pytest.raises(UsageError, match="square"):
        check.embed_crop(same_person_crop[:, :400])
    with pytest.raises(UsageError, match="uint8"):
        check.embed_crop(same_person_crop.astype(np.float32))
    arcface_refs = PersonEmbeddings("Ann", "insightface/antelopev2/glintr100", references.embeddings)
    with pytest.raises(UsageError, match="embedded with"):
        check.check(same_person_crop, same_person_crop, arcface_refs)


def test_verdicts_read_as_plain_words(check, references, same_person_crop, other_person_crop):
    from engine.restore.identity_check import describe, describe_numbers

    kept = check.check(same_person_crop, blurred(same_person_crop), references)
    assert describe(kept) == "looks like Ann"
    numbers = describe_numbers(kept)
    assert f"restored {kept.similarity_restored:.3f}" in numbers
    assert f"before restoration {kept.similarity_unrestored:.3f}" in numbers and "dlib/resnet-128" in numbers
    drifted = check.check(other_person_crop, same_person_crop, references)
    assert describe(drifted) == (f"does not look like Ann ({drifted.similarity_restored:.3f} < "
                                 f"{drifted.thresholds.drifted:.3f})")
    uncertain = check.verdict((check.thresholds.kept + check.thresholds.drifted) / 2, 0.5, "references", "Ann")
    assert uncertain.verdict == "uncertain"
    assert describe(uncertain) == (f"may not look like Ann ({uncertain.similarity_restored:.3f} < "
                                   f"{check.thresholds.kept:.3f})")
    blind = check.check(other_person_crop, same_person_crop)
    assert describe(blind).startswith("does not look like the original face (")
    assert describe_numbers(blind).startswith("similarity of the restored face to the original:")


def test_independent_check_prefers_buffalo_l_and_falls_back_to_dlib(tmp_path, shared, tiny_pack, same_person_crop,
                                                                    caplog):
    """buffalo_l built from real files: the real SCRFD det_500m as det_10g.onnx and the tiny pack's
    ArcFace-signature model as w600k_r50.onnx (its embeddings mean nothing; the path is what is tested)."""
    import logging
    import shutil

    from engine.faces.insightface_backend import InsightFaceAnalyzer
    from engine.models.layout import part_dir
    from engine.restore.identity_check import independent_check

    assert independent_check(None).model == "dlib/resnet-128"
    assert independent_check(tmp_path).model == "dlib/resnet-128"  # no buffalo_l installed
    buffalo = part_dir(tmp_path, "buffalo_l")
    buffalo.mkdir(parents=True)
    shutil.copyfile(shared / "models" / "insightface_scrfd" / "det_500m.onnx", buffalo / "det_10g.onnx")
    shutil.copyfile(part_dir(tiny_pack, "antelopev2") / "glintr100.onnx", buffalo / "w600k_r50.onnx")

    arcface = independent_check(tmp_path, providers=["CPUExecutionProvider"])
    assert arcface.model == "insightface/buffalo_l/w600k_r50"
    assert (arcface.thresholds.kept, arcface.thresholds.drifted) == (0.28, 0.20)
    embedding = arcface.embed_crop(same_person_crop)
    assert embedding.shape == (512,) and abs(float(embedding @ embedding) - 1) < 1e-5
    verdict = arcface.check(same_person_crop, same_person_crop)
    assert verdict.similarity_restored == pytest.approx(1.0, abs=1e-5) and verdict.verdict == "kept"

    with caplog.at_level(logging.WARNING, logger="engine.restore.identity_check"):
        IdentityCheck(InsightFaceAnalyzer(part_dir(tiny_pack, "antelopev2"), providers=["CPUExecutionProvider"]))
    assert "conditioned the restoration" in caplog.text


def test_scorer_gives_the_checks_similarity(check, references, same_person_crop, other_person_crop):
    lq = blurred(same_person_crop)
    for refs in (references, None):
        score = check.scorer(lq, refs)
        for crop in (same_person_crop, other_person_crop):
            assert score(crop) == pytest.approx(check.check(crop, lq, refs).similarity_restored, abs=1e-6)


def test_verdict_as_plain_values(check, references, same_person_crop):
    import json

    verdict = check.check(same_person_crop, blurred(same_person_crop), references)
    values = json.loads(json.dumps(verdict.as_dict()))
    assert values["verdict"] == "kept" and values["person"] == "Ann" and values["check_model"] == "dlib/resnet-128"
    assert values["similarity_restored"] == pytest.approx(verdict.similarity_restored, abs=1e-4)
    assert values["similarity_unrestored"] == pytest.approx(verdict.similarity_unrestored, abs=1e-4)
    assert (values["kept_threshold"], values["drifted_threshold"]) == (check.thresholds.kept, check.thresholds.drifted)
    assert check.check(same_person_crop, same_person_crop).as_dict()["similarity_unrestored"] is None


def test_references_are_embedded_once_by_content_even_given_in_memory(check, ids):
    from engine.faceme.references import read_rgb
    from engine.restore.identity import CheckReferences
    from engine.restore.plan import Identity

    photos = tuple(read_rgb(ids / PERSON / name) for name in REFERENCES[:2])
    references = CheckReferences(check)
    ann = references(Identity(key="given:0", name="Ann", images=photos))
    assert references(Identity(key="given:7", name="Ann", images=tuple(p.copy() for p in photos))) is ann
    assert references.embedded == 1 and ann.embeddings.shape[0] == 2
    other = references(Identity(key="given:0", name="Ann", images=photos[:1]))  # same key, other images
    assert references.embedded == 2 and other.embeddings.shape[0] == 1
