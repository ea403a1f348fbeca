"""The whole-photo repair steps (engine/repair): seconds and peak memory per 12 MP output, and the fade
correction's colour error on real photos faded with known curves.

    .venv/bin/python bench/repair_steps.py fade [--shared ../shared]
    .venv/bin/python bench/repair_steps.py steps --models DIR [--megapixels 12] [--device cpu]

`fade`: six colour photos of ../shared/data/group_photos (reduced to 800 px), each faded four ways
(washed out; magenta, yellowed and cyan casts: per-channel black point, white point and gamma);
mean CIEDE2000 to the original before and after `correct_fade` (defaults), and of the correction
applied to the unfaded original (what the correction costs a photo that was not faded).
`steps`: each step alone, in a fresh child process (peak RSS is per process), on a photo whose OUTPUT
is `--megapixels` (the input is smaller by the upscaling factor); with the tiny pack's models the
figures are the tiling and plumbing's cost, with real models the real one.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FADES = {
    "washed out": ((0.15, 0.15, 0.15), (0.85, 0.85, 0.85), (1.0, 1.0, 1.0)),
    "magenta cast": ((0.10, 0.05, 0.10), (0.95, 0.80, 0.92), (0.9, 1.1, 0.95)),
    "yellowed": ((0.12, 0.10, 0.04), (0.97, 0.90, 0.72), (0.95, 1.0, 1.2)),
    "cyan cast": ((0.04, 0.10, 0.12), (0.80, 0.92, 0.95), (1.1, 1.0, 0.95)),
}
PHOTOS = ["deepface_couple.jpg", "dlib_2007_007763.jpg", "dlib_2008_001009.jpg", "dlib_2008_001322.jpg",
          "dlib_2008_002079.jpg", "dlib_2008_004176.jpg"]


def fade(pixels, black, white, gamma):
    x = pixels.astype(np.float32) / 255.0
    b, w, g = (np.asarray(v, np.float32) for v in (black, white, gamma))
    return np.clip(np.round((b + (w - b) * x ** g) * 255.0), 0, 255).astype(np.uint8)


def fade_table(shared: Path) -> None:
    import cv2

    from engine.imageio import read_image
    from engine.repair.fade import correct_fade, delta_e2000

    photos = []
    for name in PHOTOS:
        pixels = read_image(shared / "data" / "group_photos" / "images" / name).pixels
        s = 800 / max(pixels.shape[:2])
        photos.append(cv2.resize(pixels, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else pixels)
    print(f"fade correction, {len(photos)} photos of group_photos at 800 px; {platform.node()}, {date.today()}")
    print("| fade | ΔE2000 faded | ΔE2000 corrected |")
    print("|---|---|---|")
    for label, curve in FADES.items():
        before = np.mean([delta_e2000(p, fade(p, *curve)).mean() for p in photos])
        after = np.mean([delta_e2000(p, correct_fade(fade(p, *curve))).mean() for p in photos])
        print(f"| {label} | {before:.2f} | {after:.2f} |")
    print(f"| none (correction of the original) | 0.00 | {np.mean([delta_e2000(p, correct_fade(p)).mean() for p in photos]):.2f} |")


def one_step(step: str, models_dir: str, megapixels: float, device: str) -> dict:
    from engine.repair.models import RepairModels

    models = RepairModels(models_dir, device)
    factor = {"upscale-x2": 2, "upscale-x4": 4}.get(step, 1)
    side = int((megapixels * 1e6) ** 0.5 / factor)
    rng = np.random.default_rng(0)
    pixels = np.clip(rng.normal(128, 40, (side * 3 // 4, side * 4 // 3, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros(pixels.shape[:2], np.uint8)
    mask[:, pixels.shape[1] // 2:pixels.shape[1] // 2 + 4] = 255  # one long scratch
    warm = {"mask": models.scratch_detector, "inpaint": models.inpainter, "colourise": models.colouriser,
            "upscale-x2": lambda: models.upscaler("realesrgan-x2"),
            "upscale-x4": lambda: models.upscaler("realesrgan-x4"), "fade": lambda: None}[step]
    loaded = warm()
    started = time.perf_counter()
    if step == "mask":
        from engine.repair.damage_mask import detect_damage
        detect_damage(pixels, loaded)
    elif step == "inpaint":
        from engine.repair.inpaint import inpaint
        inpaint(pixels, mask, loaded)
    elif step == "colourise":
        from engine.repair.colourise import colourise
        colourise(pixels, loaded)
    elif step == "fade":
        from engine.repair.fade import correct_fade
        correct_fade(pixels)
    else:
        from engine.repair.upscale import upscale
        upscale(pixels, loaded, factor)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"step": step, "input": f"{pixels.shape[1]}×{pixels.shape[0]}", "seconds": round(seconds, 2),
            "peak_rss_mb": round(peak)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("fade", "steps", "one"))
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--models", type=Path)
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--step")
    args = parser.parse_args(argv)
    if args.what == "fade":
        fade_table(args.shared)
        return 0
    if args.what == "one":
        print(json.dumps(one_step(args.step, str(args.models), args.megapixels, args.device)))
        return 0
    print(f"per {args.megapixels:g} MP output on {args.device}; {platform.node()}, {date.today()}; models {args.models}")
    print("| step | input | seconds | peak RSS (MB) |")
    print("|---|---|---|---|")
    for step in ("fade", "mask", "inpaint", "upscale-x2", "upscale-x4", "colourise"):
        out = subprocess.run([sys.executable, __file__, "one", "--step", step, "--models", str(args.models),
                              "--megapixels", str(args.megapixels), "--device", args.device],
                             capture_output=True, text=True)
        if out.returncode:
            print(f"| {step} | failed: {out.stderr.strip().splitlines()[-1]} | | |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {r['step']} | {r['input']} | {r['seconds']} | {r['peak_rss_mb']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
