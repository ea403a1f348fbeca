"""Album scan speed and scale: the 12 MP throughput against a naive script, re-scans in a large catalog,
an unchanged re-scan of a 10,000-photo tree, clustering 100,000 embeddings.

    python bench/scan.py [--shared ../shared] [--only 12mp,rescan,tree,clustering,insightface] [--photos 10000]
                         [--embeddings 100000] [--catalog-faces 100000]

1. 12mp: the 57 JPEGs of deepface_ids and misc_celeb_ids, Lanczos-upscaled to 4000 px on the long side,
   saved at q=92 with their EXIF, every fourth stored sideways with EXIF orientation 6. Timed in the same
   run: the naive single-process dlib script (full decode, HOG at a 4 MP budget, 68 landmarks, embed
   each face), `faceme scan --faces dlib` with the default workers, and `faceme scan --workers 1`
   (whose faces — count and boxes — the multi-process scan must equal).
2. rescan: a one-photo album scanned into a small catalog and into a catalog of `--catalog-faces`
   faces (30 % unknown, synthetic rows beside the real photo), then re-scanned unchanged with
   `faceme scan` in a fresh process; the two times must be within 2x.
3. tree: `--photos` files made as hard links of the lfw_subset photos (410 distinct contents) in
   nested folders under a temporary folder. First scan (distinct photos are decoded and analysed with
   dlib; the copies are recognised by content hash and take their faces from the first), then an
   unchanged re-scan in a fresh process, which must decode nothing: it counts calls to read_image and
   content_hash and reports its peak memory (VmHWM).
4. clustering: `--embeddings` synthetic L2-normalised 128-d embeddings with known identities, shaped
   like dlib's on lfw_subset (there: same person 0.942 mean cosine, different people 0.838; here
   0.942 and 0.80, with lighter tails than real faces), clustered by the same incremental code the
   catalog uses with the shipped dlib thresholds, timed, and scored with BCubed against the known
   identities.

5. insightface (only when asked for): `faceme scan` on the 12 MP set with InsightFace packs of
   buffalo_l's and antelopev2's recogniser architectures (real SCRFD det_2.5g, ArcFace R50 / R100 with
   random weights), one and two workers, and where one worker's time goes.

Timings on a shared machine are noisy: compare the ratios measured in one run; each run prints the
machine, its core count and its load average.
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


NAIVE = r"""
import sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from engine.faces.dlib_backend import DlibFaceAnalyzer
from engine.imageio import read_image
analyzer = DlibFaceAnalyzer(first_pass_pixels=None)  # one HOG pass at 4 MP, as before
analyzer._load()
paths = sorted(Path({folder!r}).glob("*.jpg"))
start = time.monotonic()
faces = 0
for path in paths:
    faces += len(analyzer.detect(read_image(path).pixels))
print(time.monotonic() - start, len(paths), faces)
"""

CLI = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]


def make_12mp_set(shared: Path, target: Path) -> list[Path]:
    """The 12 MP set (see the module doc); returns the photos, in name order."""
    from PIL import Image

    sources = (sorted((shared / "data/deepface_ids/images").rglob("*.jpg"))
               + sorted((shared / "data/misc_celeb_ids/images").rglob("*.jpg")))
    target.mkdir(parents=True, exist_ok=True)
    made = []
    for i, source in enumerate(sources):
        out = target / f"{i:03d}_{source.parent.name}_{source.stem}.jpg"
        made.append(out)
        if out.exists():
            continue
        with Image.open(source) as im:
            exif = im.getexif()
            picture = im.convert("RGB")
        scale = 4000 / max(picture.size)
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)),
                                 Image.Resampling.LANCZOS)
        if i % 4 == 1:  # stored sideways; EXIF orientation 6 turns it upright
            picture = picture.transpose(Image.Transpose.ROTATE_90)
            exif[0x0112] = 6
        else:
            exif[0x0112] = 1
        picture.save(out, quality=92, exif=exif.tobytes())
    return made


def _tree_cpu(root: int, seen: dict[int, float]) -> None:
    """Record the CPU seconds (user + system) of `root` and its descendants, read from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    parents, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    for pid in tree:
        if pid in cpu:
            seen[pid] = max(seen.get(pid, 0.0), cpu[pid])


