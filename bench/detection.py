"""Face detection on ../shared/data/group_photos: recall of the annotated faces and false positives.

Backends, each at a few settings (the chosen default first):
- InsightFace backend (engine.faces.insightface_backend.InsightFaceAnalyzer) with the real SCRFD
  det_500m detector from ../shared/models/insightface_scrfd (the same file as in InsightFace's
  buffalo_s/buffalo_sc packs; antelopev2's scrfd_10g is not available here). The analyzer needs a
  recognition model beside the detector: a tiny ArcFace-shaped ONNX is exported for routing only
  (embeddings are not used here).
- dlib default (engine.faces.dlib_backend.DlibFaceAnalyzer): HOG detector + 68-point landmarks.

Ground truth: face_boxes.json (6 PASCAL VOC photos from dlib's examples, 32 faces, boxes as
left/top/width/height + 68 landmarks). A detection matches an annotated face when IoU >= 0.3 (SCRFD
boxes include the forehead and chin, dlib's annotation boxes are tight squares: matched pairs sit at
IoU 0.4–0.7) — greedy, best IoU first. "Unmatched" detections in those photos may be real faces the
annotators left out (their note: very small faces may be unlabelled). The dogs photo has no human
face: every detection there is a false positive. For the photos without boxes the face count from
the manifest is shown beside the number of detections.
Landmark error: mean distance of the 5 landmarks to the 5 points derived from the annotated 68
(eye centres, nose tip 30, mouth corners 48/54), divided by the annotated inter-ocular distance.

    .venv/bin/python bench/detection.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IOU_MATCH = 0.3
UNANNOTATED_COUNTS = {"insightface_t1.jpg": 6, "deepface_couple.jpg": 2,
                      "deepface_selfie-many-people.jpg": None, "gpen_Solvay_conference_1927.png": 29}


def iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(x2 - x1, 0) * max(y2 - y1, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def five_from_68(points: np.ndarray) -> np.ndarray:
    return np.stack([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]])


def load_truth(shared: Path) -> dict[str, list[dict]]:
    data = json.loads((shared / "data/group_photos/face_boxes.json").read_text())
    truth = {}
    for key, entry in data.items():
        faces = []
        for box in entry["boxes_xywh"]:
            x, y, w, h = box["left"], box["top"], box["width"], box["height"]
            faces.append({"box": (x, y, x + w, y + h), "landmarks": five_from_68(np.array(box["landmarks68"], float))})
        truth[Path(key).name] = faces
    return truth


def evaluate(detect, images: dict[str, np.ndarray], truth: dict[str, list[dict]]) -> dict:
    found = matched = extra = dogs = 0
    errors, counts, seconds = [], {}, 0.0
    for name, pixels in images.items():
        started = time.perf_counter()
        faces = detect(pixels)
        seconds += time.perf_counter() - started
        if name in truth:
            pairs = sorted(((iou(f.box, t["box"]), i, j) for i, f in enumerate(faces)
                            for j, t in enumerate(truth[name])), reverse=True)
            used_d, used_t = set(), set()
            for value, i, j in pairs:
                if value < IOU_MATCH or i in used_d or j in used_t:
                    continue
                used_d.add(i)
                used_t.add(j)
                t = truth[name][j]
                ocular = np.linalg.norm(t["landmarks"][1] - t["landmarks"][0])
                errors.append(float(np.mean(np.linalg.norm(faces[i].landmarks - t["landmarks"], axis=1)) / ocular))
            found += len(truth[name])
            matched += len(used_t)
            extra += len(faces) - len(used_d)
        elif "dogs" in name:
            dogs += len(faces)
        else:
            counts[name] = len(faces)
    return {"recall": matched / found, "matched": matched, "annotated": found, "unmatched": extra,
            "dogs": dogs, "nme": float(np.mean(errors)) if errors else float("nan"), "counts": counts,
            "seconds": seconds}


def scrfd_analyzer(shared: Path, det_thresh: float, det_size: int, folder: Path):
    from engine.faces.insightface_backend import InsightFaceAnalyzer

    return InsightFaceAnalyzer(folder, providers=["CPUExecutionProvider"], det_size=det_size, det_thresh=det_thresh)


def build_pack_folder(shared: Path, folder: Path) -> Path:
    import shutil

    from engine.testing.tiny_pack import export_tiny_arcface

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shared / "models/insightface_scrfd/det_500m.onnx", folder / "det_500m.onnx")
    export_tiny_arcface(folder / "tiny_arcface.onnx")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = parser.parse_args(argv)
    from engine.faces.dlib_backend import DlibFaceAnalyzer
    from engine.imageio import read_image

    folder = args.shared / "data/group_photos/images"
    images = {p.name: read_image(p).pixels for p in sorted(folder.iterdir()) if p.is_file()}
    truth = load_truth(args.shared)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pack = build_pack_folder(args.shared, Path(tmp) / "scrfd")
        for det_size, thresh in ((640, 0.5), (640, 0.6), (640, 0.4), (480, 0.5), (800, 0.5), (1024, 0.5)):
            analyzer = scrfd_analyzer(args.shared, thresh, det_size, pack)
            rows.append((f"SCRFD det_500m, input {det_size}, score >= {thresh}",
                         evaluate(analyzer.detect, images, truth)))
    for upsample, min_score in ((1, 0.0), (0, 0.0), (2, 0.0), (1, 0.3)):
        analyzer = DlibFaceAnalyzer(upsample=upsample, min_score=min_score)
        rows.append((f"dlib HOG, upsample {upsample}, score >= {min_score}",
                     evaluate(lambda px, a=analyzer: a.detect(px, embed=False), images, truth)))

    print(f"# detection on group_photos — {date.today()}, {platform.machine()}, {platform.processor() or ''} "
          f"python {platform.python_version()}")
    names = list(rows[0][1]["counts"])
    header = ("| backend and setting | recall (annotated) | unmatched in annotated photos | dogs photo | "
              "landmark error (NME) | " + " | ".join(f"{n} ({UNANNOTATED_COUNTS.get(n) or '?'})" for n in names)
              + " | time (s, 11 photos) |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for label, r in rows:
        counts = " | ".join(str(r["counts"][n]) for n in names)
        print(f"| {label} | {r['recall']:.3f} ({r['matched']}/{r['annotated']}) | {r['unmatched']} | {r['dogs']} | "
              f"{r['nme']:.3f} | {counts} | {r['seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
