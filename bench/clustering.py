"""People clustering accuracy: `faceme scan` + `faceme people list --json` scored against the manifests.

    python bench/clustering.py [--shared ../shared] [--sets lfw_subset deepface_ids] [--no-baseline]

For each identity-labelled set: scan it into a fresh catalog with the CLI (dlib default), list the
people as JSON, and score BCubed precision / recall / F1 per photo (the face nearest the photo's
centre is the labelled one, as LFW's labels describe; a photo with no detected face, or whose face is
unknown, is its own cluster). In the same run, the baseline: dlib's raw 128-d descriptors (HOG,
5-point alignment, as face_recognition computes them) + dlib's Chinese whispers at 0.5.

Threshold tuning (--tune): LFW identities are split in two halves by name (even / odd positions in
sorted order); the average-linkage threshold is chosen on half A (best F1 over a grid) and reported on
half B, on the embeddings the scan stored. It also replays those embeddings as two scans (a random 30 %,
50 % or 70 % of the photos first, the rest later) to show that incremental clustering keeps the accuracy.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bcubed(truth: dict, predicted: dict) -> tuple[float, float, float]:
    items = list(truth)
    by_pred, by_truth = defaultdict(list), defaultdict(list)
    for i in items:
        by_pred[predicted[i]].append(i)
        by_truth[truth[i]].append(i)
    precision = recall = 0.0
    for i in items:
        same_pred = by_pred[predicted[i]]
        same_truth = by_truth[truth[i]]
        precision += sum(truth[j] == truth[i] for j in same_pred) / len(same_pred)
        recall += sum(predicted[j] == predicted[i] for j in same_truth) / len(same_truth)
    precision /= len(items)
    recall /= len(items)
    return precision, recall, 2 * precision * recall / (precision + recall)


def manifest(folder: Path) -> dict[str, str]:
    """absolute photo path → identity (single-identity photos only)."""
    out = {}
    with open(folder / "manifest.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("kind", "single") != "single" or ";" in row["identity"]:
                continue
            out[str((folder / row["file"]).resolve())] = row["identity"]
    return out


def _centre_distance(box, size) -> float:
    w, h = size
    return float(np.hypot((box[0] + box[2]) / 2 - w / 2, (box[1] + box[3]) / 2 - h / 2))


def _image_size(path: str) -> tuple[int, int]:
    from engine.imageio import read_photo_info

    info = read_photo_info(path)
    return info.width, info.height


def score_listing(listing: dict, truth: dict[str, str]) -> tuple[float, float, float]:
    faces = defaultdict(list)  # photo → [(box, label)]
    for person in listing["people"]:
        for face in person["faces"]:
            faces[face["photo"]].append((face["box"], ("person", person["id"])))
    for face in listing["unassigned"]:
        faces[face["photo"]].append((face["box"], ("unknown", face["photo"], tuple(face["box"]))))
    predicted = {}
    for photo in truth:
        candidates = faces.get(photo)
        if not candidates:
            predicted[photo] = ("missed", photo)
            continue
        size = _image_size(photo)
        predicted[photo] = min(candidates, key=lambda c: _centre_distance(c[0], size))[1]
    return bcubed(truth, predicted)


def run_cli(*args) -> tuple[int, str]:
    from engine.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main([str(a) for a in args])
    return code, out.getvalue()


def dlib_descriptors(truth: dict[str, str]) -> dict[str, list]:
    """photo → [(box, raw dlib descriptor)] as face_recognition computes them (HOG ×1 upsampling,
    5-point alignment, no normalisation)."""
    from engine.faces.dlib_backend import DlibFaceAnalyzer
    from engine.imageio import read_image

    analyzer = DlibFaceAnalyzer()
    analyzer._load()
    out = {}
    for photo in truth:
        pixels = read_image(photo).pixels
        faces = []
        for rect in analyzer._detector(pixels, 1):
            shape = analyzer._shape5(pixels, rect)
            faces.append(((rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1),
                          analyzer._resnet.compute_face_descriptor(pixels, shape)))
        out[photo] = faces
    return out


def baseline(descriptors: dict[str, list], truth: dict[str, str]) -> tuple[float, float, float]:
    """dlib descriptors + Chinese whispers at 0.5 (the figure quoted in shared/README.md) on `truth`'s photos."""
    import dlib

    owners = [(photo, box) for photo in truth for box, _ in descriptors[photo]]
    labels = dlib.chinese_whispers_clustering([d for photo in truth for _, d in descriptors[photo]], 0.5)
    faces = defaultdict(list)
    for (photo, box), label in zip(owners, labels):
        faces[photo].append((box, label))
    predicted = {}
    for photo in truth:
        if not faces.get(photo):
            predicted[photo] = ("missed", photo)
            continue
        size = _image_size(photo)
        predicted[photo] = min(faces[photo], key=lambda c: _centre_distance(c[0], size))[1]
    return bcubed(truth, predicted)


