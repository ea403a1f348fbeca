"""Grouping faces into people: incremental, one embedding model at a time, the user's word as hard rules.

The algorithm (per embedding model), run on the faces that are in no person yet — after a scan, the faces
no clustering has seen and the unknown faces resembling them; in a full re-cluster, every face in no
person (the "unknown" bucket of faces that fit no one so far) — in chunks of `ClusterParams.chunk` faces:

1. Join: each face is compared with every person: its average cosine similarity to the person's
   faces (one dot product with the mean of their embeddings, so a person costs the same whatever its
   size). It joins the most similar person when that reaches `join_threshold`,
   unless the user rejected that face for that person, or the person already has a face in the same
   photo (one person appears once per photo).
2. Group: the faces left over, together with the unknown faces similar to any of them, are grouped by
   average-linkage agglomerative clustering on cosine distance, cut at `link_threshold`; a group that
   holds two faces of one photo keeps the one that fits it best. Groups of at least
   `min_people_size` faces become new people.
3. What fits nowhere stays unknown; it is tried again when a new face resembles it, or by a full
   re-cluster (`faceme people recluster`).

The machine never moves a face that is already in a person: confirmed faces are the user's, and a
machine assignment stays until the user changes it (so people don't reshuffle under the user on every
scan). Rejections are rows of their own, never deleted by the machine. Nothing here compares
embeddings of different models: people belong to one model.

The thresholds are tuned in `bench/clustering.py` (on one identity set, reported on another) and
documented in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterParams:
    #: average-linkage cut: a group's faces are on average at least this similar (cosine)
    link_threshold: float
    #: a face joins a person when its average cosine similarity to the person's faces reaches this
    join_threshold: float
    min_people_size: int = 2
    #: faces per round; the grouping step holds a chunk² distance matrix (2000: ~100 MB at peak)
    chunk: int = 2000
    #: after grouping, let faces left unknown join the new groups by centroid
    rejoin: bool = False


#: Tuned per embedding model by bench/clustering.py (see docs/BENCHMARKS.md for the data and figures).
TUNED_PARAMS: dict[str, ClusterParams] = {
    # tuned on half of lfw_subset's identities (best BCubed F1 over 0.880..0.945), see bench/clustering.py
    "dlib/resnet-128": ClusterParams(link_threshold=0.92, join_threshold=0.92),
}
#: ArcFace-family (InsightFace) embeddings. NOT tuned here: no ArcFace weights are available on this
#: machine. 0.40 / 0.45 follow the usual ArcFace verification operating points (same person above
#: about 0.3–0.4 cosine); tune with bench/clustering.py once a pack is installed.
ARCFACE_PARAMS = ClusterParams(link_threshold=0.40, join_threshold=0.45)


def params_for(model: str) -> ClusterParams:
    if model in TUNED_PARAMS:
        return TUNED_PARAMS[model]
    if model.startswith("insightface/"):
        return ARCFACE_PARAMS
    raise ValueError(f"no clustering thresholds for the embedding model {model!r}")


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@dataclass
class ClusterOutcome:
    #: face key → person key for faces that joined an existing person
    joined: dict[object, object] = field(default_factory=dict)
    #: new groups (each a list of face keys) that should become people
    new_people: list[list[object]] = field(default_factory=list)
    #: face keys left in the unknown bucket
    unknown: list[object] = field(default_factory=list)


class PeopleIndex:
    """Per person of one model: the sum and count of its embeddings (so the mean is exact and cheap to
    update as faces join) and the photos it appears in (one person appears once per photo)."""

    def __init__(self, dim: int):
        self.dim = dim
        self.keys: list[object] = []
        self._index: dict[object, int] = {}
        self._sums = np.zeros((16, dim), dtype=np.float64)
        self._counts = np.zeros(16, dtype=np.float64)
        self._means = np.zeros((16, dim), dtype=np.float32)
        self._photos: list[set] = []

    def _grow(self, needed: int) -> None:
        if needed <= len(self._counts):
            return
        capacity = max(needed, 2 * len(self._counts))
        for name in ("_sums", "_means"):
            old = getattr(self, name)
            grown = np.zeros((capacity, self.dim), dtype=old.dtype)
            grown[:len(old)] = old
            setattr(self, name, grown)
        counts = np.zeros(capacity, dtype=np.float64)
        counts[:len(self._counts)] = self._counts
        self._counts = counts

    def add_person(self, key: object, embeddings: np.ndarray, photos: Iterable) -> None:
        """Add faces to person `key` (created if new)."""
        embeddings = np.asarray(embeddings, dtype=np.float64).reshape(-1, self.dim)
        i = self._index.get(key)
        if i is None:
            i = len(self.keys)
            self._grow(i + 1)
            self._index[key] = i
            self.keys.append(key)
            self._photos.append(set())
        self._sums[i] += embeddings.sum(axis=0)
        self._counts[i] += len(embeddings)
        self._means[i] = self._sums[i] / max(self._counts[i], 1.0)
        self._photos[i].update(photos)

    def add_people(self, keys: list, sums: np.ndarray, counts: np.ndarray, photos: list[set]) -> None:
        """Bulk add (keys must be new): per person the sum of its embeddings and their count."""
        start = len(self.keys)
        self._grow(start + len(keys))
        for offset, key in enumerate(keys):
            self._index[key] = start + offset
        self.keys.extend(keys)
        stop = start + len(keys)
        self._sums[start:stop] = np.asarray(sums, dtype=np.float64).reshape(-1, self.dim)
        self._counts[start:stop] = counts
        self._means[start:stop] = self._sums[start:stop] / np.maximum(self._counts[start:stop], 1.0)[:, None]
        self._photos.extend(photos)

    def means(self) -> np.ndarray:
        """Per person the mean of its embeddings (not normalised): a face's dot product with it is the
        face's average similarity to the person's faces — the average-linkage criterion."""
        return self._means[:len(self.keys)]

    def position(self, key: object) -> int | None:
        return self._index.get(key)

    def has_photo(self, position: int, photo: object) -> bool:
        return photo in self._photos[position]

    def __len__(self) -> int:
        return len(self.keys)


def _above(sims: np.ndarray, threshold: float, k: int = 5) -> list[list[int]]:
    """Per row, the column indices whose value reaches `threshold`, largest first (at most k).

    Far cheaper than sorting whole rows: at a useful threshold a face resembles very few people.
    """
    rows, cols = np.nonzero(sims >= threshold)
    out: list[list[int]] = [[] for _ in range(sims.shape[0])]
    if len(rows):
        values = sims[rows, cols]
        order = np.lexsort((-values, rows))
        for r, c in zip(rows[order].tolist(), cols[order].tolist()):
            if len(out[r]) < k:
                out[r].append(c)
    return out


def _join_only(params: ClusterParams) -> ClusterParams:
    # min_people_size beyond any chunk: the nested call only joins, never forms groups
    return ClusterParams(link_threshold=params.link_threshold, join_threshold=params.join_threshold,
                         min_people_size=10 ** 9, chunk=params.chunk, rejoin=False)


def _average_linkage_groups(vectors: np.ndarray, link_threshold: float) -> np.ndarray:
    """Labels from average-linkage clustering on cosine distance, cut at 1 - link_threshold."""
    n = len(vectors)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    # condensed cosine distances from one matrix product (the vectors are unit length)
    square = 1.0 - (vectors @ vectors.T).astype(np.float64)
    np.fill_diagonal(square, 0.0)
    np.clip(square, 0.0, 2.0, out=square)
    tree = linkage(squareform(square, checks=False), method="average")
    return fcluster(tree, t=1.0 - link_threshold, criterion="distance")


def _split_same_photo(members: list[int], vectors: np.ndarray, photos: list) -> tuple[list[int], list[int]]:
    """(kept, evicted): one face per photo in a group, keeping the face closest to the group's centroid."""
    by_photo: dict[object, list[int]] = defaultdict(list)
    for m in members:
        by_photo[photos[m]].append(m)
    if all(len(v) == 1 for v in by_photo.values()):
        return members, []
    centroid = _normalise(vectors[members].mean(axis=0))
    kept, evicted = [], []
    for group in by_photo.values():
        best = max(group, key=lambda m: float(vectors[m] @ centroid))
        kept.append(best)
        evicted.extend(m for m in group if m != best)
    return kept, evicted


