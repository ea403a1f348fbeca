"""GPU benchmark of learning a person (issue 21): step time and peak memory of a fitted identity and a
person adapter at full size, through the engine's own fit code (engine/learn), with random weights.

    python bench/learn_gpu.py --device cuda [--dtype bf16] [--steps 6] [--results R.jsonl]
    python bench/learn_gpu.py --tiny            # the same path on this machine's CPU, tiny widths, 64 px

The SDXL UNet (RealVisXL V3.0's published config), the ControlNet made from it and the SDXL VAE are built
on the meta device and given seeded random values directly on the device (nothing is downloaded; timing
does not depend on the values). The prompt is a random tensor of the released shapes (restorations read
it from the prompt cache; the text encoders play no part in a fit). Eight synthetic 512 px faces stand in
for a person's album (the fit's cost does not depend on their content).

For each method (`identity`: the tokens fitted, UNet and ControlNet frozen; `adapter`: rank-8 LoRA on the
UNet's attention) it runs `--steps` fit steps after one warm-up step, with gradient checkpointing on
CUDA, and reports s/step (median), the projected time of a default fit (300 identity / 400 adapter
steps) and the peak allocated / reserved memory, beside the issue's targets: a fitted identity in ≤ 3 min
with ≤ 16 GB, an adapter in ≤ 10 min with ≤ 20 GB. On the CPU (`--tiny`) memory is the process's peak
resident size. One JSON line per method goes to `--results` (and the table to stdout).

The GPU machine lacks diffusers and peft: carry them as wheels (see bench/faceme_gpu.py's docstring for
the pip download line; add `peft==0.21.2`), e.g. run with carry [".whl"] and
    pip install --no-deps .whl/*.whl && python bench/learn_gpu.py --device cuda --results learn.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import faceme_gpu  # noqa: E402  (bench/ is not a package)

log = logging.getLogger("learn_gpu")

SEED = 20250109
#: the issue's targets: (default steps, seconds, peak GB)
TARGETS = {"identity": (300, 180.0, 16.0), "adapter": (400, 600.0, 20.0)}
# the full-size configs and the seeded fill are faceme_gpu.py's (the speed benchmark's models)
SDXL_UNET, SDXL_VAE = faceme_gpu.SDXL_UNET, faceme_gpu.SDXL_VAE
filled = faceme_gpu.fill_on_device


def build(tiny: bool, device: torch.device, dtype: torch.dtype):
    """DenoisingModels at SDXL size (or the tiny pack's widths) with a random prompt of the right shapes."""
    from diffusers import AutoencoderKL, ControlNetModel, DDPMScheduler, UNet2DConditionModel

    from engine.faceme.conditioning import EncodedPrompt, PromptEmbeddings
    from engine.learn.denoising import DenoisingModels
    from engine.testing import tiny_pack

    with torch.device("meta"):
        if tiny:
            unet, vae = tiny_pack.build_unet(tiny_pack.TINY), tiny_pack.build_vae()
            channels = tiny_pack.TINY.controlnet_embedding_channels
        else:
            unet, vae = UNet2DConditionModel(**SDXL_UNET), AutoencoderKL(**SDXL_VAE)
            channels = (16, 32, 96, 256)
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=channels)
    vae_dtype = torch.float32  # the SDXL VAE's config asks for fp32
    unet = filled(unet, SEED, dtype, device)
    controlnet = filled(controlnet, SEED + 1, dtype, device)
    vae = filled(vae, SEED + 2, vae_dtype, device)
    scheduler = DDPMScheduler.from_config(tiny_pack.SCHEDULER_CONFIG)
    width = int(unet.config.cross_attention_dim)
    pooled = int(unet.config.projection_class_embeddings_input_dim) - 6 * int(unet.config.addition_time_embed_dim)
    generator = torch.Generator("cpu").manual_seed(SEED + 3)
    plain = PromptEmbeddings(torch.randn(1, 77, width, generator=generator).to(device, dtype),
                             torch.randn(1, pooled, generator=generator).to(device, dtype),
                             torch.tensor([[512, 512, 0, 0, 512, 512]], dtype=dtype, device=device))
    return DenoisingModels(unet, controlnet, vae, scheduler, EncodedPrompt(plain, 4), device, dtype)


