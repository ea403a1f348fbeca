"""GPU benchmark of FaceMe restoration, with no download: full-size models with random weights.

    # here (CPU, once): a real 512 crop, the prepared reference faces and the CLIP tokenizers
    python bench/faceme_gpu.py prepare .bench/gpu
    # on the GPU machine (every variant in one process)
    python3 bench/faceme_gpu.py run --assets .bench/gpu --scale sdxl --device cuda --json $OUT/gpu.json
    # the same code at test size on the CPU (tests/faceme/test_bench_gpu.py runs it)
    python bench/faceme_gpu.py run --assets DIR --scale tiny --device cpu --steps 2 --faces 1

`run` builds the released architectures directly on the device with seeded random weights (timing
does not depend on the values): at `--scale sdxl` the SDXL UNet with RealVisXL V3.0's published
config, the ControlNet made from it (diffusers' default conditioning embedding), the SDXL VAE (fp32,
as its config asks), CLIP ViT-L/14 vision with both projections (768 + 1280), the full-width Mix and
both SDXL text encoders; `--scale interface` / `tiny` use the test packs' widths
(engine/testing/tiny_pack.py). It then restores the real crop with the real references through the
engine's own code (FaceMePipeline, identity tokens from engine.faceme.references.encode_references),
fp16 on CUDA, and prints per variant: seconds per face (median over `--faces` faces after a warm-up),
faces per second, peak VRAM (torch.cuda.max_memory_allocated) and the max pixel difference to the
plain released path (variant `plain`: one face at a time, every model resident) run in the same
process with the same weights and seeds.

Variants: `plain`; `batch4`, `batch8` (restore_faces, B faces × 2 branches per forward); `balanced`,
`low` (memory modes, models rebuilt with the same seeds); `compile` (torch.compile of UNet and
ControlNet: trades a slow first face for speed, output equal up to float noise); `preview`
(DPM-Solver++ in 12 steps: trades output for speed, so its difference is expected to be large).

Reference faces are prepared here by `prepare` (InsightFace detection + ArcFace need the insightface
package, whose dependencies are too large to carry): each is the engine's ReferenceFace (ArcFace
vector + the release's CLIP crop) saved as .npz; the CLIP image encoder and Mix run on the device.

On the GPU machine (python 3.12; torch, transformers, accelerate, safetensors, onnxruntime, opencv
present) the imports are torch, numpy, PIL, transformers, diffusers and the engine's model code (no Qt,
no SQLAlchemy, no insightface). diffusers is not there: carry it as a wheel, downloaded here with
    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1
(pure Python; its own needs huggingface_hub, filelock, regex, requests, safetensors, Pillow, numpy,
importlib_metadata come with transformers there — check with `pip show` in the same call), and run
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \\
    export PYTHONPATH=/tmp/site:$PWD && PYTHONUNBUFFERED=1 python3 bench/faceme_gpu.py run \\
        --assets .bench/gpu --scale sdxl --device cuda --json $OUT/gpu.json
with carry [".whl", ".bench"].
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

log = logging.getLogger("faceme_gpu")

SHARED = ROOT.parent / "shared"
SEED = 20250129
VARIANTS = ("plain", "batch4", "batch8", "balanced", "low", "compile", "preview")

# RealVisXL V3.0's unet/config.json is SDXL base's; its VAE is the SDXL VAE; text encoders CLIP-L and
# OpenCLIP bigG (the published configs, written out here so nothing is downloaded).
SDXL_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=(5, 10, 20), transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816, norm_num_groups=32)
SDXL_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    latent_channels=4, norm_num_groups=32, sample_size=1024, scaling_factor=0.13025, force_upcast=True)
SDXL_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                 projection_dim=768, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
SDXL_TEXT_2 = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                   num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu", projection_dim=1280,
                   bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
CLIP_VIT_L14 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                    patch_size=14, image_size=224, projection_dim=768, hidden_act="quick_gelu")


# ---- random models, built on the device ----------------------------------------------------------

def fill_on_device(module: nn.Module, seed: int, dtype: torch.dtype, device: torch.device) -> nn.Module:
    """Give a module built on the meta device seeded values directly on `device`: weights uniform with
    standard deviation 1/sqrt(fan-in) (activations stay in fp16 range through the deep SDXL stacks),
    norm weights 1, biases 0; CLIP's non-persistent position_ids restored."""
    generator = torch.Generator(device=device).manual_seed(seed)
    state = {}
    for module_name, sub in module.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for name, param in sub.named_parameters(recurse=False):
            if isinstance(sub, (nn.LayerNorm, nn.GroupNorm)) and name == "weight":
                value = torch.ones(param.shape, dtype=dtype, device=device)
            elif name == "bias":
                value = torch.zeros(param.shape, dtype=dtype, device=device)
            else:
                fan_in = int(np.prod(param.shape[1:])) if param.ndim > 1 else 50
                bound = (3.0 / fan_in) ** 0.5
                value = torch.empty(param.shape, dtype=dtype, device=device).uniform_(-bound, bound,
                                                                                       generator=generator)
            state[prefix + name] = value
    module.load_state_dict(state, strict=True, assign=True)
    for module_name, sub in module.named_modules():
        for name, buffer in list(sub.named_buffers(recurse=False)):
            if buffer.is_meta:
                if name != "position_ids":
                    raise ValueError(f"{module_name}.{name}: no rule to fill this buffer")
                sub.register_buffer(name, torch.arange(buffer.shape[-1], device=device).expand(buffer.shape),
                                    persistent=False)
    return module.eval().requires_grad_(False)