def _best_person_for_group(people: PeopleIndex, top: list[int], members: list[int],
                           face_keys: list, face_photos: list, rejected: dict):
    for pos in top:
        key = people.keys[pos]
        if any(key in rejected.get(face_keys[m], ()) or people.has_photo(pos, face_photos[m]) for m in members):
            continue
        return key
    return None


def cluster_incrementally(
    people: PeopleIndex,
    faces: np.ndarray,
    face_keys: list,
    face_photos: list,
    rejected: dict[object, set] | None,
    params: ClusterParams,
    new_person_key=None,
) -> ClusterOutcome:
    """Place `faces` (rows: L2-normalised embeddings, none of them in a person yet) — see the module doc.

    `people` is updated in place (joined faces move centroids; new groups are added under keys made
    by `new_person_key(i)`, default ("new", i)). Returns where each face went.
    """
    rejected = rejected or {}
    new_person_key = new_person_key or (lambda i: ("new", i))
    outcome = ClusterOutcome()
    faces = _normalise(faces)
    n = len(faces)
    pool_idx: list[int] = []  # unknown so far (indices into faces)
    new_count = 0
    for start in range(0, n, params.chunk):
        chunk = np.arange(start, min(start + params.chunk, n))
        leftover = list(chunk)
        # 1. join existing people
        if len(people):
            centroids = people.means()
            sims = faces[chunk] @ centroids.T
            order = _above(sims, params.join_threshold)
            claims: dict[tuple[int, object], tuple[float, int]] = {}
            chosen: dict[int, int] = {}
            for row, i in enumerate(chunk):
                for pos in order[row]:
                    key = people.keys[pos]
                    if key in rejected.get(face_keys[i], ()) or people.has_photo(pos, face_photos[i]):
                        continue
                    chosen[i] = pos
                    break
            # one face per photo per person within the chunk: the most similar wins
            for i, pos in chosen.items():
                claim = (pos, face_photos[i])
                sim = float(faces[i] @ centroids[pos])
                if claim not in claims or claims[claim][0] < sim:
                    claims[claim] = (sim, i)
            winners = {i for _, i in claims.values()}
            joined_rows: dict[int, list[int]] = defaultdict(list)
            for i in winners:
                joined_rows[chosen[i]].append(i)
            for pos, members in joined_rows.items():
                key = people.keys[pos]
                people.add_person(key, faces[members], (face_photos[m] for m in members))
                for m in members:
                    outcome.joined[face_keys[m]] = key
            leftover = [i for i in chunk if i not in winners]
        if not leftover:
            continue
        # 2. group the leftovers with the unknown faces that resemble them
        candidates = list(leftover)
        if pool_idx:
            pool = np.asarray(pool_idx)
            best = np.full(len(pool), -1.0, dtype=np.float32)
            for block in range(0, len(pool), 8192):
                part = pool[block:block + 8192]
                best[block:block + len(part)] = (faces[part] @ faces[leftover].T).max(axis=1)
            near = pool[best >= params.link_threshold]
            candidates.extend(int(i) for i in near)
        vectors = faces[candidates]
        labels = _average_linkage_groups(vectors, params.link_threshold)
        groups: dict[int, list[int]] = defaultdict(list)
        for local, label in enumerate(labels):
            groups[int(label)].append(local)
        photos_local = [face_photos[i] for i in candidates]
        placed: set[int] = set()
        kept_groups = []
        for members in groups.values():
            members, _evicted = _split_same_photo(members, vectors, photos_local)
            if len(members) >= params.min_people_size:
                kept_groups.append([candidates[m] for m in members])
        # a group may be more of someone already known: average linkage between the group and each
        # person (the dot product of their means), as if clustered in one go
        known = len(people)
        if known and kept_groups:
            group_means = np.stack([faces[g].mean(axis=0) for g in kept_groups])
            group_sims = group_means @ people.means().T
            group_top = _above(group_sims, params.join_threshold)
        for g, global_members in enumerate(kept_groups):
            target = None
            if known:
                target = _best_person_for_group(people, group_top[g], global_members, face_keys,
                                                face_photos, rejected)
            if target is not None:
                people.add_person(target, faces[global_members], (face_photos[m] for m in global_members))
                for m in global_members:
                    outcome.joined[face_keys[m]] = target
                placed.update(global_members)
                continue
            key = new_person_key(new_count)
            new_count += 1
            people.add_person(key, faces[global_members], (face_photos[m] for m in global_members))
            outcome.new_people.append([face_keys[m] for m in global_members])
            placed.update(global_members)
        pool_set = set(pool_idx)
        pool_set.difference_update(placed)
        pool_set.update(i for i in leftover if i not in placed)
        pool_idx = sorted(pool_set)
        # 3. a face the grouping left alone may still fit a group's centroid (average linkage
        # judges a face against all members, the join step against the group as a whole)
        if placed and pool_idx and params.rejoin:
            rejoined = cluster_incrementally(people, faces[pool_idx], [face_keys[i] for i in pool_idx],
                                             [face_photos[i] for i in pool_idx], rejected,
                                             _join_only(params))
            for key, person in rejoined.joined.items():
                outcome.joined[key] = person
            joined_keys = set(rejoined.joined)
            pool_idx = [i for i in pool_idx if face_keys[i] not in joined_keys]
    outcome.unknown = [face_keys[i] for i in pool_idx]
    return outcome


