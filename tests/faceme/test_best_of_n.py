"""Best of N by identity: the tiny pack restores a real crop with three seeds, the real dlib check scores
each try against real references, and the kept try is the best scored one, reproducible from its seed."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import CancelledError, UsageError
from engine.restore.identity_check import IdentityCheck, Try, best_of_n

STEPS = 2


@pytest.fixture(scope="module")
def check():
    from engine.faces.dlib_backend import DlibFaceAnalyzer

    return IdentityCheck(DlibFaceAnalyzer())


def test_three_seeds_keep_the_best_scored_try_and_it_is_reproducible(pipeline, identity, lq_image, ref_paths,
                                                                        check):
    references = check.references("the person", ref_paths)
    seeds = [101, 202, 303]
    ran = []

    def restore_once(seed):
        ran.append(seed)
        return pipeline(lq_image, identity=identity, steps=STEPS, seed=seed)

    best, crop, tries = best_of_n(restore_once, seeds, check.scorer(lq_image, references))

    assert ran == seeds and [t.seed for t in tries] == seeds
    scores = [t.score for t in tries]
    assert len(set(scores)) == 3, "three seeds should give three different restorations"
    assert tries[best].score == max(scores)
    again = pipeline(lq_image, identity=identity, steps=STEPS, seed=tries[best].seed)
    np.testing.assert_array_equal(crop, again)
    # the recorded score is the check's own similarity_restored of that output
    verdict = check.check(again, lq_image, references)
    assert verdict.similarity_restored == pytest.approx(tries[best].score, abs=1e-6)


def test_ties_keep_the_first_try():
    outputs = {s: np.full((4, 4, 3), s, np.uint8) for s in (5, 6, 7)}
    best, crop, tries = best_of_n(outputs.__getitem__, [5, 6, 7], lambda crop: 0.5)
    assert best == 0 and crop[0, 0, 0] == 5 and tries == [Try(5, 0.5), Try(6, 0.5), Try(7, 0.5)]
    best, _, _ = best_of_n(outputs.__getitem__, [5, 6, 7], lambda crop: 1.0 if crop[0, 0, 0] >= 6 else 0.0)
    assert best == 1


def test_no_seeds_and_cancel():
    with pytest.raises(UsageError):
        best_of_n(lambda s: np.zeros((1, 1, 3), np.uint8), [], lambda c: 0.0)
    calls = []
    with pytest.raises(CancelledError):
        best_of_n(lambda s: calls.append(s) or np.zeros((1, 1, 3), np.uint8), [1, 2, 3], lambda c: 0.0,
                  cancel=lambda: len(calls) >= 2)
    assert calls == [1, 2]
