"""Thresholds of the identity check, measured on real faces, and its cost per face.

    python bench/identity_thresholds.py [--shared ../shared] [--plot docs/images/identity_roc.png]
                                        [--arcface-pack DIR] [--embeddings CACHE.npz]

The check compares an aligned 512 crop (the restored or unrestored face) with reference faces
embedded from whole photos (engine.restore.identity_check). This script does exactly that on the
identity-labelled sets `lfw_subset` (250 px LFW photos) and `deepface_ids` (high-resolution photos):
every photo's labelled face (LFW: the one nearest the centre; deepface_ids: the largest) is found with
dlib, embedded from the whole photo (the reference side) and cut out as an FFHQ-aligned 512 crop that
the check embeds (the probe side). Pairs: probe i vs reference j, i != j; same person = genuine,
different people = impostor. Reported: both distributions, the ROC, TAR at fixed false-accept rates,
and the thresholds chosen for `kept` (similarity at 1 % false accepts: a different person passes
once in a hundred) and `drifted` (the similarity 99 % of genuine pairs exceed: a face that still
looks like the person is flagged once in a hundred). In the same run, for comparison: the same pairs
with a degraded probe (the crop reduced to 64 px and enlarged back: the size of the smallest face the
restorer accepts, a 40 px box), the 3-reference protocol the check uses (mean, and max as the alternative), and the cost of one check (one crop
embedded without detection; baseline: the crop re-detected then embedded). `--arcface-pack` times the
crop embedding with an InsightFace pack folder too (e.g. a tiny pack's insightface/antelopev2).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

log = logging.getLogger("bench.identity_thresholds")

KEPT_FALSE_ACCEPTS = 0.01
DRIFTED_GENUINE_ABOVE = 0.99
DEGRADED_SIZE = 64


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def labelled_photos(shared: Path) -> list[tuple[str, str, str]]:
    """(set name, photo path, identity) for both sets."""
    photos = []
    for name in ("lfw_subset", "deepface_ids"):
        folder = shared / "data" / name
        with open(folder / "manifest.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                photos.append((name, str(folder / row["file"]), row["identity"]))
    return photos


def labelled_face(faces, shape, set_name):
    if set_name == "lfw_subset":  # LFW labels the centred face
        cy, cx = shape[0] / 2, shape[1] / 2
        return min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2)
    return faces[0]  # largest


def degrade(crop: np.ndarray, size: int = DEGRADED_SIZE) -> np.ndarray:
    import cv2

    small = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, crop.shape[:2][::-1], interpolation=cv2.INTER_CUBIC)


def embed_all(shared: Path) -> dict[str, np.ndarray]:
    from engine.faceme.references import read_rgb
    from engine.faces.align import align_face, warp_to_crop
    from engine.faces.dlib_backend import DlibFaceAnalyzer
    from engine.restore.identity_check import IdentityCheck

    analyzer = DlibFaceAnalyzer()
    check = IdentityCheck(analyzer)
    rows = {"set": [], "identity": [], "path": [], "reference": [], "probe": [], "degraded": []}
    missed = 0
    photos = labelled_photos(shared)
    for n, (set_name, path, identity) in enumerate(photos):
        pixels = read_rgb(path)
        faces = analyzer.detect(pixels)
        if not faces:
            missed += 1
            log.info("no face found by dlib: %s", path)
            continue
        face = labelled_face(faces, pixels.shape, set_name)
        crop = warp_to_crop(pixels, align_face(face.landmarks))
        rows["set"].append(set_name)
        rows["identity"].append(f"{set_name}/{identity}")
        rows["path"].append(path)
        rows["reference"].append(face.embedding)
        rows["probe"].append(check.embed_crop(crop))
        rows["degraded"].append(check.embed_crop(degrade(crop)))
        if (n + 1) % 50 == 0:
            log.info("%d of %d photos", n + 1, len(photos))
    log.info("%d photos embedded, %d without a face found", len(rows["path"]), missed)
    return {k: np.asarray(v) for k, v in rows.items()} | {"missed": np.asarray(missed)}


def pair_scores(probe: np.ndarray, reference: np.ndarray, identity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Similarities of every probe i with every reference j != i, split into genuine and impostor."""
    sims = probe @ reference.T
    same = identity[:, None] == identity[None, :]
    off_diagonal = ~np.eye(len(identity), dtype=bool)
    return sims[same & off_diagonal], sims[~same]


