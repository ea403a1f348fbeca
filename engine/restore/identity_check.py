"""Does the restored face still look like the person? An identity check per restored face.

For a face restored with a person's references, the restored crop is compared with that person's
reference faces, and so is the unrestored (LQ) crop, as the baseline; for a blind restoration the
restored crop is compared with the unrestored one. The verdict is `kept`, `uncertain` or `drifted`,
from the thresholds of the recogniser that measured it:

    similarity >= thresholds.kept     -> kept        (accepted as the same person)
    similarity <  thresholds.drifted  -> drifted     (most genuine pairs lie above this)
    otherwise                         -> uncertain

A blind verdict uses the same thresholds, set on two different photos of a person; a restoration and
its own unrestored face are one photo and should score higher, so the blind check is lenient: it
catches a face that became somebody else, not a subtle change.

The recogniser must not be the one that steered the restoration (FaceMe is conditioned on
antelopev2's glintr100 ArcFace; a check by the same network is easier to fool). `independent_check`
picks InsightFace's buffalo_l pack (w600k_r50, another ArcFace trained on other data) when it is
installed, else the embedded dlib ResNet, which needs no download and is always there.

Thresholds (cosine similarity of L2-normalised embeddings):

- dlib (`dlib/resnet-128`): measured on real photos by `bench/identity_thresholds.py` (LFW subset +
  deepface_ids, aligned 512 crops against whole-photo references, the way the check runs); `kept` is
  the similarity at 1 % false accepts (a different person passes once in a hundred), `drifted` the
  similarity 99 % of genuine pairs exceed (a face that still looks like the person is flagged once in
  a hundred); between the two the recognisers' distributions overlap: `uncertain`. Table, ROC and
  plot: docs/BENCHMARKS.md. (dlib's similarities of L2-normalised embeddings are all high: different
  people score about 0.84, the same person about 0.95.)
- InsightFace ArcFace (`insightface/...`): NOT measured here (no real ArcFace weights on the
  development machines). Until they are, InsightFace's own published verification rule is used, from
  its recognition demo for buffalo_l (deepinsight/insightface web-demos/src_recognition/main.py):
  below 0.20 "not the same person", 0.20-0.28 "likely the same person", 0.28 and above "the same
  person". Re-measure with `bench/identity_thresholds.py --pack DIR` once the weights are available.

Aligned crops are embedded without detecting the face again: in an FFHQ-aligned crop the face's
landmarks are the template's and its dlib detector box is a fixed square (`ALIGNED_FACE_BOX_512`), so
each recogniser gets the face it expects (dlib refits its 5-point shape inside that box; ArcFace warps
the template landmarks onto its 112 px template).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from engine.errors import UsageError
from engine.faces.align import FFHQ_TEMPLATE_512
from engine.faces.types import Face
from engine.restore.matching import PersonEmbeddings, embed_references, normalise

log = logging.getLogger(__name__)

Verdict = Literal["kept", "uncertain", "drifted"]
#: what the restored face was compared with: the person's references, or (blind) the unrestored face
Comparison = Literal["references", "unrestored"]

#: dlib's HOG detector box of a face in an FFHQ-aligned 512 crop (x1, y1, x2, y2): the median box
#: over 95 real faces (LFW subset and deepface_ids) detected in their own aligned crops. Embedding with
#: this box instead of a fresh detection gives the same embedding to within cosine 0.99 (median 0.9999).
ALIGNED_FACE_BOX_512 = (95.0, 130.0, 406.0, 440.0)

#: the recogniser FaceMe is conditioned on (antelopev2): never the one that checks its results
CONDITIONING_MODEL = "insightface/antelopev2/glintr100"


@dataclass(frozen=True)
class IdentityThresholds:
    """Cosine-similarity thresholds of one embedding model: >= `kept` is kept, < `drifted` drifted."""

    kept: float
    drifted: float
    source: str  # where the numbers come from

    def __post_init__(self):
        if not self.drifted <= self.kept:
            raise UsageError(f"the drifted threshold ({self.drifted}) must not exceed the kept one ({self.kept})")


#: Per embedding-model prefix (first match wins). See the module docstring and docs/BENCHMARKS.md.
IDENTITY_THRESHOLDS: tuple[tuple[str, IdentityThresholds], ...] = (
    ("dlib/", IdentityThresholds(kept=0.907, drifted=0.895,
                                 source="measured on lfw_subset + deepface_ids by bench/identity_thresholds.py, "
                                        "2026-11-29: 1 % false accepts / 99 % of genuine pairs above")),
    ("insightface/", IdentityThresholds(kept=0.28, drifted=0.20,
                                        source="InsightFace's published verification rule (buffalo_l "
                                               "recognition demo); not measured here")),
)


def thresholds_for(embedding_model: str) -> IdentityThresholds:
    for prefix, thresholds in IDENTITY_THRESHOLDS:
        if embedding_model.startswith(prefix):
            return thresholds
    raise UsageError(f"no identity-check thresholds are known for the embedding model {embedding_model!r}")


@dataclass(frozen=True)
class IdentityVerdict:
    """The check of one restored face, with the numbers behind it.

    `similarity_restored`: restored face vs the person's references (or, blind, vs the unrestored
    face); `similarity_unrestored`: the unrestored face vs the same references (None when blind).
    `model`: the embedding model that measured both. `person`: whose references (None when blind).
    """

    verdict: Verdict
    similarity_restored: float
    similarity_unrestored: float | None
    model: str
    thresholds: IdentityThresholds
    compared_with: Comparison
    person: str | None = None

    def as_dict(self) -> dict:
        """Plain values for `--json` output and the catalog's per-face record (`check_model` is the
        column name there)."""
        return {"verdict": self.verdict, "person": self.person, "compared_with": self.compared_with,
                "similarity_restored": round(self.similarity_restored, 4),
                "similarity_unrestored": (None if self.similarity_unrestored is None
                                          else round(self.similarity_unrestored, 4)),
                "check_model": self.model, "kept_threshold": self.thresholds.kept,
                "drifted_threshold": self.thresholds.drifted}

    @property
    def change(self) -> float | None:
        """How much the restoration moved the face towards (+) or away from (-) the references."""
        if self.similarity_unrestored is None:
            return None
        return self.similarity_restored - self.similarity_unrestored


def _whom(verdict: IdentityVerdict) -> str:
    return verdict.person if verdict.compared_with == "references" and verdict.person else "the original face"


def describe(verdict: IdentityVerdict) -> str:
    """One line for people: "looks like Ann", "may not look like Ann (0.901 < 0.907)", "does not look
    like Ann (0.850 < 0.895)"; blind restorations are compared with "the original face"."""
    whom = _whom(verdict)
    similarity = verdict.similarity_restored
    if verdict.verdict == "kept":
        return f"looks like {whom}"
    if verdict.verdict == "uncertain":
        return f"may not look like {whom} ({similarity:.3f} < {verdict.thresholds.kept:.3f})"
    return f"does not look like {whom} ({similarity:.3f} < {verdict.thresholds.drifted:.3f})"


