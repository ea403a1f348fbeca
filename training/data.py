"""Training data: which ground truths exist, which references each may use, and the torch dataset.

Two layouts:
- `ffhq`: ground truths `gt_dir/<id>.png` (any depth; the file stem is the FFHQ id) and the released
  FFHQRef references `ref_dir/target_pose_<i>/target_pose_<i>_<j>/<id>.png`; a sample's pool is its
  ground truth plus every FFHQRef image with its id.
- `identity_folders`: `gt_dir/<identity>/<image>`; every image is a sample and its pool is every image
  of the same identity (itself included).

Per sample, `refs_per_sample` (4) references are drawn from the pool — all different when the pool is
large enough, with repeats otherwise; each batch then keeps a random 1–4 of them (`trim_references`).
All per-sample randomness (degradation, reference choice) comes from a generator seeded by
(seed, epoch, index), so a sample is the same whatever worker or process loads it, and a resumed run
sees exactly the data the uninterrupted run would have.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from engine.errors import UsageError
from training.degrade import DegradationRanges, degrade
from training.embeddings import EmbeddingTable
from training.prepare import IMAGE_SUFFIXES, read_rgb

log = logging.getLogger(__name__)

FFHQREF_SUBSET = re.compile(r"^target_pose_(\d+)$")
FFHQREF_GROUP = re.compile(r"^target_pose_(\d+)_(\d+)$")


@dataclass(frozen=True)
class Sample:
    """One training target: its ground truth and its reference pool, as embedding-table keys."""

    name: str
    gt: str
    pool: tuple[str, ...]


@dataclass(frozen=True)
class DataIndex:
    """Every image the data uses (key → file) and the samples built on them."""

    images: dict[str, Path]
    samples: list[Sample]


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def ffhqref_images(ref_dir: Path) -> dict[str, list[Path]]:
    """FFHQ id → its FFHQRef references, read from `target_pose_<i>/target_pose_<i>_<j>/<id>.png`."""
    by_id: dict[str, list[Path]] = defaultdict(list)
    if not ref_dir.is_dir():
        raise UsageError("the FFHQRef folder does not exist", ref_dir)
    for subset in sorted(ref_dir.iterdir()):
        if not (subset.is_dir() and FFHQREF_SUBSET.match(subset.name)):
            continue
        for group in sorted(subset.iterdir()):
            m = FFHQREF_GROUP.match(group.name)
            if not (group.is_dir() and m and m.group(1) == FFHQREF_SUBSET.match(subset.name).group(1)):
                log.warning("%s: not a target_pose_<i>_<j> folder of %s, ignored", group, subset.name)
                continue
            for image in sorted(group.iterdir()):
                if image.suffix.lower() in IMAGE_SUFFIXES:
                    by_id[image.stem].append(image)
    return dict(by_id)


def index_ffhq(gt_dir: Path, ref_dir: Path | None, include_gt: bool = True) -> DataIndex:
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise UsageError("the ground-truth folder does not exist", gt_dir)
    gts = _images_under(gt_dir)
    if not gts:
        raise UsageError("no images in the ground-truth folder", gt_dir)
    refs = ffhqref_images(Path(ref_dir)) if ref_dir else {}
    images: dict[str, Path] = {}
    samples = []
    for gt in gts:
        gt_key = "gt/" + gt.relative_to(gt_dir).as_posix()
        images[gt_key] = gt
        pool = [gt_key] if include_gt else []
        for ref in refs.get(gt.stem, []):
            key = "ref/" + ref.relative_to(ref_dir).as_posix()
            images[key] = ref
            pool.append(key)
        if not pool:
            log.warning("%s: no references and the ground truth is excluded from the pool; skipped", gt)
            continue
        samples.append(Sample(gt.stem, gt_key, tuple(pool)))
    log.info("FFHQ layout: %d ground truths, %d references", len(samples), len(images) - len(gts))
    return DataIndex(images, samples)


def index_identity_folders(root: Path, include_gt: bool = True) -> DataIndex:
    root = Path(root)
    if not root.is_dir():
        raise UsageError("the identity folder does not exist", root)
    images: dict[str, Path] = {}
    samples = []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        files = _images_under(person)
        keys = ["gt/" + f.relative_to(root).as_posix() for f in files]
        images.update(zip(keys, files))
        for key, f in zip(keys, files):
            pool = tuple(keys) if include_gt else tuple(k for k in keys if k != key)
            if not pool:
                log.warning("%s: the only image of its identity and the pool excludes it; skipped", f)
                continue
            samples.append(Sample(f"{person.name}/{f.stem}", key, pool))
    if not samples:
        raise UsageError("no identity sub-folders with images", root)
    return DataIndex(images, samples)


def build_index(layout: str, gt_dir: str | Path, ref_dir: str | Path | None, include_gt: bool = True) -> DataIndex:
    if layout == "ffhq":
        return index_ffhq(Path(gt_dir), Path(ref_dir) if ref_dir else None, include_gt)
    if layout == "identity_folders":
        return index_identity_folders(Path(gt_dir), include_gt)
    raise UsageError(f"unknown data layout {layout!r} (expected 'ffhq' or 'identity_folders')")


def draw_references(pool_size: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` positions in a pool of `pool_size`: all different when possible, else every pool entry
    once and random repeats for the rest; in random order."""
    if pool_size <= 0:
        raise ValueError("empty reference pool")
    if pool_size >= count:
        return rng.permutation(pool_size)[:count]
    extra = rng.integers(0, pool_size, count - pool_size)
    return rng.permutation(np.concatenate([np.arange(pool_size), extra]))


