"""Scanner and clustering scale: first scan, unchanged re-scan of a 10,000-photo tree, 100,000 embeddings.

    python bench/scan.py [--shared ../shared] [--photos 10000] [--embeddings 100000] [--skip-tree]

1. Tree: `--photos` files made as hard links of the lfw_subset photos (410 distinct contents) in
   nested folders under a temporary folder. First scan (distinct photos are decoded and analysed with
   dlib; the copies are recognised by content hash and take their faces from the first), then an
   unchanged re-scan in a fresh process, which must decode nothing: it counts calls to read_image and
   content_hash and reports its peak memory (VmHWM).
2. Clustering: `--embeddings` synthetic L2-normalised 128-d embeddings with known identities, shaped
   like dlib's on lfw_subset (there: same person 0.942 mean cosine, different people 0.838; here
   0.942 and 0.80, with lighter tails than real faces), clustered by the same incremental code the
   catalog uses with the shipped dlib thresholds, timed, and scored with BCubed against the known
   identities.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESCAN = r"""
import sys, time

def peak_mb():
    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so it would report the parent's first scan
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return -1

sys.path.insert(0, {root!r})
import engine.imageio as imageio
calls = {{"read_image": 0, "content_hash": 0}}
for name in list(calls):
    original = getattr(imageio, name)
    def counting(*a, _name=name, _original=original, **k):
        calls[_name] += 1
        return _original(*a, **k)
    setattr(imageio, name, counting)
from engine.catalog.db import open_catalog
from engine.catalog.scanner import scan
catalog = open_catalog({db!r})
before = peak_mb()
start = time.monotonic()
result = scan(catalog, [{tree!r}])
seconds = time.monotonic() - start
print(f"{{seconds:.2f}} {{result.unchanged}} {{result.files}} {{calls['read_image']}} {{calls['content_hash']}} "
      f"{{peak_mb()}} {{before}} {{result.clustering.faces_considered}}")
"""


def make_tree(shared: Path, target: Path, count: int) -> None:
    sources = sorted((shared / "data" / "lfw_subset" / "images").rglob("*.jpg"))
    for i in range(count):
        source = sources[i % len(sources)]
        folder = target / f"year-{i // 1000:02d}" / f"event-{(i // 100) % 10:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        os.link(source, folder / f"{i:05d}-{source.name}")


def bench_tree(shared: Path, count: int) -> None:
    from engine.catalog.db import open_catalog
    from engine.catalog.scanner import scan

    tmp = Path(tempfile.mkdtemp(prefix="faceme-scan-bench-"))
    try:
        tree, db = tmp / "album", tmp / "catalog.sqlite3"
        make_tree(shared, tree, count)
        catalog = open_catalog(db)
        start = time.monotonic()
        first = scan(catalog, [tree])
        first_seconds = time.monotonic() - start
        catalog.close()
        analysed = first.added - first.copies
        print(f"| first scan, {count} files ({analysed} distinct analysed, {first.copies} copies) "
              f"| {first_seconds:.1f} s | {count / first_seconds:.1f} files/s overall |")
        out = subprocess.run([sys.executable, "-c", RESCAN.format(root=str(ROOT), db=str(db), tree=str(tree))],
                             capture_output=True, text=True, check=True).stdout.split()
        seconds, unchanged, files, reads, hashes, rss, rss_before, unknown = out
        print(f"| unchanged re-scan, {files} files (fresh process) | {float(seconds):.2f} s "
              f"| {unchanged} unchanged, {reads} decoded, {hashes} hashed; peak RSS {rss} MB "
              f"({rss_before} MB after imports); {unknown} unknown faces re-tried |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def synthetic(n: int, per_person: int, dim: int = 128, seed: int = 0):
    rng = np.random.default_rng(seed)
    people = n // per_person
    common = rng.normal(size=dim)
    common /= np.linalg.norm(common)
    offsets = rng.normal(size=(people, dim)) / np.sqrt(dim)
    centres = common + 0.42 * offsets
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(people), per_person)
    faces = centres[labels] + 0.25 * rng.normal(size=(len(labels), dim)) / np.sqrt(dim)
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    order = rng.permutation(len(labels))
    return faces[order].astype(np.float32), labels[order]


def bench_clustering(n: int) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from clustering import bcubed
    from engine.people.clustering import PeopleIndex, cluster_incrementally, params_for

    faces, labels = synthetic(n, per_person=20)
    sample = faces[:2000]
    sims = sample @ sample.T
    same = labels[:2000, None] == labels[None, :2000]
    off = ~np.eye(2000, dtype=bool)
    params = params_for("dlib/resnet-128")
    start = time.monotonic()
    out = cluster_incrementally(PeopleIndex(faces.shape[1]), faces, list(range(n)), list(range(n)), {}, params)
    seconds = time.monotonic() - start
    owner = {}
    for i, members in enumerate(out.new_people):
        owner.update({m: ("new", i) for m in members})
    owner.update(out.joined)
    predicted = {i: owner.get(i, ("unknown", i)) for i in range(n)}
    p, r, f = bcubed({i: int(labels[i]) for i in range(n)}, predicted)
    print(f"| clustering {n} synthetic embeddings ({n // 20} identities × 20; same-person cosine "
          f"{sims[same & off].mean():.3f}, different {sims[~same].mean():.3f}) | {seconds:.1f} s "
          f"| {len(out.new_people)} people, {len(out.unknown)} unknown; BCubed P {p:.4f} R {r:.4f} F1 {f:.4f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--embeddings", type=int, default=100_000)
    parser.add_argument("--skip-tree", action="store_true")
    parser.add_argument("--skip-clustering", action="store_true")
    args = parser.parse_args()
    print(f"# scan and clustering scale — {platform.node()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print("| what | time | figures |")
    print("|---|---|---|")
    if not args.skip_clustering:
        bench_clustering(args.embeddings)
    if not args.skip_tree:
        bench_tree(args.shared, args.photos)
    return 0


if __name__ == "__main__":
    sys.exit(main())