def describe_short(verdict: IdentityVerdict) -> str:
    """A verdict with its figures in one short phrase (CLI summaries): "looks like Ann (0.930; before
    0.910)", "may not look like Ann (0.901; before 0.915)", "does not look like the original face (0.850)"."""
    return short_phrase(verdict.verdict, _whom(verdict), verdict.similarity_restored, verdict.similarity_unrestored)


def short_phrase(verdict: str, whom: str, similarity_restored: float, similarity_unrestored: float | None) -> str:
    """`describe_short` from plain values (a verdict as the catalog records it)."""
    words = {"kept": "looks like", "uncertain": "may not look like", "drifted": "does not look like"}.get(
        verdict, verdict)
    before = "" if similarity_unrestored is None else f"; before {similarity_unrestored:.3f}"
    return f"{words} {whom} ({similarity_restored:.3f}{before})"


def describe_numbers(verdict: IdentityVerdict) -> str:
    """The figures behind a verdict (a tooltip, a log line, a CLI detail)."""
    t = verdict.thresholds
    if verdict.compared_with == "references":
        whose = f"{verdict.person}'s references" if verdict.person else "the references"
        figures = f"similarity to {whose}: restored {verdict.similarity_restored:.3f}"
        if verdict.similarity_unrestored is not None:
            figures += f", before restoration {verdict.similarity_unrestored:.3f}"
    else:
        figures = f"similarity of the restored face to the original: {verdict.similarity_restored:.3f}"
    return f"{figures} ({verdict.model}; looks alike from {t.kept:.3f}, unlike below {t.drifted:.3f})"

def decide(similarity: float, thresholds: IdentityThresholds) -> Verdict:
    """The verdict for one similarity (see the module docstring)."""
    if similarity >= thresholds.kept:
        return "kept"
    if similarity < thresholds.drifted:
        return "drifted"
    return "uncertain"


def similarity_to_references(embedding: np.ndarray, references: np.ndarray) -> float:
    """Mean cosine similarity of one L2-normalised embedding to a person's references (N, D).

    The mean rather than the best reference: the thresholds are set on single pairs, and the maximum
    over N references would let N chances at a false accept through; the mean keeps the false-accept
    rate at or below the single-pair one and steadies the genuine score (bench/identity_thresholds.py
    reports both for 3 references)."""
    references = np.atleast_2d(np.asarray(references, np.float32))
    return float(np.mean(references @ normalise(embedding)))