def trim_references(batch: dict[str, torch.Tensor], keep: int) -> dict[str, torch.Tensor]:
    """Keep the first `keep` references of every sample in the batch (the draws are already random)."""
    out = dict(batch)
    out["clip"] = batch["clip"][:, :keep]
    out["arcface"] = batch["arcface"][:, :keep]
    return out


def load_gt(path: Path, resolution: int) -> np.ndarray:
    image = read_rgb(path)
    h, w = image.shape[:2]
    if (h, w) != (resolution, resolution):
        interp = cv2.INTER_AREA if min(h, w) > resolution else cv2.INTER_CUBIC
        image = cv2.resize(image, (resolution, resolution), interpolation=interp)
    return image


def to_tensor(image01: np.ndarray) -> torch.Tensor:
    """HxWx3 in [0, 1] (float) or uint8 → (3, H, W) float32 in [-1, 1]."""
    x = image01.astype(np.float32) / 255.0 if image01.dtype == np.uint8 else image01.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))) * 2.0 - 1.0


class FaceMeTrainDataset(Dataset):
    """Item (index, epoch) → {"gt", "lq": (3, R, R) in [-1, 1]; "clip": (K, Dc); "arcface": (K, Da)}."""

    def __init__(self, index: DataIndex, embeddings: EmbeddingTable, resolution: int, refs_per_sample: int = 4,
                 seed: int = 0, ranges: DegradationRanges = DegradationRanges()):
        self.resolution = int(resolution)
        self.refs_per_sample = int(refs_per_sample)
        self.seed = int(seed)
        self.ranges = ranges
        self.embeddings = embeddings
        self.samples: list[Sample] = []
        self.images = index.images
        dropped = 0
        for sample in index.samples:
            pool = tuple(k for k in sample.pool if embeddings.has_face(k))
            if not pool:
                dropped += 1
                continue
            self.samples.append(Sample(sample.name, sample.gt, pool))
        if dropped:
            log.warning("%d samples dropped: no reference with a detected face in their pool", dropped)
        if not self.samples:
            raise UsageError("no usable training samples (no reference with a detected face)")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        sample = self.samples[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        gt = load_gt(self.images[sample.gt], self.resolution)
        lq = degrade(gt, rng, self.ranges).image
        picks = draw_references(len(sample.pool), self.refs_per_sample, rng)
        keys = [sample.pool[i] for i in picks]
        clip, arcface = self.embeddings.lookup(keys)
        return {"gt": to_tensor(gt), "lq": to_tensor(lq), "clip": clip, "arcface": arcface}


class EpochSampler(Sampler):
    """Yields (index, epoch) pairs, shuffled by a generator seeded with (seed, epoch).

    Carrying the epoch in each key lets the dataset seed its per-sample randomness without shared
    state between worker processes. `set_epoch` must be called before each pass."""

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True):
        self.size = int(size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(self.size) if self.shuffle
                 else np.arange(self.size))
        return iter([(int(i), self.epoch) for i in order])