# -- on the catalog ------------------------------------------------------------------------------

@dataclass
class ClusteringResult:
    model: str
    #: "pending" (the faces no clustering has seen, and unknown faces resembling them) or "all"
    scope: str = "pending"
    faces_considered: int = 0
    #: unknown faces compared (one dot product each) to find those resembling the pending faces
    unknown_compared: int = 0
    joined: int = 0
    new_people: int = 0
    unknown: int = 0
    #: people whose faces changed (their suggested references may need a refresh)
    touched_people: set[int] = field(default_factory=set)


def has_pending_faces(session, model: str) -> bool:
    """Whether any face of `model` waits for clustering (an index lookup: cheap in any catalog)."""
    from sqlalchemy import select

    from engine.catalog.models import Face, Photo, PhotoStatus

    return session.scalar(select(Face.id).join(Photo, Photo.id == Face.photo_id)
                          .where(Face.embedding_model == model, Face.clustered.is_(False),
                                 Photo.status != PhotoStatus.unreadable).limit(1)) is not None


def cluster_catalog(catalog, model: str, scope: str = "pending", params: ClusterParams | None = None,
                    on_wait=None) -> ClusteringResult:
    """Cluster `model`'s faces in `catalog`, one process at a time (see engine.catalog.locks).

    Another process clustering the same catalog is waited for (`on_wait(message)` is told, default a
    log warning); the whole read-decide-write runs under the database's write lock, so an edit (merge,
    confirm, …) or another scan's clustering never interleaves with it. With nothing pending, a
    "pending" clustering returns at once without waiting for anyone.
    """
    from engine.catalog.locks import catalog_lock, hold_write_lock

    if scope == "pending":
        with catalog.session() as session:
            if not has_pending_faces(session, model):
                return ClusteringResult(model=model, scope=scope)
    with catalog_lock(catalog, "clustering", f"clustering {model} faces", on_wait=on_wait):
        with catalog.transaction() as session:
            hold_write_lock(session)
            return cluster_faces(session, model, params, scope=scope)