def _listing(rows, owner: dict) -> dict:
    """Face rows + who owns each face id → the `faceme people list --json` shape that score_listing reads."""
    groups = defaultdict(list)
    listing = {"people": [], "unassigned": []}
    for r in rows:
        entry = {"photo": r.path, "box": [r.x1, r.y1, r.x2, r.y2]}
        if r.id in owner:
            groups[owner[r.id]].append({**entry, "confirmed": False})
        else:
            listing["unassigned"].append(entry)
    listing["people"] = [{"id": str(k), "name": None, "faces": v} for k, v in groups.items()]
    return listing


def tune(db: Path, truth: dict[str, str]) -> dict:
    """Choose link_threshold on half A of the identities, report on half B."""
    from sqlalchemy import select

    from engine.catalog.db import open_catalog
    from engine.catalog.models import Face, Photo
    from engine.people.clustering import ClusterParams, PeopleIndex, cluster_incrementally

    catalog = open_catalog(db)
    with catalog.session() as s:
        rows = s.execute(select(Face.id, Face.embedding, Face.x1, Face.y1, Face.x2, Face.y2, Photo.path)
                         .join(Photo)).all()
    catalog.close()
    names = sorted(set(truth.values()))
    half = {name: i % 2 for i, name in enumerate(names)}

    def evaluate(part: int, threshold: float):
        chosen = [r for r in rows if r.path in truth and half[truth[r.path]] == part]
        vectors = np.stack([np.frombuffer(r.embedding, "<f4") for r in chosen])
        params = ClusterParams(link_threshold=threshold, join_threshold=threshold)
        out = cluster_incrementally(PeopleIndex(vectors.shape[1]), vectors, [r.id for r in chosen],
                                    [r.path for r in chosen], {}, params)
        owner = {}
        for i, members in enumerate(out.new_people):
            owner.update({m: ("new", i) for m in members})
        owner.update(out.joined)
        listing = _listing(chosen, owner)
        part_truth = {p: n for p, n in truth.items() if half[n] == part}
        return score_listing(listing, part_truth)

    grid = [round(t, 3) for t in np.arange(0.880, 0.9451, 0.005)]
    scores_a = {t: evaluate(0, t) for t in grid}
    best = max(grid, key=lambda t: (scores_a[t][2], -t))  # ties: the lower threshold
    return {"grid": {float(t): round(scores_a[t][2], 4) for t in grid}, "chosen": float(best),
            "half_a": scores_a[best], "half_b": evaluate(1, best),
            "half_b_truth": {p: n for p, n in truth.items() if half[n] == 1}}


