"""Done-means 6: each face in a composed photo of two people is matched to the right person.

The real ArcFace weights (antelopev2 glintr100) are not available on the development machines, so
this runs the same matching code (engine.restore.matching, engine.restore.plan.plan_ad_hoc) with the
real dlib 128-d embeddings of the embedded default analyzer and dlib's threshold; the ArcFace path
differs only in the analyzer and the threshold looked up for its embedding model.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import NoFaceError, UsageError
from engine.faces.types import Face
from engine.restore.matching import PersonEmbeddings, default_threshold, embed_references, match_face
from engine.restore.options import RestoreOptions
from engine.restore.plan import PersonReferences, plan_ad_hoc

PEOPLE = {"anna": ("person_01", ["img1.jpg", "img2.jpg"], "img10.jpg"),
          "ben": ("person_03", ["img8.jpg", "img9.jpg"], "img47.jpg")}


@pytest.fixture(scope="module")
def dlib_analyzer():
    from engine.faces.dlib_backend import DlibFaceAnalyzer

    return DlibFaceAnalyzer()


def _fit_height(pixels: np.ndarray, height: int) -> np.ndarray:
    import cv2

    width = round(pixels.shape[1] * height / pixels.shape[0])
    return cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def two_people(shared, dlib_analyzer):
    """References per person and a composed photo: anna's third photo left of ben's third photo."""
    from engine.imageio import read_image

    root = shared / "data" / "deepface_ids" / "images"
    people, tiles = [], []
    for name, (folder, refs, other) in PEOPLE.items():
        people.append(PersonReferences(name, [root / folder / ref for ref in refs]))
        tiles.append(_fit_height(read_image(root / folder / other).pixels, 480))
    composed = np.ascontiguousarray(np.concatenate(tiles, axis=1))
    return people, composed, tiles[0].shape[1]


def test_each_face_of_a_composed_photo_is_matched_to_the_right_person(two_people, dlib_analyzer):
    people, composed, split = two_people
    faces = dlib_analyzer.detect(composed)
    assert len(faces) == 2
    outcomes = plan_ad_hoc(faces, people, dlib_analyzer, RestoreOptions()).faces
    for outcome in outcomes:
        expected = "anna" if (outcome.face.box[0] + outcome.face.box[2]) / 2 < split else "ben"
        assert outcome.person == expected, outcome.reason
        assert outcome.action == "restored"
        assert outcome.similarity >= default_threshold("dlib/resnet-128")
        assert f"matched {expected}" in outcome.reason
    # Each face is closer to its own person's references than to the other person's.
    embedded = [embed_references(dlib_analyzer, p.name, p.images) for p in people]
    for face in faces:
        scores = {p.name: float(np.max(p.embeddings @ face.embedding)) for p in embedded}
        winner = max(scores, key=scores.get)
        assert scores[winner] - min(scores.values()) > 0.02


def test_unknown_faces_are_blind_or_skipped_with_a_reason(two_people, dlib_analyzer):
    people, composed, split = two_people
    faces = dlib_analyzer.detect(composed)
    only_anna = [p for p in people if p.name == "anna"]
    blind = plan_ad_hoc(faces, only_anna, dlib_analyzer, RestoreOptions(unmatched="blind")).faces
    skip = plan_ad_hoc(faces, only_anna, dlib_analyzer, RestoreOptions(unmatched="skip")).faces
    ben_blind = next(o for o in blind if o.face.box[0] >= split)
    ben_skip = next(o for o in skip if o.face.box[0] >= split)
    assert ben_blind.person is None and ben_blind.action == "blind"
    assert "closest: anna" in ben_blind.reason and "without identity" in ben_blind.reason
    assert ben_skip.action == "skipped" and "left alone" in ben_skip.reason
    nobody = plan_ad_hoc(faces, [], dlib_analyzer, RestoreOptions()).faces
    assert all(o.action == "blind" and "no people given" in o.reason for o in nobody)


def test_small_faces_and_the_face_limit(two_people, dlib_analyzer):
    people, composed, _ = two_people
    faces = dlib_analyzer.detect(composed)
    tiny = plan_ad_hoc(faces, people, dlib_analyzer, RestoreOptions(min_face_size=10_000)).faces
    assert all(o.action == "skipped" and "too small" in o.reason for o in tiny)
    limited = plan_ad_hoc(faces, people, dlib_analyzer, RestoreOptions(max_faces=1)).faces
    assert [o.action for o in limited].count("skipped") == 1
    largest = max(limited, key=lambda o: o.face.size)
    assert largest.action == "restored"


def test_embeddings_of_different_models_are_never_compared():
    face = Face(box=(0, 0, 10, 10), score=1.0, landmarks=np.zeros((5, 2)),
                embedding=np.ones(512, np.float32), embedding_model="insightface/antelopev2/glintr100")
    dlib_person = PersonEmbeddings("anna", "dlib/resnet-128", np.ones((1, 128), np.float32))
    with pytest.raises(UsageError, match="cannot compare"):
        match_face(face, [dlib_person])
    assert default_threshold("insightface/antelopev2/glintr100") == pytest.approx(0.32)
    with pytest.raises(UsageError):
        default_threshold("someone/else")


def test_reference_without_a_face_names_the_photo(tmp_path, dlib_analyzer):
    blank = np.full((200, 200, 3), 127, np.uint8)
    with pytest.raises(NoFaceError, match="anna reference #1"):
        embed_references(dlib_analyzer, "anna", [blank])
    with pytest.raises(UsageError):
        embed_references(dlib_analyzer, "anna", [])


def test_two_people_with_the_same_name_stay_two_people(two_people, dlib_analyzer):
    """Each person given is one identity, whatever their names: two "Sam"s are told apart by key."""
    people, composed, split = two_people
    faces = dlib_analyzer.detect(composed)
    twins = [PersonReferences("Sam", p.images) for p in people]
    plan = plan_ad_hoc(faces, twins, dlib_analyzer, RestoreOptions())
    left = next(o for o in plan.faces if o.face.box[0] < split)
    right = next(o for o in plan.faces if o.face.box[0] >= split)
    assert left.person == right.person == "Sam"
    assert left.identity != right.identity
    assert plan.identities[left.identity].images == tuple(people[0].images)
    assert plan.identities[right.identity].images == tuple(people[1].images)


def test_a_reference_photo_with_several_faces_is_refused_naming_the_file_and_count(tmp_path, two_people,
                                                                                   dlib_analyzer):
    from engine.imageio import write_image

    _, composed, _ = two_people
    group = tmp_path / "kit_with_rose.png"
    write_image(group, composed)
    with pytest.raises(UsageError) as error:
        embed_references(dlib_analyzer, "Rose", [group])
    assert "kit_with_rose.png" in str(error.value) and "2 faces" in str(error.value)
    # a crop the user chose (an array) is read by its largest face
    assert embed_references(dlib_analyzer, "Rose", [composed]).embeddings.shape[0] == 1