def _run_measured(command: list[str], env: dict) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the whole process tree — workers included, stdout)."""
    start = time.monotonic()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[int, float] = {}
    while proc.poll() is None:
        if os.path.isdir("/proc"):
            _tree_cpu(proc.pid, seen)
        time.sleep(0.1)
    out, err = proc.communicate()
    wall = time.monotonic() - start
    if proc.returncode:
        raise RuntimeError(f"{command[3:]} failed: {err[-2000:]}")
    return wall, sum(seen.values()), out


def _run_scan(args: list[str], env: dict) -> float:
    return _run_measured([*CLI, "scan", *args], env)[0]


def _faces_of(db: Path) -> dict[str, list[tuple]]:
    import sqlite3

    with sqlite3.connect(db) as con:
        rows = con.execute("select p.path, f.x1, f.y1, f.x2, f.y2 from faces f join photos p on p.id = f.photo_id "
                           "order by p.path, f.x1, f.y1").fetchall()
        people = con.execute("select count(*) from people").fetchone()[0]
    out: dict[str, list[tuple]] = {}
    for path, *box in rows:
        out.setdefault(Path(path).name, []).append(tuple(round(v, 1) for v in box))
    return out, people


def bench_12mp(shared: Path, keep: Path | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="faceme-12mp-"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        photos = make_12mp_set(shared, (keep or tmp) / "12mp")
        folder = photos[0].parent
        naive_wall, naive_cpu, out = _run_measured(
            [sys.executable, "-c", NAIVE.format(root=str(ROOT), folder=str(folder))], env)
        naive_s, n, naive_faces = (float(v) if i == 0 else int(v) for i, v in enumerate(out.split()))
        one_s, one_cpu, _ = _run_measured([*CLI, "scan", str(folder), "--catalog", str(tmp / "one.sqlite3"),
                                           "--faces", "dlib", "--workers", "1"], env)
        multi_s, multi_cpu, _ = _run_measured([*CLI, "scan", str(folder), "--catalog", str(tmp / "multi.sqlite3"),
                                               "--faces", "dlib"], env)
        multi, multi_people = _faces_of(tmp / "multi.sqlite3")
        one, one_people = _faces_of(tmp / "one.sqlite3")
        same = multi == one and multi_people == one_people
        faces = sum(len(v) for v in multi.values())
        cores = os.cpu_count() or 1
        print(f"| naive script: one process, full decode, HOG at 4 MP, embed ({n} photos, 12 MP) | {naive_s:.1f} s "
              f"| {n / naive_s:.2f} photos/s, {naive_faces} faces; {naive_cpu / n:.3f} CPU-s per photo |")
        print(f"| `faceme scan --workers 1` (reduced decode, two-pass HOG) | {one_s:.1f} s | {n / one_s:.2f} photos/s "
              f"({naive_s / one_s:.2f}x the naive script); {one_cpu / n:.3f} CPU-s per photo (whole command) |")
        print(f"| `faceme scan` (default: {cores} workers) | {multi_s:.1f} s | **{n / multi_s:.2f} photos/s**, "
              f"{faces} faces, {multi_people} people; **{naive_s / multi_s:.2f}x** the naive script; "
              f"{multi_cpu / n:.3f} CPU-s per photo, all processes; same faces (count and boxes) and people as "
              f"`--workers 1`: {'yes' if same else 'NO'} |")
        print(f"| CPU work per photo, naive / `faceme scan` | {naive_cpu / multi_cpu:.2f}x | on {cores} idle cores "
              f"that is {cores * n / multi_cpu:.1f} photos/s at most (the wall-clock rows share the cores with "
              f"whatever else runs: see the load average) |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fill_catalog(db: Path, faces: int, unknown_share: float, seed: int = 0) -> None:
    """Add `faces` synthetic faces (in photos of 4 faces, 20 faces per person, `unknown_share` in no
    person) to the catalog at `db`, as clustered faces of the dlib model."""
    import sqlite3

    vectors, labels = synthetic(faces, per_person=20, seed=seed)
    known = int(faces * (1 - unknown_share))
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA synchronous=OFF")
        photo_rows = [(f"/synthetic/{i // 1000:03d}/{i:06d}.jpg", 1000, 0, "x" * 64, "ok", "dlib/resnet-128",
                       "2026-01-01 00:00:00") for i in range(0, faces, 4)]
        con.executemany("insert into photos (path, size, mtime_ns, content_hash, status, analysed_with, scanned_at) "
                        "values (?, ?, ?, ?, ?, ?, ?)", photo_rows)
        first_photo = con.execute("select min(id) from photos where path like '/synthetic/%'").fetchone()[0]
        people = {}
        for label in np.unique(labels[:known]):
            people[int(label)] = con.execute("insert into people (hidden, embedding_model, created_at) values "
                                             "(0, 'dlib/resnet-128', '2026-01-01')").lastrowid
        for i in range(faces):
            face_id = con.execute(
                "insert into faces (photo_id, x1, y1, x2, y2, score, landmarks, quality, sharpness, frontalness, yaw, "
                "embedding, embedding_model, clustered, created_at) values (?, 0, 0, 100, 100, 1, '[]', 0.5, 0.5, 1, 0, "
                "?, 'dlib/resnet-128', 1, '2026-01-01')",
                (first_photo + i // 4, vectors[i].astype("<f4").tobytes())).lastrowid
            if i < known:
                con.execute("insert into assignments (face_id, person_id, origin, created_at) values "
                            "(?, ?, 'machine', '2026-01-01')", (face_id, people[int(labels[i])]))


RESCAN_ONE = r"""
import sys, time
start = time.monotonic()
sys.path.insert(0, {root!r})
from engine.catalog.db import open_catalog
from engine.catalog.scanner import scan
catalog = open_catalog({db!r})
opened = time.monotonic()
result = scan(catalog, [{album!r}], workers=1, analyzer=__import__("engine.faces.dlib_backend",
              fromlist=["x"]).DlibFaceAnalyzer())
