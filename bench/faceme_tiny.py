"""Benchmark: FaceMePipeline on the tiny pack (CPU), batched guidance branches vs one forward per branch.

    python bench/faceme_tiny.py [--pack DIR] [--steps 2 50] [--threads N]

Prints a table: pack build time and size, load time, restoration time per step count for the
pipeline (both guidance branches in one batched forward) and for the baseline (the same procedure with
one forward per branch, as a plain reading of the release does). The tiny pack has random weights:
this measures the engine's overhead and scheduling, not SDXL's compute (see the spec's cost figures).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pack", type=Path, help="an existing tiny pack (default: build one in a temp folder)")
    parser.add_argument("--steps", type=int, nargs="+", default=[2, 50])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from engine.faceme import pipeline as faceme_pipeline
    from engine.faceme.pipeline import FaceMePipeline
    from engine.testing.tiny_pack import write_tiny_pack

    if args.threads:
        torch.set_num_threads(args.threads)
    shared = ROOT.parent / "shared"
    rows: list[tuple[str, str]] = []
    pack = args.pack
    if pack is None:
        pack = Path(tempfile.mkdtemp(prefix="faceme-bench-")) / "pack"
        started = time.perf_counter()
        write_tiny_pack(pack, shared / "models" / "insightface_scrfd" / "det_500m.onnx")
        rows.append(("tiny pack build", f"{time.perf_counter() - started:.1f} s"))
    size = sum(p.stat().st_size for p in pack.rglob("*") if p.is_file())
    rows.append(("tiny pack size", f"{size / 1e6:.1f} MB"))

    started = time.perf_counter()
    pipe = FaceMePipeline.from_pack(pack, device="cpu")
    rows.append(("load (from_pack)", f"{time.perf_counter() - started:.2f} s"))
    lq = np.asarray(Image.open(sorted((shared / "data" / "realworld_degraded" / "crops").glob("*.png"))[0])
                    .convert("RGB"))
    refs = [shared / "data" / "celebref_refs" / "00005" / "hq" / f"{i}.png" for i in (0, 1)]
    started = time.perf_counter()
    identity = pipe.encode_identity(refs)
    rows.append(("2 references → tokens", f"{time.perf_counter() - started:.2f} s"))
    pipe(lq, identity=identity, steps=1, seed=0)  # warm-up

    batched_predict = faceme_pipeline.predict_noise

    def one_forward_per_branch(unet, controlnet, latents, t, branches, control, scale=1.0):
        def row(x, i):  # one row per branch, or one row shared by all
            return x if x.shape[0] == 1 else x[i:i + 1]
        return torch.cat([batched_predict(unet, controlnet, row(latents, i), t, [b], row(control, i), scale)
                          for i, b in enumerate(branches)])

    for steps in args.steps:
        timings = {}
        for name, predict in (("batched", batched_predict), ("per-branch baseline", one_forward_per_branch)):
            faceme_pipeline.predict_noise = predict
            try:
                started = time.perf_counter()
                pipe(lq, identity=identity, steps=steps, seed=0)
                timings[name] = time.perf_counter() - started
            finally:
                faceme_pipeline.predict_noise = batched_predict
        rows.append((f"restore, {steps} steps, pipeline (batched)", f"{timings['batched']:.2f} s"))
        rows.append((f"restore, {steps} steps, baseline (per branch)", f"{timings['per-branch baseline']:.2f} s"))

    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"{time.strftime('%Y-%m-%d')}")
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