def faces(count: int = 8, size: int = 512) -> list[np.ndarray]:
    """Smooth synthetic RGB faces-to-be (their content does not change a fit's cost)."""
    rng = np.random.default_rng(SEED)
    y, x = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(count):
        a, b, c = rng.uniform(2, 8, 3)
        image = np.stack([0.5 + 0.4 * np.sin(a * x + b * y), 0.5 + 0.3 * np.cos(b * x), 0.5 + 0.3 * np.sin(c * y)], -1)
        out.append(np.clip(image * 255, 0, 255).astype(np.uint8))
    return out


def peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"peak_allocated_gb": torch.cuda.max_memory_allocated(device) / 1e9,
                "peak_reserved_gb": torch.cuda.max_memory_reserved(device) / 1e9}
    return {"peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}  # KiB on Linux


def measure(method: str, models, crops, steps: int, resolution: int, tmp: Path) -> dict:
    """Time `steps` fit steps (after one warm-up step) of `method` through engine/learn."""
    from engine.learn.adapter import train_adapter
    from engine.learn.denoising import FitSettings
    from engine.learn.fitted_identity import fit_identity

    device = models.device
    width = int(models.unet.config.cross_attention_dim)
    start = torch.randn(4, width, generator=torch.Generator("cpu").manual_seed(SEED + 4)).numpy() * 0.5
    stamps: list[float] = []

    def progress(done: int, total: int, message: str) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        stamps.append(time.perf_counter())

    settings = FitSettings(steps=steps + 1, learning_rate=1e-3, resolution=resolution, checkpoint_every=10_000)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    began = time.perf_counter()
    if method == "identity":
        fit_identity(models, start, crops, settings, progress=progress)
    else:
        train_adapter(models, start, crops, tmp / "adapter.safetensors", settings, rank=8, progress=progress)
    wall = time.perf_counter() - began
    step_times = np.diff(stamps)[1:]  # stamps: one at the start, one per step; the first step warms up
    per_step = float(statistics.median(step_times)) if len(step_times) else float("nan")
    default_steps, target_s, target_gb = TARGETS[method]
    record = {"method": method, "device": str(device), "dtype": str(models.dtype).replace("torch.", ""),
              "resolution": resolution, "steps_timed": int(len(step_times)), "s_per_step": per_step,
              "s_per_step_min": float(np.min(step_times)) if len(step_times) else None,
              "projected_s": per_step * default_steps, "default_steps": default_steps, "wall_s": wall,
              "target_s": target_s, "target_gb": target_gb, **peak_memory(device)}
    if device.type == "cuda":
        record["name"] = torch.cuda.get_device_name(device)
    return record


def table(records: list[dict]) -> str:
    lines = [f"{'method':<9} {'s/step':>8} {'default fit':>12} {'target':>8} {'peak GB':>8} {'target':>7}"]
    for r in records:
        peak = r.get("peak_reserved_gb", r.get("peak_rss_gb", float("nan")))
        lines.append(f"{r['method']:<9} {r['s_per_step']:>8.3f} {r['projected_s'] / 60:>9.1f} min "
                     f"{r['target_s'] / 60:>5.0f} min {peak:>8.2f} {r['target_gb']:>6.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cuda (default when there is one) or cpu")
    parser.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default=None,
                        help="model precision (default bf16 on CUDA, fp32 on the CPU)")
    parser.add_argument("--steps", type=int, default=6, help="timed fit steps per method (after one warm-up)")
    parser.add_argument("--methods", nargs="+", choices=("identity", "adapter"), default=["identity", "adapter"])
    parser.add_argument("--tiny", action="store_true", help="the tiny pack's widths at 64 px (CPU smoke run)")
    parser.add_argument("--results", type=Path, help="append one JSON line per method here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[
        args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    began = time.perf_counter()
    models = build(args.tiny, device, dtype)
    log.info("models built on %s (%s) in %.1f s", device, dtype, time.perf_counter() - began)
    resolution = 64 if args.tiny else 512
    crops = faces()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods:
            try:
                record = measure(method, models, crops, args.steps, resolution, Path(tmp))
            except Exception as exc:  # one method failing (out of memory) still reports the other
                log.exception("%s failed", method)
                record = {"method": method, "error": f"{type(exc).__name__}: {exc}"}
            records.append(record)
            if args.results:
                with args.results.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
    print(table([r for r in records if "error" not in r]))
    return 0 if all("error" not in r for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
