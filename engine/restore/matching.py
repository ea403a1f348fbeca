"""Which person is this face? Cosine similarity of embeddings, one embedding model at a time.

Each person has reference photos; the largest face of each is embedded with the same analyzer that
found the faces in the photo being restored. A face is matched to the person whose best reference
(maximum cosine similarity over that person's references) is most similar, provided that similarity
reaches the threshold of the embedding model. Embeddings of different models are never compared: a
face and a reference embedded by different models is an error, not a low score.

Thresholds (cosine similarity of L2-normalised embeddings):

- InsightFace ArcFace packs (`insightface/...`: antelopev2 glintr100, buffalo_l w600k_r50): 0.32.
  This is the verification threshold commonly used with InsightFace's ArcFace models (cosine
  distance 0.68); different people score around 0 and the same person typically 0.4–0.8. Not
  re-measured here: the real ArcFace weights are not available on the development machines.
- dlib's 128-d ResNet (`dlib/resnet-128`): 0.93. dlib's own rule (Euclidean distance < 0.6) is for
  its raw descriptors; after L2 normalisation everything is pulled close together. Measured here on
  ../shared/data/deepface_ids (38 photos, 9 people, largest face each, 2026-11-22): same person
  min 0.943 (5th percentile 0.952), different people max 0.919 (95th percentile 0.883); 0.93 sits in
  that gap. Used where dlib is the analyzer (album tools, tests); restoration itself runs with the
  antelopev2 pack.

Several faces may match the same person (collages, a photo of a photo): no one-to-one constraint.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import NoFaceError, UsageError
from engine.faces.types import Face

log = logging.getLogger(__name__)

#: Default match thresholds by embedding-model prefix (first match wins).
MATCH_THRESHOLDS: tuple[tuple[str, float], ...] = (
    ("insightface/", 0.32),
    ("dlib/", 0.93),
)


def default_threshold(embedding_model: str) -> float:
    for prefix, value in MATCH_THRESHOLDS:
        if embedding_model.startswith(prefix):
            return value
    raise UsageError(f"no match threshold is known for the embedding model {embedding_model!r}; "
                     f"pass one explicitly")


@dataclass(frozen=True)
class PersonEmbeddings:
    """A person's reference embeddings, all from `embedding_model`, shape (N, D), L2-normalised."""

    name: str  # the key the match reports (unique among the people compared)
    embedding_model: str
    embeddings: np.ndarray
    sources: tuple[str, ...] = ()
    label: str | None = None  # the person's name as the user knows it (names need not be unique)


@dataclass(frozen=True)
class Match:
    """The best person for one face. `person` is None when nobody reached the threshold; `best_name`
    and `similarity` still say who came closest (None when no person was given)."""

    person: str | None
    similarity: float | None
    best_name: str | None
    threshold: float


def reference_face(analyzer, image: np.ndarray, source: str, single: bool) -> Face:
    """The face of a reference image. `single`: the image is a photo the user gave, which must show
    one face (a group photo would put somebody else's identity in); otherwise (a crop cut around a
    chosen face) its largest face. InsightFace detectors are retried at smaller inputs, as FaceMe does."""
    from engine.restore.plan import detect_faces

    faces = detect_faces(analyzer, image)
    if not faces:
        raise NoFaceError("no face found in the reference photo", source)
    if single and len(faces) > 1:
        raise UsageError(f"this reference photo shows {len(faces)} faces; a reference must show one person: "
                         f"crop it to that person's face (or pick the face in the app)", source)
    return max(faces, key=lambda f: f.area)


def normalise(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def embed_references(analyzer, name: str, images: Sequence[str | Path | np.ndarray],
                     display_name: str | None = None) -> PersonEmbeddings:
    """Embed the face of each reference with `analyzer` (NoFaceError names the photo; a reference file
    with several faces is a UsageError naming it and the count; an array's largest face is used). A
    file already read (`engine.imageio.LoadedImage`) is a file whose pixels are not read again.

    Embeddings of reference files are remembered per embedding model, file size and modification
    time, so a batch over many photos of the same people detects each reference once."""
    from engine.faceme.references import read_rgb
    from engine.imageio import LoadedImage

    if not images:
        raise UsageError(f"person {display_name or name!r} has no reference photos")
    vectors, sources = [], []
    for i, image in enumerate(images):
        if isinstance(image, np.ndarray):
            source, pixels, key = f"{display_name or name} reference #{i + 1}", image, None
        elif isinstance(image, LoadedImage):
            source, pixels = str(image.path), image.pixels
            key = _cache_key(analyzer.embedding_model, Path(image.path))
        else:
            source, pixels = str(image), None
            key = _cache_key(analyzer.embedding_model, Path(image))
        vector = _EMBEDDING_CACHE.get(key) if key is not None else None
        if vector is None:
            pixels = read_rgb(image) if pixels is None else pixels
            face = reference_face(analyzer, pixels, source, single=not isinstance(image, np.ndarray))
            embedding = face.embedding if face.embedding is not None else analyzer.embed(pixels, face)
            vector = normalise(embedding)
            if key is not None:
                _remember(key, vector)
        vectors.append(vector)
        sources.append(source)
    return PersonEmbeddings(name, analyzer.embedding_model, np.stack(vectors), tuple(sources), display_name)


#: Reference embeddings by (model, file, size, mtime): a batch restores many photos of the same people.
_EMBEDDING_CACHE: dict[tuple, np.ndarray] = {}
_CACHE_LIMIT = 1024


def file_key(path: str | Path) -> tuple | None:
    """(resolved path, size, mtime) of a file, for caches of what was computed from it; None when it
    can't be looked at (whoever reads it reports the problem)."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def _cache_key(embedding_model: str, path: Path) -> tuple | None:
    key = file_key(path)
    return None if key is None else (embedding_model, *key)


def _remember(key: tuple, vector: np.ndarray) -> None:
    if len(_EMBEDDING_CACHE) >= _CACHE_LIMIT:
        _EMBEDDING_CACHE.pop(next(iter(_EMBEDDING_CACHE)))
    _EMBEDDING_CACHE[key] = vector


def match_face(face: Face, people: Sequence[PersonEmbeddings], threshold: float | None = None) -> Match:
    """The person `face` belongs to, by the best cosine similarity over each person's references."""
    if face.embedding is None or face.embedding_model is None:
        raise ValueError("the face has no embedding to match")
    limit = default_threshold(face.embedding_model) if threshold is None else float(threshold)
    if not people:
        return Match(None, None, None, limit)
    vector = normalise(face.embedding)
    best_name, best = None, -np.inf
    for person in people:
        if person.embedding_model != face.embedding_model:
            raise UsageError(f"cannot compare a {face.embedding_model} face embedding with "
                             f"{person.label or person.name!r}'s {person.embedding_model} references")
        similarity = float(np.max(person.embeddings @ vector))
        if similarity > best:
            best_name, best = person.name, similarity
    matched = best_name if best >= limit else None
    return Match(matched, best, best_name, limit)