class Recognizer(Protocol):
    """What the check needs of a face analyser (DlibFaceAnalyzer, InsightFaceAnalyzer)."""

    embedding_model: str

    def detect(self, image_rgb: np.ndarray, *args, **kwargs) -> list[Face]: ...

    def embed(self, image_rgb: np.ndarray, face: Face) -> np.ndarray: ...


def aligned_face(size: int = 512) -> Face:
    """The face of an FFHQ-aligned `size` crop: template landmarks and the fixed detector box."""
    scale = size / 512.0
    box = tuple(float(v) * scale for v in ALIGNED_FACE_BOX_512)
    return Face(box=box, score=1.0, landmarks=(FFHQ_TEMPLATE_512 * scale).astype(np.float32))


def _as_crop(crop: np.ndarray) -> np.ndarray:
    crop = np.asarray(crop)
    if crop.ndim == 2:
        crop = np.repeat(crop[:, :, None], 3, axis=2)
    if crop.ndim != 3 or crop.shape[2] not in (3, 4) or crop.shape[0] != crop.shape[1]:
        raise UsageError(f"expected a square aligned RGB face crop, got shape {crop.shape}")
    if crop.dtype != np.uint8:
        raise UsageError(f"expected a uint8 face crop, got {crop.dtype}")
    return np.ascontiguousarray(crop[..., :3])


class IdentityCheck:
    """The identity check with one recogniser and its thresholds.

    `recognizer`: a face analyser (see `Recognizer`); `thresholds`: None takes the model's own
    (`thresholds_for`). Crops are FFHQ-aligned square RGB uint8 crops of any size (512 from the
    restorer). Thread-safe as far as the recogniser is (both analysers are)."""

    def __init__(self, recognizer: Recognizer, thresholds: IdentityThresholds | None = None):
        self.recognizer = recognizer
        self.model = recognizer.embedding_model
        if self.model == CONDITIONING_MODEL:
            log.warning("the identity check runs on %s, the recogniser that conditioned the restoration; "
                        "its verdicts are easier to fool", self.model)
        self.thresholds = thresholds if thresholds is not None else thresholds_for(self.model)

    def embed_crop(self, crop: np.ndarray) -> np.ndarray:
        """The L2-normalised embedding of the face in an aligned crop (no detection)."""
        crop = _as_crop(crop)
        return normalise(self.recognizer.embed(crop, aligned_face(crop.shape[0])))

    def references(self, name: str, images: Sequence[str | Path | np.ndarray]) -> PersonEmbeddings:
        """A person's reference photos (paths or RGB arrays; largest face of each) embedded with this
        check's recogniser. Files are embedded once per process (engine.restore.matching's cache)."""
        return embed_references(self.recognizer, name, images)

    def verdict(self, similarity_restored: float, similarity_unrestored: float | None,
                compared_with: Comparison, person: str | None = None) -> IdentityVerdict:
        return IdentityVerdict(decide(similarity_restored, self.thresholds), float(similarity_restored),
                               None if similarity_unrestored is None else float(similarity_unrestored),
                               self.model, self.thresholds, compared_with, person)

    def check(self, restored: np.ndarray, unrestored: np.ndarray,
              references: PersonEmbeddings | None = None) -> IdentityVerdict:
        """The verdict on one restored face: `restored` and `unrestored` are the aligned crops after
        and before restoration; `references` the person's (from `self.references`), None when blind."""
        restored_embedding = self.embed_crop(restored)
        unrestored_embedding = self.embed_crop(unrestored)
        if references is None:
            return self.verdict(float(restored_embedding @ unrestored_embedding), None, "unrestored")
        self._same_model(references)
        return self.verdict(similarity_to_references(restored_embedding, references.embeddings),
                            similarity_to_references(unrestored_embedding, references.embeddings),
                            "references", references.name)

    def scorer(self, unrestored: np.ndarray, references: PersonEmbeddings | None = None) -> TryScorer:
        """The score best of N keeps the highest of (`similarity_restored` of `check`) for many
        restorations of one face: the unrestored face is embedded once (and only when blind, the one
        case where the score needs it); `TryScorer.check` gives the kept try's verdict without
        embedding it again."""
        if references is not None:
            self._same_model(references)
        return TryScorer(self, unrestored, references)

    def _same_model(self, references: PersonEmbeddings) -> None:
        if references.embedding_model != self.model:
            raise UsageError(f"{references.name!r}'s references were embedded with "
                             f"{references.embedding_model}, the check runs on {self.model}")