def reference_set_scores(probe, reference, identity, k=3, seed=0):
    """The check's protocol: each probe against k references of its own person (other photos) and of
    each other person with at least k photos; (genuine, impostor) for the mean and the max."""
    rng = np.random.default_rng(seed)
    by_person = {p: np.flatnonzero(identity == p) for p in np.unique(identity)}
    eligible = {p: ids for p, ids in by_person.items() if len(ids) >= k}
    out = {"mean": ([], []), "max": ([], [])}
    for i in range(len(identity)):
        own = by_person[identity[i]][by_person[identity[i]] != i]
        if len(own) < k:
            continue
        sets = [(True, rng.choice(own, k, replace=False))]
        sets += [(False, rng.choice(ids, k, replace=False)) for p, ids in eligible.items() if p != identity[i]]
        for genuine, refs in sets:
            sims = reference[refs] @ probe[i]
            out["mean"][0 if genuine else 1].append(float(sims.mean()))
            out["max"][0 if genuine else 1].append(float(sims.max()))
    return {k: (np.asarray(g), np.asarray(imp)) for k, (g, imp) in out.items()}


def threshold_at_far(impostor: np.ndarray, far: float) -> float:
    """The smallest threshold t with at most `far` of the impostor scores >= t (on the score grid)."""
    ordered = np.sort(impostor)[::-1]
    allowed = int(np.floor(far * len(ordered)))
    return float(np.nextafter(ordered[allowed], np.inf)) if allowed < len(ordered) else float(ordered[-1])


def rates(genuine, impostor, threshold):
    return float(np.mean(genuine >= threshold)), float(np.mean(impostor >= threshold))


def roc(genuine, impostor):
    """(false accept rate, true accept rate) at every distinct score as the threshold, and the scores."""
    grid = np.unique(np.concatenate([genuine, impostor]))
    gen, imp = np.sort(genuine), np.sort(impostor)
    tar = 1 - np.searchsorted(gen, grid, side="left") / len(gen)
    far = 1 - np.searchsorted(imp, grid, side="left") / len(imp)
    return np.stack([far, tar], axis=1), grid


def equal_error(genuine, impostor):
    curve, grid = roc(genuine, impostor)
    gap = np.abs((1 - curve[:, 1]) - curve[:, 0])
    i = int(np.argmin(gap))
    return float((1 - curve[i, 1] + curve[i, 0]) / 2), float(grid[i])


def time_check(shared: Path, arcface_pack: Path | None, repeats: int = 20) -> list[tuple[str, float]]:
    """Median seconds per face: one aligned crop embedded by each recogniser (a check embeds two
    crops: restored and unrestored; reference embeddings are cached per person)."""
    import glob

    from engine.faceme.references import read_rgb
    from engine.faces.dlib_backend import DlibFaceAnalyzer
    from engine.restore.identity_check import IdentityCheck

    crops = [read_rgb(p) for p in sorted(glob.glob(str(shared / "data/realworld_degraded/crops/*.png")))[:repeats]]
    analyzer = DlibFaceAnalyzer()
    results = []

    def median_time(fn):
        fn(crops[0])  # warm-up: models load on first use
        times = []
        for crop in crops:
            start = time.perf_counter()
            fn(crop)
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    check = IdentityCheck(analyzer)
    results.append(("dlib: crop embedded without detection (the check)", median_time(check.embed_crop)))
    results.append(("dlib baseline: HOG detection on the crop, then embedding",
                    median_time(lambda c: analyzer.detect(c, upsample=0))))
    if arcface_pack is not None:
        from engine.faces.insightface_backend import InsightFaceAnalyzer

        arcface = IdentityCheck(InsightFaceAnalyzer(arcface_pack, providers=["CPUExecutionProvider"]))
        results.append((f"ArcFace ({arcface.model}): crop embedded without detection",
                        median_time(arcface.embed_crop)))
    results.append(("ArcFace IResNet-50 (w600k_r50's layout, random weights), onnxruntime CPU: one 112 px face",
                    time_arcface_r50()))
    return results