def cluster_faces(session, model: str, params: ClusterParams | None = None,
                  scope: str = "pending") -> ClusteringResult:
    """Place faces of `model` that are in no person yet (see the module doc). Flushes, no commit.

    scope "pending": the faces no clustering has seen yet (`Face.clustered` False: what the last
    scans added or changed), plus the unknown faces resembling one of them (within the grouping
    threshold), which may now form a person with them. Other unknown faces are not re-tried, so the
    work follows what changed, not how many faces are unknown. scope "all": every face in no person
    (the full re-cluster). Either way every face considered is marked clustered. The caller should
    hold the clustering lock (`cluster_catalog` does).
    """
    from sqlalchemy import select, update

    from engine.catalog.models import Assignment, AssignmentOrigin, Face, Photo, PhotoStatus

    if scope not in ("pending", "all"):
        raise ValueError(f"unknown clustering scope {scope!r}")
    params = params or params_for(model)
    result = ClusteringResult(model=model, scope=scope)
    if scope == "pending" and not has_pending_faces(session, model):
        return result
    positive = (AssignmentOrigin.machine, AssignmentOrigin.confirmed)
    rows = session.execute(
        select(Face.id, Face.photo_id, Face.embedding, Face.clustered, Assignment.person_id, Assignment.origin)
        .join(Photo, Photo.id == Face.photo_id)
        .outerjoin(Assignment, Assignment.face_id == Face.id)
        .where(Face.embedding_model == model, Photo.status != PhotoStatus.unreadable)
    ).all()
    placed: dict[int, int] = {}
    rejected: dict[int, set] = defaultdict(set)
    info: dict[int, tuple[int, bytes]] = {}
    pending: set[int] = set()
    for face_id, photo_id, embedding, clustered, person_id, origin in rows:
        info[face_id] = (photo_id, embedding)
        if not clustered:
            pending.add(face_id)
        if person_id is None:
            continue
        if origin in positive:
            placed[face_id] = person_id
        else:
            rejected[face_id].add(person_id)
    free = [face_id for face_id in info if face_id not in placed]
    if scope == "pending":
        new = [f for f in free if f in pending]
        old_unknown = [f for f in free if f not in pending]
        result.unknown_compared = len(old_unknown)
        free = new + _resembling(old_unknown, new, info, params.link_threshold)
    # faces placed by the user since they were stored need no clustering either
    mark = sorted(pending | set(free))
    result.faces_considered = len(free)
    if free:
        _place(session, model, params, free, placed, rejected, info, result)
    for start in range(0, len(mark), 500):
        session.execute(update(Face).where(Face.id.in_(mark[start:start + 500])).values(clustered=True))
    session.flush()
    log.info("clustering %s (%s): %d faces, %d joined people, %d new people, %d unknown", model, scope,
             result.faces_considered, result.joined, result.new_people, result.unknown)
    return result