class TryScorer:
    """Scores the tries of one face (`check.scorer`), remembering each try's embedding so that the
    verdict on the kept one (`check`) is `IdentityCheck.check`'s without embedding it again."""

    def __init__(self, check: IdentityCheck, unrestored: np.ndarray, references: PersonEmbeddings | None):
        self.identity_check, self.unrestored, self.references = check, unrestored, references
        self._unrestored_embedding = check.embed_crop(unrestored) if references is None else None
        self._embedded: list[tuple[np.ndarray, np.ndarray]] = []  # (try's crop, its embedding)

    def _score(self, embedding: np.ndarray) -> float:
        if self.references is None:
            return float(embedding @ self._unrestored_embedding)
        return similarity_to_references(embedding, self.references.embeddings)

    def __call__(self, restored: np.ndarray) -> float:
        embedding = self.identity_check.embed_crop(restored)
        self._embedded.append((restored, embedding))
        return self._score(embedding)

    def check(self, restored: np.ndarray) -> IdentityVerdict:
        """The verdict on `restored` (a try scored here), as `IdentityCheck.check` would give it."""
        embedding = next((e for crop, e in self._embedded if crop is restored), None)
        if embedding is None:
            embedding = self.identity_check.embed_crop(restored)
        if self.references is None:
            return self.identity_check.verdict(self._score(embedding), None, "unrestored")
        unrestored = self.identity_check.embed_crop(self.unrestored)
        return self.identity_check.verdict(self._score(embedding),
                                           similarity_to_references(unrestored, self.references.embeddings),
                                           "references", self.references.name)


def independent_check(models_dir: str | Path | None = None, providers: Sequence | None = None,
                      isolated: bool = False) -> IdentityCheck:
    """The check on a recogniser independent of FaceMe's conditioning: InsightFace buffalo_l when that
    pack is installed in `models_dir`, else the embedded dlib model (always available). `isolated`:
    dlib runs in a child process (engine.faces.recognizer_process), for callers with a window to keep
    responsive (dlib holds the GIL while it computes; onnxruntime does not)."""
    if models_dir is not None:
        from engine.models.layout import check_part, part_dir

        if check_part(Path(models_dir), "buffalo_l").ok:
            from engine.faces.insightface_backend import InsightFaceAnalyzer

            return IdentityCheck(InsightFaceAnalyzer(part_dir(Path(models_dir), "buffalo_l"), providers=providers))
    if isolated:
        from engine.faces.recognizer_process import ProcessDlibAnalyzer

        return IdentityCheck(ProcessDlibAnalyzer())
    from engine.faces.dlib_backend import DlibFaceAnalyzer

    return IdentityCheck(DlibFaceAnalyzer())


_SHARED: dict[tuple, IdentityCheck] = {}
_SHARED_LOCK = threading.Lock()


def shared_check(models_dir: str | Path | None = None, isolated: bool = False) -> IdentityCheck:
    """The process's check for `models_dir` (`independent_check`), made on first use: loading a
    recogniser costs more than checking a face, so every restoration of the process shares one."""
    key = (str(Path(models_dir).resolve()) if models_dir is not None else "", isolated)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = independent_check(models_dir, isolated=isolated)
            log.info("identity check on %s", _SHARED[key].model)
        return _SHARED[key]


# ---- best of N by identity --------------------------------------------------------------------------

@dataclass(frozen=True)
class Try:
    """One restoration attempt: the seed that reproduces it and the check's score of its result."""

    seed: int
    score: float


def best_of_n(restore_once: Callable[[int], np.ndarray], seeds: Sequence[int],
              score: Callable[[np.ndarray], float],
              cancel: Callable[[], bool] | None = None) -> tuple[int, np.ndarray, list[Try]]:
    """Restore once per seed, score each result, keep the best.

    `restore_once(seed)` -> restored crop; `score(crop)` -> higher is more like the person (e.g.
    `check.scorer(lq, refs)`). Returns (index of the kept try, its crop, every try
    with its seed and score). Ties go to the first. Only the best crop so far is held in memory.
    """
    from engine.progress import check_cancelled

    seeds = [int(s) for s in seeds]
    if not seeds:
        raise UsageError("best of N needs at least one seed")
    tries: list[Try] = []
    best_index, best_crop = -1, None
    for i, seed in enumerate(seeds):
        check_cancelled(cancel, "restoration")
        crop = restore_once(seed)
        value = float(score(crop))
        tries.append(Try(seed, value))
        log.info("try %d of %d (seed %d): score %.4f", i + 1, len(seeds), seed, value)
        if best_crop is None or value > tries[best_index].score:
            best_index, best_crop = i, crop
    return best_index, best_crop, tries