#: IResNet blocks per stage: buffalo_l's w600k_r50, antelopev2's glintr100
IRESNET_BLOCKS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}


def export_arcface_r50(path: Path, depth: int = 50) -> Path:
    """An ArcFace IResNet-50 in the layout of buffalo_l's w600k_r50 (3-4-14-3 blocks, 64-512 channels,
    112 px input, 512-d output) — or with `depth=100` antelopev2's glintr100 (3-13-30-3) — with random
    weights, exported to ONNX at `path`: what InsightFace's recogniser costs, without its weights
    (weights do not change the cost)."""
    import warnings

    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, inplanes, planes, stride):
            super().__init__()
            self.body = nn.Sequential(nn.BatchNorm2d(inplanes), nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(planes), nn.PReLU(planes),
                                      nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes))
            self.down = (nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
                         if stride != 1 or inplanes != planes else nn.Identity())

        def forward(self, x):
            return self.body(x) + self.down(x)

    layers, widths, inplanes = [], (64, 128, 256, 512), 64
    for planes, blocks in zip(widths, IRESNET_BLOCKS[depth]):
        layers += [Block(inplanes, planes, 2)] + [Block(planes, planes, 1) for _ in range(blocks - 1)]
        inplanes = planes
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64), *layers,
                          nn.BatchNorm2d(512), nn.Flatten(), nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512)).eval()
    with warnings.catch_warnings():  # the one-file TorchScript exporter is deprecated, still works
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.zeros(1, 3, 112, 112),), str(path), dynamo=False, opset_version=17,
                          input_names=["input.1"], output_names=["embedding"],
                          dynamic_axes={"input.1": {0: "None"}, "embedding": {0: "None"}})
    return path


def time_arcface_r50(repeats: int = 10) -> float:
    """Median seconds for one 112 px face through export_arcface_r50's model on onnxruntime's CPU
    provider, as InsightFace runs it."""
    import tempfile

    import onnxruntime

    with tempfile.TemporaryDirectory() as folder:
        path = export_arcface_r50(Path(folder) / "r50.onnx")
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    face = np.random.default_rng(0).standard_normal((1, 3, 112, 112)).astype(np.float32)
    session.run(None, {"input.1": face})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {"input.1": face})
        times.append(time.perf_counter() - start)
    return float(np.median(times))

# ---- the plot, drawn with PIL (matplotlib is not part of the environment) ------------------------

