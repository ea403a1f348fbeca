"""Training throughput on the tiny pack (CPU) and the cost of the degradation at 512 px.

    python bench/training_tiny.py [--pack DIR] [--steps 20] [--threads 1]

Prints a table: the degradation (Eq. 6) per 512 px image; stage-I optimizer steps per second at 64 px,
batch 4, with gradient checkpointing off (baseline) and on, measured in the same run. Random tiny
weights: this measures the training loop, not SDXL.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pack", type=Path, default=None, help="an existing tiny pack (default: build one)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    torch.set_num_threads(args.threads)
    from training.config import load_config
    from training.data import build_index
    from training.degrade import degrade
    from training.embeddings import EngineReferenceEmbedder, precompute
    from training.models import load_reference_models
    from training.prepare import aligned_crop, write_rgb
    from training.train import train_stage

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pack = args.pack
        if pack is None:
            from engine.testing.tiny_pack import write_tiny_pack

            pack = write_tiny_pack(tmp / "pack", SHARED / "models" / "insightface_scrfd" / "det_500m.onnx")
        photos = sorted((SHARED / "data" / "deepface_ids" / "images").glob("*/*.jpg"))[:12]
        faces = tmp / "faces"
        import cv2

        face512 = None
        for photo in photos:
            crop = aligned_crop(photo, 512)
            face512 = crop if face512 is None else face512
            write_rgb(faces / photo.parent.name / f"{photo.stem}.png",
                      cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA))

        started = time.perf_counter()
        for seed in range(20):
            degrade(face512, seed)
        rows.append(("degrade one 512 px face (Eq. 6)", f"{(time.perf_counter() - started) / 20 * 1000:.1f} ms"))

        index = build_index("identity_folders", faces, None)
        analyzer, id_encoder = load_reference_models(pack)
        started = time.perf_counter()
        precompute(index.images, tmp / "emb", EngineReferenceEmbedder(analyzer, id_encoder), shard_size=8)
        rows.append((f"precompute ArcFace + CLIP, {len(index.images)} images at 64 px",
                     f"{time.perf_counter() - started:.1f} s"))

        for label, checkpointing in (("baseline: gradient checkpointing off", "false"),
                                     ("gradient checkpointing on", "true")):
            config = load_config(ROOT / "training" / "configs" / "tiny.yaml", [
                f"models_dir={pack}", f"output_dir={tmp / ('run-' + checkpointing)}", f"data.gt_dir={faces}",
                f"data.embeddings_dir={tmp / 'emb'}", f"stage1.max_steps={args.steps}", "run.checkpointing_steps=0",
                "run.log_with=none", f"run.gradient_checkpointing={checkpointing}", "run.log_every=1",
                f"run.cpu_threads={args.threads}"])
            started = time.perf_counter()
            result = train_stage(config, "stage1")
            total = time.perf_counter() - started
            log = [json.loads(line) for line in (result.output_dir / "train_log.jsonl").read_text().splitlines()]
            loop = log[-1]["seconds"] - log[0]["seconds"]
            rows.append((f"stage I, 64 px, batch 4, {label}",
                         f"{(len(log) - 1) / loop:.2f} steps/s ({total:.1f} s with loading)"))
    width = max(len(r[0]) for r in rows)
    print(f"| {'what'.ljust(width)} | result |")
    print(f"|{'-' * (width + 2)}|---|")
    for what, value in rows:
        print(f"| {what.ljust(width)} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