def incremental(db: Path, truth: dict[str, str], seeds=(0, 1, 2)) -> list[tuple[float, tuple]]:
    """Two scans instead of one: a random part of the photos first, the rest later. Replays the scan's
    stored embeddings through the clustering exactly as `cluster_faces` feeds it (each run gets every
    face that is in no person yet), with the shipped thresholds."""
    from sqlalchemy import select

    from engine.catalog.db import open_catalog
    from engine.catalog.models import Face, Photo
    from engine.people.clustering import PeopleIndex, cluster_incrementally, params_for

    catalog = open_catalog(db)
    with catalog.session() as s:
        rows = s.execute(select(Face.id, Face.embedding, Face.x1, Face.y1, Face.x2, Face.y2, Photo.path)
                         .join(Photo)).all()
    catalog.close()
    by_id = {r.id: r for r in rows}
    results = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        fraction = (0.3, 0.5, 0.7)[seed % 3]
        photos = sorted({r.path for r in rows})
        first = {p for p in photos if rng.random() < fraction}
        people, owner, unknown = PeopleIndex(128), {}, []
        parts = ([r.id for r in rows if r.path in first], [r.id for r in rows if r.path not in first])
        for run, part in enumerate(parts):
            ids = sorted(set(part) | set(unknown))
            out = cluster_incrementally(people, np.stack([np.frombuffer(by_id[i].embedding, "<f4") for i in ids]),
                                        ids, [by_id[i].path for i in ids], {}, params_for("dlib/resnet-128"),
                                        new_person_key=lambda k, run=run: (run, k))
            for k, members in enumerate(out.new_people):
                owner.update({m: (run, k) for m in members})
            owner.update(out.joined)
            unknown = list(out.unknown)
        results.append((fraction, score_listing(_listing(rows, owner), truth)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--sets", nargs="+", default=["lfw_subset", "deepface_ids"])
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--tune", action="store_true")
    args = parser.parse_args()
    print(f"# people clustering — {platform.node()} {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print("| set | photos | method | BCubed P | R | F1 | seconds |")
    print("|---|---|---|---|---|---|---|")
    tmp = Path(tempfile.mkdtemp(prefix="faceme-bench-"))
    try:
        run_sets(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def run_sets(args, tmp: Path) -> None:
    for name in args.sets:
        folder = args.shared / "data" / name
        truth = manifest(folder)
        db = tmp / f"{name}.sqlite3"
        start = time.monotonic()
        code, out = run_cli("scan", folder / "images", "--catalog", db)
        scan_seconds = time.monotonic() - start
        assert code == 0, out
        code, listed = run_cli("people", "list", "--json", "--catalog", db)
        p, r, f = score_listing(json.loads(listed), truth)
        print(f"| {name} | {len(truth)} | faceme scan + people list (dlib, average linkage) | {p:.4f} | {r:.4f} "
              f"| **{f:.4f}** | {scan_seconds:.1f} ({len(truth) / scan_seconds:.1f} photos/s) |", flush=True)
        descriptors = None
        if not args.no_baseline:
            start = time.monotonic()
            descriptors = dlib_descriptors(truth)
            p, r, f = baseline(descriptors, truth)
            print(f"| {name} | {len(truth)} | baseline: dlib + Chinese whispers 0.5 | {p:.4f} | {r:.4f} | {f:.4f} "
                  f"| {time.monotonic() - start:.1f} |", flush=True)
        if args.tune and name == "lfw_subset":
            result = tune(db, truth)
            print(f"\ntuning on LFW identities half A: F1 by threshold {result['grid']}")
            print(f"chosen {result['chosen']}: half A F1 {result['half_a'][2]:.4f}; "
                  f"held-out half B ({len(result['half_b_truth'])} photos) P {result['half_b'][0]:.4f} "
                  f"R {result['half_b'][1]:.4f} F1 {result['half_b'][2]:.4f}", flush=True)
            if descriptors is not None:
                p, r, f = baseline(descriptors, result["half_b_truth"])
                print(f"baseline on half B: P {p:.4f} R {r:.4f} F1 {f:.4f}", flush=True)
            for fraction, (p, r, f) in incremental(db, truth):
                print(f"incremental (first scan {fraction:.0%} of the photos, then the rest): "
                      f"P {p:.4f} R {r:.4f} F1 {f:.4f}", flush=True)
            print()


if __name__ == "__main__":
    sys.exit(main())