def _resembling(candidates: list[int], targets: list[int], info: dict, threshold: float) -> list[int]:
    """The `candidates` whose embedding reaches `threshold` cosine with at least one of `targets`."""
    if not candidates or not targets:
        return []
    target_vectors = _normalise(np.stack([np.frombuffer(info[f][1], dtype="<f4") for f in targets]))
    out = []
    for start in range(0, len(candidates), 8192):
        block = candidates[start:start + 8192]
        vectors = _normalise(np.stack([np.frombuffer(info[f][1], dtype="<f4") for f in block]))
        best = (vectors @ target_vectors.T).max(axis=1)
        out.extend(f for f, b in zip(block, best) if b >= threshold)
    return out


def _place(session, model: str, params: ClusterParams, free: list[int], placed: dict[int, int],
           rejected: dict[int, set], info: dict, result: ClusteringResult) -> None:
    from sqlalchemy import select

    from engine.catalog.models import Assignment, AssignmentOrigin, Person

    dim = len(np.frombuffer(info[free[0]][1], dtype="<f4"))
    people = PeopleIndex(dim)
    by_person: dict[int, list[int]] = defaultdict(list)
    for face_id, person_id in placed.items():
        by_person[person_id].append(face_id)
    model_people = set(session.scalars(select(Person.id).where(Person.embedding_model == model)))
    keys = [p for p in by_person if p in model_people]
    if keys:
        sums = np.stack([np.sum([np.frombuffer(info[f][1], dtype="<f4") for f in by_person[p]], axis=0)
                         for p in keys])
        counts = np.array([len(by_person[p]) for p in keys], dtype=np.float64)
        people.add_people(keys, sums, counts, [{info[f][0] for f in by_person[p]} for p in keys])
    free = sorted(free)
    vectors = np.stack([np.frombuffer(info[f][1], dtype="<f4") for f in free])
    outcome = cluster_incrementally(people, vectors, free, [info[f][0] for f in free], rejected, params)
    for face_id, person_id in outcome.joined.items():
        if isinstance(person_id, tuple):  # a person made earlier in this same run
            continue
        session.add(Assignment(face_id=face_id, person_id=person_id, origin=AssignmentOrigin.machine))
        result.touched_people.add(person_id)
    created: dict[object, Person] = {}
    for i, members in enumerate(outcome.new_people):
        person = Person(embedding_model=model)
        session.add(person)
        created[("new", i)] = person
        session.flush()
        for face_id in members:
            session.add(Assignment(face_id=face_id, person_id=person.id, origin=AssignmentOrigin.machine))
        result.touched_people.add(person.id)
    for face_id, key in outcome.joined.items():
        if isinstance(key, tuple):
            person = created[key]
            session.add(Assignment(face_id=face_id, person_id=person.id, origin=AssignmentOrigin.machine))
    result.joined = len(outcome.joined)
    result.new_people = len(outcome.new_people)
    result.unknown = len(outcome.unknown)
    session.flush()
