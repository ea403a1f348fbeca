"""The clustering core on embeddings with known structure: incremental, constraints as hard rules."""

from __future__ import annotations

import numpy as np

from engine.people.clustering import ClusterParams, PeopleIndex, cluster_incrementally

PARAMS = ClusterParams(link_threshold=0.6, join_threshold=0.6, chunk=50)


def _identities(rng, n_people: int, per_person: int, dim: int = 32, spread: float = 0.35):
    centres = rng.normal(size=(n_people, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(n_people), per_person)
    vectors = centres[labels] + spread * rng.normal(size=(len(labels), dim)) / np.sqrt(dim)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), labels


def _groups(outcome, keys_to_person=None):
    owner = {}
    for i, members in enumerate(outcome.new_people):
        for key in members:
            owner[key] = ("new", i)
    owner.update(outcome.joined)
    return owner


def test_groups_then_joins_incrementally():
    rng = np.random.default_rng(0)
    vectors, labels = _identities(rng, 12, 10)
    order = rng.permutation(len(labels))
    vectors, labels = vectors[order], labels[order]
    people = PeopleIndex(32)
    first = cluster_incrementally(people, vectors[:60], list(range(60)), list(range(60)), {}, PARAMS)
    owner = _groups(first)
    second = cluster_incrementally(people, vectors[60:], list(range(60, 120)), list(range(60, 120)), {}, PARAMS,
                                   new_person_key=lambda i: ("second", i))
    owner.update(_groups(second))
    owner.update({k: ("second", i) for i, m in enumerate(second.new_people) for k in m})
    # every identity maps to exactly one person, every person to one identity
    assert len(owner) == 120
    pairs = {(labels[k], owner[k]) for k in owner}
    assert len(pairs) == 12 and len({p for _, p in pairs}) == 12
    assert len(second.joined) > 40  # most later faces joined people made by the first run


def test_rejection_and_one_face_per_photo_are_hard_rules():
    rng = np.random.default_rng(1)
    vectors, labels = _identities(rng, 2, 6)
    people = PeopleIndex(32)
    people.add_person("ann", vectors[labels == 0][:5], photos=range(5))
    people.add_person("bob", vectors[labels == 1][:5], photos=range(100, 105))
    ann_new = vectors[labels == 0][5]
    bob_new = vectors[labels == 1][5]
    # ann_new was rejected for "ann"; a second face of photo 100 can't join bob (bob is in it already)
    out = cluster_incrementally(people, np.stack([ann_new, bob_new]), ["f1", "f2"], ["p1", 100],
                                {"f1": {"ann"}}, PARAMS)
    assert out.joined.get("f1") != "ann"
    assert "f2" not in out.joined
    assert sorted(out.unknown) == ["f1", "f2"]


def test_two_faces_of_one_photo_never_form_one_person():
    rng = np.random.default_rng(2)
    vectors, _ = _identities(rng, 1, 4, spread=0.1)
    out = cluster_incrementally(PeopleIndex(32), vectors, ["a", "b", "c", "d"], ["x", "x", "y", "z"], {}, PARAMS)
    assert len(out.new_people) == 1
    members = out.new_people[0]
    assert len(members) == 3 and not {"a", "b"} <= set(members)