@dataclass
class Models:
    unet: nn.Module
    controlnet: nn.Module
    vae: nn.Module
    text_encoder: nn.Module
    text_encoder_2: nn.Module
    id_encoder: nn.Module
    mix: nn.Module


def meta_models(scale: str) -> Models:
    """The released architectures (`sdxl`) or a test pack's widths (`interface`, `tiny`), on the meta
    device (shapes only, no memory)."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPVisionConfig

    from engine.faceme.id_encoder import CLIPIdentityEncoder
    from engine.faceme.mix import Mix
    from engine.testing import tiny_pack

    with torch.device("meta"):
        if scale == "sdxl":
            unet = UNet2DConditionModel(**SDXL_UNET)
            vae = AutoencoderKL(**SDXL_VAE)
            text_encoder = CLIPTextModel(CLIPTextConfig(**SDXL_TEXT))
            text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**SDXL_TEXT_2))
            id_encoder = CLIPIdentityEncoder(CLIPVisionConfig(**CLIP_VIT_L14), 1280)
            mix = Mix(arcface_dim=512, id_hidden_dim=1024, clip_dim=2048, token_dim=2048)
            embedding_channels = (16, 32, 96, 256)
        else:
            widths = tiny_pack.PRESETS[scale]
            unet = tiny_pack.build_unet(widths)
            vae = tiny_pack.build_vae()
            text_encoder, text_encoder_2 = tiny_pack.build_text_encoders(widths)
            id_encoder = CLIPIdentityEncoder(CLIPVisionConfig(
                hidden_size=widths.vision_hidden, intermediate_size=widths.vision_intermediate,
                num_hidden_layers=widths.vision_layers, num_attention_heads=widths.vision_hidden // 64,
                patch_size=widths.vision_patch, image_size=224, projection_dim=widths.vision_projection,
                hidden_act="quick_gelu"), widths.vision_projection_2)
            mix = Mix(arcface_dim=tiny_pack.ARCFACE_WIDTH, id_hidden_dim=widths.mix_id_hidden,
                      clip_dim=widths.clip_width, token_dim=widths.cross_attention_width)
            embedding_channels = widths.controlnet_embedding_channels
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=embedding_channels)
    return Models(unet, controlnet, vae, text_encoder, text_encoder_2, id_encoder, mix)


def build_models(scale: str, device: torch.device, dtype: torch.dtype) -> Models:
    """`meta_models(scale)` given seeded random values directly on `device` (the VAE in fp32 where the
    others are fp16, as load_base_model does for the SDXL VAE)."""
    models = meta_models(scale)
    vae_dtype = torch.float32 if dtype != torch.float32 else dtype
    return Models(unet=fill_on_device(models.unet, SEED, dtype, device),
                  controlnet=fill_on_device(models.controlnet, SEED + 1, dtype, device),
                  vae=fill_on_device(models.vae, SEED + 2, vae_dtype, device),
                  text_encoder=fill_on_device(models.text_encoder, SEED + 3, dtype, device),
                  text_encoder_2=fill_on_device(models.text_encoder_2, SEED + 4, dtype, device),
                  id_encoder=fill_on_device(models.id_encoder, SEED + 5, dtype, device),
                  mix=fill_on_device(models.mix, SEED + 6, dtype, device))


# ---- assets: the real crop, the prepared references, the tokenizers --------------------------------

def prepare(out: Path, crop: Path | None = None, references: list[Path] | None = None,
            antelope: Path | None = None) -> Path:
    """Write what `run` needs and the GPU machine cannot make: lq.png, references/*.npz, tokenizers."""
    import shutil
    import tempfile

    from PIL import Image

    from engine.faceme.references import prepare_reference
    from engine.faces.insightface_backend import InsightFaceAnalyzer
    from engine.testing import tiny_pack

    crop = crop or sorted((SHARED / "data" / "realworld_degraded" / "crops").glob("*.png"))[0]
    references = references or [SHARED / "data" / "celebref_refs" / "00005" / "hq" / f"{i}.png" for i in (0, 1)]
    out.mkdir(parents=True, exist_ok=True)
    Image.open(crop).convert("RGB").resize((512, 512), Image.BICUBIC).save(out / "lq.png")
    temporary = None
    if antelope is None:  # the real SCRFD detector and a small ArcFace of the real signature
        temporary = Path(tempfile.mkdtemp(prefix="faceme-bench-antelope-"))
        shutil.copyfile(SHARED / "models" / "insightface_scrfd" / "det_500m.onnx", temporary / "scrfd.onnx")
        tiny_pack.export_tiny_arcface(temporary / "arcface.onnx")
        antelope = temporary
    try:
        analyzer = InsightFaceAnalyzer(antelope, providers=["CPUExecutionProvider"])
        (out / "references").mkdir(exist_ok=True)
        for i, path in enumerate(references):
            ref = prepare_reference(analyzer, path, i)
            np.savez(out / "references" / f"{i}.npz", arcface=ref.arcface, clip_crop=ref.clip_crop,
                     box=np.asarray(ref.face.box), source=str(Path(path).name))
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    vocab, merges = tiny_pack.clip_vocab_and_merges()
    tiny_pack.write_tokenizer(out / "tokenizer", vocab, merges, pad_token="<|endoftext|>")
    tiny_pack.write_tokenizer(out / "tokenizer_2", vocab, merges, pad_token="!")
    (out / "scheduler_config.json").write_text(json.dumps(tiny_pack.SCHEDULER_CONFIG, indent=2))
    return out


def load_references(assets: Path):
    from engine.faceme.references import ReferenceFace
    from engine.faces.types import Face

    refs = []
    for path in sorted((assets / "references").glob("*.npz")):
        data = np.load(path)
        face = Face(box=tuple(float(v) for v in data["box"]), score=1.0, landmarks=np.zeros((5, 2), np.float32))
        refs.append(ReferenceFace(str(data["source"]), face, data["arcface"], data["clip_crop"]))
    if not refs:
        raise FileNotFoundError(f"{assets}/references/*.npz: run `prepare` first")
    return refs


# ---- the run -------------------------------------------------------------------------------------

@dataclass
class Row:
    variant: str
    faces: int
    s_per_face: float
    faces_per_s: float
    peak_vram_gb: float | None
    max_diff_to_plain: int | None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None


def make_pipeline(models: Models, assets: Path, device: torch.device, dtype: torch.dtype, mode: str):
    """FaceMePipeline over the built models; the prompt is encoded once, then the text encoders go (as
    with the prompt cache)."""
    from diffusers import DDPMScheduler
    from transformers import CLIPTokenizer

    from engine.faceme.memory import place_models
    from engine.faceme.pipeline import FaceMePipeline

    scheduler = DDPMScheduler.from_config(json.loads((assets / "scheduler_config.json").read_text()))
    pipe = FaceMePipeline(models.unet, models.vae, models.text_encoder, models.text_encoder_2,
                          CLIPTokenizer.from_pretrained(assets / "tokenizer"),
                          CLIPTokenizer.from_pretrained(assets / "tokenizer_2"), scheduler, models.controlnet,
                          models.id_encoder, models.mix, None, device=device, dtype=dtype, memory_mode=mode)
    pipe.prompt  # noqa: B018 - encoded now, on the device
    pipe.text_encoder = pipe.text_encoder_2 = None
    models.text_encoder = models.text_encoder_2 = None
    place_models(pipe.unet, pipe.controlnet, pipe.vae, device, mode)
    return pipe


def run(assets: Path, scale: str, device: torch.device, dtype: torch.dtype, steps: int, faces: int,
        variants: list[str], compile_backend: str = "inductor",
        preview_steps: int | None = None) -> tuple[list[Row], dict]:
    from PIL import Image

    from engine.faceme.pipeline import PREVIEW_STEPS
    from engine.faceme.references import encode_references

    preview_steps = preview_steps or PREVIEW_STEPS
    lq = np.asarray(Image.open(assets / "lq.png").convert("RGB"))
    references = load_references(assets)
    started = time.perf_counter()
    models = build_models(scale, device, dtype)
    _sync(device)
    info = {"scale": scale, "device": str(device), "dtype": str(dtype), "steps": steps, "faces": faces,
            "build_s": round(time.perf_counter() - started, 2), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU {platform.machine()}, {torch.get_num_threads()} torch thread(s)",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "references": len(references)}
    identity = encode_references(references, models.id_encoder, models.mix)
    models.id_encoder = None  # released once the tokens are made, as the pipeline does
    pipe = make_pipeline(models, assets, device, dtype, "full")
    rows: list[Row] = []
    plain: dict[int, np.ndarray] = {}
    seeds = list(range(faces))

    def diff(outputs: dict[int, np.ndarray]) -> int | None:
        common = [s for s in outputs if s in plain]
        if not common:
            return None
        return max(int(np.abs(outputs[s].astype(int) - plain[s].astype(int)).max()) for s in common)

    def one_by_one(name, pipeline, call):
        call(pipeline, 0, min(steps, 2))  # warm-up (kernels, allocator; compilation for `compile`)
        _reset_peak(device)
        times, outputs = [], {}
        for seed in seeds:
            t0 = time.perf_counter()
            outputs[seed] = call(pipeline, seed, steps)
            _sync(device)
            times.append(time.perf_counter() - t0)
        if name == "plain":
            plain.update(outputs)
        per_face = statistics.median(times)
        rows.append(Row(name, len(seeds), per_face, 1 / per_face, _peak(device), diff(outputs)))
        log.info("%s: %.3f s/face", name, per_face)

    def restore(pipeline, seed, n_steps):
        return pipeline(lq, identity=identity, steps=n_steps, seed=seed)

    if "plain" in variants:
        one_by_one("plain", pipe, restore)
    for name in [v for v in variants if v.startswith("batch")]:
        size = int(name[len("batch"):])
        batch_seeds = [seeds[i % len(seeds)] if i < len(seeds) else 1000 + i for i in range(size)]
        pipe.restore_faces([lq] * size, [identity] * size, batch_seeds, steps=min(steps, 2), batch_size=size)
        _reset_peak(device)
        times = []
        for _ in range(max(1, faces // size) + 1):
            t0 = time.perf_counter()
            outputs = pipe.restore_faces([lq] * size, [identity] * size, batch_seeds, steps=steps, batch_size=size)
            _sync(device)
            times.append(time.perf_counter() - t0)
        per_face = statistics.median(times) / size
        rows.append(Row(name, size, per_face, 1 / per_face, _peak(device), diff(dict(zip(batch_seeds, outputs)))))
        log.info("%s: %.3f s/face", name, per_face)
    if "preview" in variants:
        one_by_one("preview", pipe, lambda p, seed, n: p.preview(lq, identity=identity, seed=seed,
                                                                 steps=preview_steps if n == steps else n))
    if "compile" in variants:
        pipe.compile_models(compile_backend)
        one_by_one("compile", pipe, restore)
    del pipe, models
    for mode in [v for v in variants if v in ("balanced", "low")]:
        _reset_peak(device)
        models = build_models(scale, device, dtype)  # same seeds: the same weights as `plain`
        identity = encode_references(references, models.id_encoder, models.mix)
        models.id_encoder = None
        pipe = make_pipeline(models, assets, device, dtype, mode)
        one_by_one(mode, pipe, restore)
        del pipe, models
    return rows, info


def format_rows(rows: list[Row], info: dict) -> str:
    base = next((r for r in rows if r.variant == "plain"), None)
    lines = [f"FaceMe GPU benchmark — {info['gpu']}, torch {info['torch']}, {info['date']}; scale {info['scale']}, "
             f"{info['dtype']}, {info['steps']} steps, median of {info['faces']} face(s) after a warm-up",
             f"{'variant':<10} {'s/face':>9} {'faces/s':>9} {'× plain':>8} {'peak VRAM GB':>13} {'max Δ to plain':>15}"]
    for r in rows:
        ratio = f"{base.s_per_face / r.s_per_face:.2f}" if base else "-"
        vram = f"{r.peak_vram_gb:.2f}" if r.peak_vram_gb is not None else "n/a"
        delta = str(r.max_diff_to_plain) if r.max_diff_to_plain is not None else "-"
        lines.append(f"{r.variant:<10} {r.s_per_face:>9.3f} {r.faces_per_s:>9.3f} {ratio:>8} {vram:>13} {delta:>15}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="write the real crop, prepared references and tokenizers (needs ../shared)")
    p.add_argument("out", type=Path)
    p.add_argument("--crop", type=Path)
    p.add_argument("--ref", type=Path, action="append")
    p.add_argument("--antelope", type=Path, help="InsightFace pack folder (default: real SCRFD + small ArcFace)")
    r = sub.add_parser("run", help="build the models on the device and time every variant")
    r.add_argument("--assets", type=Path, required=True)
    r.add_argument("--scale", choices=("sdxl", "interface", "tiny"), default="sdxl")
    r.add_argument("--device", default="cuda")
    r.add_argument("--dtype", default="auto")
    r.add_argument("--steps", type=int, default=50)
    r.add_argument("--faces", type=int, default=3, help="faces timed per variant (median)")
    r.add_argument("--variants", default=",".join(VARIANTS))
    r.add_argument("--compile-backend", default="inductor")
    r.add_argument("--preview-steps", type=int, default=None, help="steps of the preview variant (default 12)")
    r.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    r.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "prepare":
        print(prepare(args.out, args.crop, args.ref, args.antelope))
        return 0
    from engine.faceme.memory import resolve_device, resolve_dtype

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    torch.backends.cuda.matmul.allow_tf32 = False  # the plain path's arithmetic, in every variant
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, info = run(args.assets, args.scale, device, dtype, args.steps, args.faces, variants, args.compile_backend,
                     args.preview_steps)
    print(format_rows(rows, info))
    if args.json:
        args.json.write_text(json.dumps({"info": info, "rows": [asdict(r) for r in rows]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