def draw_plot(path: Path, genuine, impostor, degraded, thresholds, title: str) -> None:
    from PIL import Image, ImageDraw, ImageFont

    width, height = 1200, 520
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=13)
    colours = {"genuine": (31, 119, 180), "impostor": (214, 39, 40), "degraded": (44, 160, 44)}
    draw.text((20, 10), title, fill="black", font=font)

    # left: similarity histograms
    left, top, right, bottom = 70, 60, 580, 460
    lo = float(np.floor(min(impostor.min(), degraded.min()) * 50) / 50)
    hi = 1.0
    bins = np.linspace(lo, hi, 61)
    series = [("impostor", impostor), ("genuine", genuine), ("degraded", degraded)]
    hists = {name: np.histogram(values, bins)[0] / len(values) for name, values in series}
    peak = max(h.max() for h in hists.values())

    def x_of(v):
        return left + (v - lo) / (hi - lo) * (right - left)

    def y_of(frac):
        return bottom - frac / peak * (bottom - top)

    draw.rectangle((left, top, right, bottom), outline="black")
    for name, _ in series:
        h = hists[name]
        points = []
        for b in range(len(h)):
            points += [(x_of(bins[b]), y_of(h[b])), (x_of(bins[b + 1]), y_of(h[b]))]
        draw.line(points, fill=colours[name], width=2)
    for label, value, dash in (("kept", thresholds[0], (0, 0, 0)), ("drifted", thresholds[1], (120, 120, 120))):
        x = x_of(value)
        for y in range(top, bottom, 8):
            draw.line((x, y, x, y + 4), fill=dash, width=1)
        if label == "kept":
            draw.text((x + 4, top + 4), f"{label} >= {value:.3f}", fill=dash, font=small)
        else:
            draw.text((x - 4, top + 22), f"{label} < {value:.3f}", fill=dash, font=small, anchor="ra")
    for v in np.arange(np.ceil(lo * 20) / 20, hi + 1e-9, 0.05):
        draw.line((x_of(v), bottom, x_of(v), bottom + 5), fill="black")
        draw.text((x_of(v) - 14, bottom + 8), f"{v:.2f}", fill="black", font=small)
    draw.text((left + 150, bottom + 30), "cosine similarity (dlib, L2-normalised)", fill="black", font=small)
    draw.text((left - 60, top - 22), "share of pairs per bin", fill="black", font=small)
    legend = [("genuine pairs", "genuine"), ("impostor pairs", "impostor"),
              (f"genuine, probe degraded to {DEGRADED_SIZE} px", "degraded")]
    for i, (text, name) in enumerate(legend):
        y = top + 45 + 18 * i
        draw.line((left + 10, y + 7, left + 35, y + 7), fill=colours[name], width=3)
        draw.text((left + 40, y), text, fill="black", font=small)

    # right: ROC, false accepts on a log axis
    rl, rt, rr, rb = 680, 60, 1160, 460
    draw.rectangle((rl, rt, rr, rb), outline="black")
    far_lo = 1e-4

    def rx(far):
        return rl + (np.log10(max(far, far_lo)) - np.log10(far_lo)) / -np.log10(far_lo) * (rr - rl)

    tar_lo = 0.6

    def ry(tar):
        return rb - (max(tar, tar_lo) - tar_lo) / (1 - tar_lo) * (rb - rt)

    for name, gen in (("genuine", genuine), ("degraded", degraded)):
        curve, _ = roc(gen, impostor)
        pts = list(dict.fromkeys((round(rx(f), 1), round(ry(t), 1)) for f, t in curve if f >= far_lo))
        if len(pts) > 1:
            draw.line(pts, fill=colours[name], width=2)
    for far in (1e-4, 1e-3, 1e-2, 1e-1, 1.0):
        draw.line((rx(far), rb, rx(far), rb + 5), fill="black")
        draw.text((rx(far) - 16, rb + 8), f"{far:g}", fill="black", font=small)
    for tar in np.linspace(tar_lo, 1, 5):
        draw.line((rl - 5, ry(tar), rl, ry(tar)), fill="black")
        draw.text((rl - 38, ry(tar) - 7), f"{tar:.1f}", fill="black", font=small)
    x = rx(KEPT_FALSE_ACCEPTS)
    for y in range(rt, rb, 8):
        draw.line((x, y, x, y + 4), fill="black")
    draw.text((rl + 150, rb + 30), "false accept rate (impostor pairs >= t)", fill="black", font=small)
    draw.text((rl - 40, rt - 22), "true accept rate (genuine pairs >= t)", fill="black", font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "images" / "identity_roc.png")
    parser.add_argument("--arcface-pack", type=Path, default=None,
                        help="an InsightFace pack folder whose ArcFace is timed too")
    parser.add_argument("--embeddings", type=Path, default=None,
                        help="cache file: embeddings are read from it when it exists, else written to it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    started = time.perf_counter()
    if args.embeddings is not None and args.embeddings.exists():
        data = dict(np.load(args.embeddings))
    else:
        data = embed_all(args.shared)
        if args.embeddings is not None:
            np.savez(args.embeddings, **data)
    embed_seconds = time.perf_counter() - started
    identity = data["identity"]
    genuine, impostor = pair_scores(data["probe"], data["reference"], identity)
    degraded, degraded_impostor = pair_scores(data["degraded"], data["reference"], identity)
    whole_genuine, whole_impostor = pair_scores(data["reference"], data["reference"], identity)

    kept = threshold_at_far(impostor, KEPT_FALSE_ACCEPTS)
    drifted = float(np.quantile(genuine, 1 - DRIFTED_GENUINE_ABOVE))
    kept, drifted = round(kept, 3), round(drifted, 3)
    # rounding must loosen neither rate
    while rates(genuine, impostor, kept)[1] > KEPT_FALSE_ACCEPTS:
        kept = round(kept + 0.001, 3)
    while np.mean(genuine < drifted) > 1 - DRIFTED_GENUINE_ABOVE:
        drifted = round(drifted - 0.001, 3)
    drifted = min(drifted, kept)  # a recogniser better than these rates leaves no uncertain band

    print(f"\nmachine: {cpu_name()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"photos: {len(identity)} embedded ({int(data['missed'])} without a face found by dlib), "
          f"{len(np.unique(identity))} people; embedding took {embed_seconds:.0f} s\n")
    print("| pairs | genuine | impostor | genuine median (5th pct) | impostor median (99th pct) | EER | "
          "TAR @ FAR 0.1 % | TAR @ FAR 1 % | TAR @ FAR 5 % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, gen, imp in (("aligned crop vs references (the check)", genuine, impostor),
                            (f"crop degraded to {DEGRADED_SIZE} px vs references", degraded, degraded_impostor),
                            ("baseline: whole photo vs whole photo", whole_genuine, whole_impostor)):
        eer, _ = equal_error(gen, imp)
        tars = [rates(gen, imp, threshold_at_far(imp, far))[0] for far in (0.001, 0.01, 0.05)]
        print(f"| {label} | {len(gen)} | {len(imp)} | {np.median(gen):.3f} ({np.quantile(gen, 0.05):.3f}) | "
              f"{np.median(imp):.3f} ({np.quantile(imp, 0.99):.3f}) | {eer:.3f} | "
              + " | ".join(f"{t:.3f}" for t in tars) + " |")

    print(f"\nchosen: kept >= {kept:.3f} (false accepts <= {KEPT_FALSE_ACCEPTS:.0%}), "
          f"drifted < {drifted:.3f} ({DRIFTED_GENUINE_ABOVE:.0%} of genuine pairs above)\n")
    print("| pairs | share kept | share uncertain | share drifted |")
    print("|---|---|---|---|")
    sets = reference_set_scores(data["probe"], data["reference"], identity)
    rows = [("genuine (1 reference)", genuine), ("impostor (1 reference)", impostor),
            (f"genuine, probe degraded to {DEGRADED_SIZE} px", degraded),
            (f"impostor, probe degraded to {DEGRADED_SIZE} px", degraded_impostor)]
    for how, (gen, imp) in sets.items():
        rows += [(f"genuine, {how} over 3 references", gen), (f"impostor, {how} over 3 references", imp)]
    for label, values in rows:
        k = np.mean(values >= kept)
        d = np.mean(values < drifted)
        print(f"| {label} ({len(values)}) | {k:.3f} | {1 - k - d:.3f} | {d:.3f} |")

    print("\n| cost per face | median time |")
    print("|---|---|")
    for label, seconds in time_check(args.shared, args.arcface_pack):
        print(f"| {label} | {seconds * 1000:.0f} ms |")

    title = (f"Identity check thresholds, dlib/resnet-128: {len(genuine)} genuine and {len(impostor)} impostor pairs "
             f"(lfw_subset + deepface_ids, aligned crop vs reference photo)")
    draw_plot(args.plot, genuine, impostor, degraded, (kept, drifted), title)
    print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