done = time.monotonic()
peak = [int(l.split()[1]) // 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(f"{{done - opened:.3f}} {{done - start:.3f}} {{result.unchanged}} {{result.clustering.faces_considered}} {{peak}}")
"""


def bench_rescan(shared: Path, catalog_faces: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="faceme-rescan-"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        album = tmp / "album"
        album.mkdir()
        shutil.copy2(shared / "data/deepface_ids/images/person_01/img1.jpg", album / "img1.jpg")
        rows = []
        for name, faces in (("small", 0), ("large", catalog_faces)):
            db = tmp / f"{name}.sqlite3"
            from engine.catalog.db import open_catalog

            open_catalog(db).close()
            if faces:
                _fill_catalog(db, faces, unknown_share=0.3)
            _run_scan([str(album), "--catalog", str(db), "--faces", "dlib", "--workers", "1"], env)
            best = None
            for _ in range(3):
                out = subprocess.run([sys.executable, "-c", RESCAN_ONE.format(root=str(ROOT), db=str(db),
                                                                              album=str(album))],
                                     env=env, check=True, capture_output=True, text=True).stdout.split()
                if best is None or float(out[0]) < float(best[0]):
                    best = out
            rows.append((name, faces, best))
        small, large = float(rows[0][2][0]), float(rows[1][2][0])
        small_total, large_total = float(rows[0][2][1]), float(rows[1][2][1])
        for name, faces, (scan_s, total_s, unchanged, considered, peak) in rows:
            print(f"| unchanged one-photo re-scan, {name} catalog ({faces + 1:,} faces"
                  f"{', 30 % unknown' if faces else ''}; best of 3, fresh process) | {float(scan_s):.3f} s scan "
                  f"({float(total_s):.2f} s with start-up) | {unchanged} unchanged, {considered} faces clustered, "
                  f"peak memory {peak} MB |")
        print(f"| ratio large / small catalog | **{large / small:.2f}x** scan, {large_total / small_total:.2f}x "
              f"whole process | target ≤ 2x |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


INSIGHTFACE_COSTS = r"""
import sys, time, glob
sys.path.insert(0, {root!r})
import numpy as np
from engine.faces.insightface_backend import InsightFaceAnalyzer
from engine.faces.photo_analysis import analyse_photo
analyzer = InsightFaceAnalyzer({pack!r}, providers=["CPUExecutionProvider"], threads=1)
photos = sorted(glob.glob({folder!r} + "/*.jpg"))[:12]
analyse_photo(photos[0], analyzer)
detect = embed = 0.0
faces = 0
original_embed = analyzer._embed_bgr
def timed(*a, **k):
    global embed
    t = time.perf_counter(); r = original_embed(*a, **k); embed += time.perf_counter() - t; return r
analyzer._embed_bgr = timed
start = time.perf_counter()
for path in photos:
    faces += len(analyse_photo(path, analyzer, thumbnails=False).faces)
total = time.perf_counter() - start
print(len(photos), faces, total, embed)
"""


def bench_insightface(shared: Path, keep: Path | None) -> None:
    """`faceme scan` with InsightFace packs of buffalo_l's and antelopev2's recogniser architectures: the
    real SCRFD det_2.5g from ../shared/models (their own det_10g / scrfd_10g are not available here) and
    an ArcFace IResNet-50 (w600k_r50's layout) or IResNet-100 (glintr100's) with random weights
    (bench/identity_thresholds.export_arcface_r50): what such scans cost on this CPU. The faces'
    identities mean nothing (random weights); their count and boxes are the real detector's."""
    sys.path.insert(0, str(ROOT / "bench"))
    from identity_thresholds import export_arcface_r50

    tmp = Path(tempfile.mkdtemp(prefix="faceme-insightface-scan-"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        photos = make_12mp_set(shared, (keep or tmp) / "12mp")
        folder = photos[0].parent
        n = len(photos)
        for name, depth, recogniser in (("buffalo_l", 50, "w600k_r50"), ("antelopev2", 100, "glintr100")):
            pack = tmp / "models" / "insightface" / name
            pack.mkdir(parents=True)
            shutil.copyfile(shared / "models/insightface_scrfd/det_2.5g.onnx", pack / "det_2.5g.onnx")
            export_arcface_r50(pack / f"{recogniser}.onnx", depth=depth)
            for workers in ("1", "2"):
                db = tmp / f"{name}-{workers}.sqlite3"
                wall, cpu, _ = _run_measured([*CLI, "scan", str(folder), "--catalog", str(db), "--faces", name,
                                              "--models", str(tmp / "models"), "--workers", workers], env)
                faces = sum(len(v) for v in _faces_of(db)[0].values())
                print(f"| `faceme scan --faces {name} --workers {workers}` (SCRFD det_2.5g + ArcFace R{depth} of random "
                      f"weights, onnxruntime CPU) | {wall:.1f} s | **{n / wall:.2f} photos/s**, {faces} faces; "
                      f"{cpu / n:.3f} CPU-s per photo (all processes) |")
            out = subprocess.run([sys.executable, "-c", INSIGHTFACE_COSTS.format(root=str(ROOT), pack=str(pack),
                                                                                 folder=str(folder))],
                                 env=env, check=True, capture_output=True, text=True).stdout.split()
            photos_timed, faces_timed, total, embed = int(out[0]), int(out[1]), float(out[2]), float(out[3])
            print(f"| where one worker's time goes, R{depth} ({photos_timed} photos, {faces_timed} faces, "
                  f"analyse_photo, one thread) | {total / photos_timed * 1000:.0f} ms per photo | ArcFace "
                  f"R{depth} {embed / max(faces_timed, 1) * 1000:.0f} ms per face ({embed / total:.0%}); decode, "
                  f"SCRFD det_2.5g, thumbnail and the rest {(total - embed) / photos_timed * 1000:.0f} ms per photo |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--only", default="12mp,rescan,tree,clustering",
                        help="comma-separated parts to run: 12mp, rescan, tree, clustering, insightface "
                             "(not run by default: a pack of buffalo_l's architecture with random weights)")
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--embeddings", type=int, default=100_000)
    parser.add_argument("--catalog-faces", type=int, default=100_000)
    parser.add_argument("--keep-12mp", type=Path, help="make (or reuse) the 12 MP set in this folder")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"# scan benchmarks — {platform.node()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"load average at start {load[0]}")
    print("| what | time | figures |")
    print("|---|---|---|")
    if "12mp" in parts:
        bench_12mp(args.shared, args.keep_12mp)
    if "insightface" in parts:
        bench_insightface(args.shared, args.keep_12mp)
    if "rescan" in parts:
        bench_rescan(args.shared, args.catalog_faces)
    if "clustering" in parts:
        bench_clustering(args.embeddings)
    if "tree" in parts:
        bench_tree(args.shared, args.photos)
    return 0


if __name__ == "__main__":
    sys.exit(main())
