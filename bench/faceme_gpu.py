"""GPU benchmark of FaceMe restoration, built to spend one short turn on a GPU machine well.

Full-size models with random weights (no download: timing does not depend on the values), the real
crop, real references and a real 12 MP group photo, through the engine's own code.

    # here (CPU, once): the crop, the prepared references, the tokenizers, the detector, the 12 MP photo
    python bench/faceme_gpu.py prepare .bench/gpu
    # the whole device run, one command (see bench/run_gpu_bench.sh): preflight, a CUDA smoke run at
    # tiny scale, then every variant at SDXL scale, each step under `timeout`
    bash bench/run_gpu_bench.sh
    # the same script at tiny scale on this machine's CPU, end to end
    bash bench/run_gpu_bench.sh --device cpu --tiny
    # one run by hand; `summary` prints the table of a results file
    python bench/faceme_gpu.py run --assets .bench/gpu --scale sdxl --device cuda --results R.jsonl
    python bench/faceme_gpu.py summary R.jsonl

`run` builds the released architectures ONCE, directly on the device with seeded random weights: at
`--scale sdxl` the SDXL UNet with RealVisXL V3.0's published config, the ControlNet made from it,
the SDXL VAE (fp32, as its config asks), CLIP ViT-L/14 vision with both projections, the full-width
Mix and both SDXL text encoders (used once for the prompt, then dropped, as the prompt cache does);
`interface` / `tiny` use the test packs' widths (engine/testing/tiny_pack.py). Every variant then
reuses those modules, in this order (the memory modes before `compile`, which is slow and last):

    plain     one face at a time, all models resident (the released path; the reference output)
    batch4/8  restore_faces, B faces × 2 guidance branches per forward
    balanced  ControlNet streamed block by block (diffusers group offloading, CUDA stream prefetch)
    low       UNet, ControlNet and VAE streamed layer by layer
    preview   DPM-Solver++ in 12 steps (trades output for speed: its difference is expected to be large)
    photo     end to end on the 12 MP photo: read, detect (SCRFD), align, denoise every face, identity
              check, paste-back, JPEG encode and verified write; GPU-busy = denoising time / wall time
    compile   torch.compile of UNet and ControlNet (a slow first face, then faster; equal up to float noise)

The models are streamed for `balanced` / `low` and put back on the device afterwards. Each variant
runs in its own try-block and under its own time box (SIGALRM), frees memory before it starts (gc,
empty_cache, peak statistics reset), and appends one JSON line to the results file as soon as it has
its figures: a failing, timed-out or skipped variant is recorded and the run goes on. Figures per
variant: s/face as the median, min and max over `--faces` faces timed after a warm-up face (batched:
per call ÷ B), faces/s, peak allocated and peak reserved memory (torch), the process's GPU memory
sampled every 0.1 s through NVML (pynvml when importable, else `nvidia-smi --query-compute-apps`), mean
GPU utilisation (NVML), and the max pixel difference to `plain` for the same seeds. The summary puts
each figure beside its target (issue 22): per-face throughput ≥ 2× plain at identical output (max
difference ≤ 1); peak reserved ≤ 10 GiB in full, ≤ 6 GiB in low; GPU-busy ≥ 90 % for 12 MP photos.

The identity tokens are made once from prepared references: each is the engine's ReferenceFace
(ArcFace vector + the release's CLIP crop) saved by `prepare` as .npz; the CLIP image encoder and Mix
run on the device. The photo's detector is the real SCRFD det_500m with a small ArcFace of the real
signature (the full ArcFace is 250 MB, too large to carry): detection and paste-back cost what they
cost in the product, the ArcFace embeddings and identity check less.

The GPU machine (python3 3.12, torch 2.11 + CUDA, transformers 5.17, onnxruntime 1.30 CPU, opencv
headless, scikit-image, safetensors, huggingface_hub, nvidia-ml-py present; nothing can be downloaded
there) lacks two pure-Python packages this needs; carry them as wheels, fetched here with
    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 insightface==2.1
(diffusers needs huggingface_hub ≥ 1.32 and safetensors ≥ 0.8, both there; insightface needs onnx,
onnxruntime, opencv, scikit-image, scipy, tqdm, requests, all there). bench/gpu_preflight.py, the
script's first step, prints the versions found and names anything missing, to carry next time.
Run with carry [".whl", ".bench/gpu"]; HF_HUB_OFFLINE=1 is set here before transformers is imported.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

#: `--deadline` counts from here: before torch, diffusers and transformers are imported
PROCESS_STARTED = time.perf_counter()
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the GPU machine has no network; nothing is fetched here
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

log = logging.getLogger("faceme_gpu")

SHARED = ROOT.parent / "shared"
SEED = 20250129
VARIANTS = ("plain", "batch4", "batch8", "balanced", "low", "preview", "photo", "compile")
#: each variant's time box in seconds at SDXL scale (never more than what the run's deadline leaves)
VARIANT_CAPS = {"plain": 90, "batch4": 90, "batch8": 120, "balanced": 90, "low": 180, "preview": 45,
                "photo": 120, "compile": 300}
#: a variant with less than this left before the deadline is recorded as skipped, not started
MIN_VARIANT_S = 5.0
GIB = 1 << 30
#: issue 22's targets
THROUGHPUT_TARGET = 2.0  # × plain, per face
IDENTICAL_MAX_DIFF = 1  # levels of 255: "identical output" up to the float noise of a larger batch
RESERVED_TARGET_GIB = {"plain": 10.0, "low": 6.0}
GPU_BUSY_TARGET = 0.90
PHOTO_MEGAPIXELS = 12.0

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


# ---- assets: made here, carried to the GPU machine --------------------------------------------------

def prepare(out: Path, crop: Path | None = None, references: list[Path] | None = None,
            antelope: Path | None = None, photo: Path | None = None,
            photo_megapixels: float = PHOTO_MEGAPIXELS) -> Path:
    """Write what `run` needs and the GPU machine cannot make: lq.png, references/*.npz, the tokenizers,
    the scheduler config, detector/ (an SCRFD + ArcFace folder) and photo.jpg (a group photo scaled to
    `photo_megapixels`). `antelope`: an InsightFace pack folder (default: the real SCRFD det_500m and a
    small ArcFace of the real signature)."""
    from PIL import Image

    from engine.faceme.references import prepare_reference
    from engine.faces.insightface_backend import InsightFaceAnalyzer
    from engine.testing import tiny_pack

    crop = crop or sorted((SHARED / "data" / "realworld_degraded" / "crops").glob("*.png"))[0]
    references = references or [SHARED / "data" / "celebref_refs" / "00005" / "hq" / f"{i}.png" for i in (0, 1)]
    photo = photo or SHARED / "data" / "group_photos" / "images" / "insightface_t1.jpg"
    out.mkdir(parents=True, exist_ok=True)
    Image.open(crop).convert("RGB").resize((512, 512), Image.BICUBIC).save(out / "lq.png")
    detector = out / "detector"
    if detector.exists():
        shutil.rmtree(detector)
    detector.mkdir()
    if antelope is None:
        shutil.copyfile(SHARED / "models" / "insightface_scrfd" / "det_500m.onnx", detector / "scrfd.onnx")
        tiny_pack.export_tiny_arcface(detector / "arcface.onnx")
    else:
        for onnx_file in sorted(Path(antelope).glob("*.onnx")):
            shutil.copyfile(onnx_file, detector / onnx_file.name)
    analyzer = InsightFaceAnalyzer(detector, providers=["CPUExecutionProvider"])
    (out / "references").mkdir(exist_ok=True)
    for i, path in enumerate(references):
        ref = prepare_reference(analyzer, path, i)
        np.savez(out / "references" / f"{i}.npz", arcface=ref.arcface, clip_crop=ref.clip_crop,
                 box=np.asarray(ref.face.box), source=str(Path(path).name))
    with Image.open(photo) as source:
        scale = (photo_megapixels * 1e6 / (source.width * source.height)) ** 0.5
        size = (round(source.width * scale), round(source.height * scale))
        source.convert("RGB").resize(size, Image.LANCZOS).save(out / "photo.jpg", quality=92)
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


# ---- memory: torch's peaks and the process's total from NVML ----------------------------------------

def free_memory(device: torch.device) -> None:
    """Between variants: what the last one left goes, and the peaks start again."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class GpuSampler:
    """Samples this process's GPU memory (and the GPU's utilisation) every `interval` seconds on a
    thread, through NVML (pynvml) or, without it, `nvidia-smi --query-compute-apps`. Where the process
    is not listed (another PID namespace) the only listed process, else the device's used memory, is
    taken, and `source` says which."""

    def __init__(self, index: int, interval: float = 0.1):
        self.index = index
        self.interval = interval
        self.pid = os.getpid()
        self.source: str | None = None
        self.peak_bytes = 0
        self.utilisation: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml = None
        self._handle = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        except Exception as exc:  # no pynvml, no driver library: nvidia-smi is tried instead
            log.info("NVML through pynvml unavailable (%s); using nvidia-smi", exc)
            if shutil.which("nvidia-smi") is None:
                log.info("nvidia-smi not found either: no process memory figure")

    def _read(self) -> tuple[int | None, str | None, int | None]:
        if self._nvml is not None:
            nvml = self._nvml
            processes = nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
            used = {p.pid: int(p.usedGpuMemory or 0) for p in processes}
            util = int(nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)
            if self.pid in used:
                return used[self.pid], "nvml", util
            if len(used) == 1:
                return next(iter(used.values())), "nvml (only process)", util
            return int(nvml.nvmlDeviceGetMemoryInfo(self._handle).used), "nvml (device used)", util
        if shutil.which("nvidia-smi") is None:
            return None, None, None
        out = subprocess.run(["nvidia-smi", f"--id={self.index}", "--query-compute-apps=pid,used_memory",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5).stdout
        used = {}
        for line in out.splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                used[int(parts[0])] = int(parts[1]) << 20
        if self.pid in used:
            return used[self.pid], "nvidia-smi", None
        if len(used) == 1:
            return next(iter(used.values())), "nvidia-smi (only process)", None
        return None, None, None

    def _loop(self) -> None:
        interval = self.interval if self._nvml is not None else max(self.interval, 0.5)
        while not self._stop.is_set():
            try:
                value, source, util = self._read()
            except Exception as exc:  # a failing sampler must not stop the benchmark
                log.info("GPU sampling stopped: %s", exc)
                return
            if value is not None and value >= self.peak_bytes:
                self.peak_bytes, self.source = value, source
            if util is not None:
                self.utilisation.append(util)
            self._stop.wait(interval)

    def __enter__(self) -> GpuSampler:
        self._thread = threading.Thread(target=self._loop, name="gpu-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def memory_figures(device: torch.device, sampler: GpuSampler | None) -> dict:
    if device.type != "cuda":
        return {}
    figures = {"peak_allocated_gib": round(torch.cuda.max_memory_allocated(device) / GIB, 3),
               "peak_reserved_gib": round(torch.cuda.max_memory_reserved(device) / GIB, 3)}
    if sampler is not None and sampler.source is not None:
        figures["process_gib"] = round(sampler.peak_bytes / GIB, 3)
        figures["process_source"] = sampler.source
    if sampler is not None and sampler.utilisation:
        figures["gpu_util_mean"] = round(statistics.fmean(sampler.utilisation), 1)
    return figures


# ---- one variant: its own try-block, time box and result line ----------------------------------------

class VariantTimeout(Exception):
    """A variant ran past its time box."""


@contextlib.contextmanager
def time_box(seconds: float | None) -> Iterator[None]:
    """Raise VariantTimeout in this (main) thread after `seconds`; where there is no SIGALRM (Windows,
    another thread) the run's outer `timeout` is the only limit."""
    if seconds is None or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum, _frame):
        raise VariantTimeout(f"ran past its {seconds:.0f} s time box")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def append_result(path: Path | None, record: dict) -> None:
    """One JSON line, on disk before the next variant starts (a killed run keeps every finished line)."""
    if path is None:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def timing_figures(record: dict) -> dict:
    """s/face median, min, max (and faces/s) from the per-face times a variant measured so far."""
    times = record.get("face_times_s") or []
    if not times:
        return {}
    median = statistics.median(times)
    return {"faces_timed": record.get("faces_timed", len(times)), "s_per_face_median": round(median, 4),
            "s_per_face_min": round(min(times), 4), "s_per_face_max": round(max(times), 4),
            "faces_per_s": round(1 / median, 4) if median > 0 else None}


def run_variant(name: str, measure: Callable[[dict], None], device: torch.device, results: Path | None,
                time_left: Callable[[], float], cap_s: float | None, gpu_index: int | None = None,
                after: Callable[[], None] | None = None) -> dict:
    """Run `measure(record)` (which fills `record` as it goes, so a time-out keeps what was measured)
    in its own try-block and time box, then `after()` (whatever it raised), and append the record."""
    record: dict = {"variant": name, "status": "ok"}
    left = time_left()
    box = min(cap_s, left - 1.0) if cap_s is not None else left - 1.0
    if box < MIN_VARIANT_S:
        record.update(status="skipped", error=f"{left:.0f} s left before the deadline")
        log.warning("%s: skipped (%s)", name, record["error"])
        append_result(results, record)
        return record
    free_memory(device)
    started = time.perf_counter()
    sampler = GpuSampler(gpu_index) if device.type == "cuda" and gpu_index is not None else None
    try:
        with contextlib.ExitStack() as stack:
            if sampler is not None:
                stack.enter_context(sampler)
            with time_box(box if box != float("inf") else None):
                measure(record)
            _sync(device)
    except VariantTimeout as exc:
        record.update(status="timeout", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - recorded, and the next variant runs
        record.update(status="error", error=f"{exc.__class__.__name__}: {exc}"[:2000],
                      traceback=traceback.format_exc()[-3000:])
    finally:
        if after is not None:
            try:
                after()
            except Exception as exc:  # noqa: BLE001
                record.setdefault("error", f"cleanup: {exc.__class__.__name__}: {exc}")
                record["status"] = "error"
    record["wall_s"] = round(time.perf_counter() - started, 2)
    record.update(timing_figures(record))
    record.update(memory_figures(device, sampler))
    record.pop("face_times_s", None)
    log.info("%s: %s %s", name, record["status"], {k: v for k, v in record.items()
                                                     if k in ("s_per_face_median", "peak_reserved_gib", "error")})
    append_result(results, record)
    return record


# ---- the run ---------------------------------------------------------------------------------------

def max_difference(outputs: dict[int, np.ndarray], plain: dict[int, np.ndarray]) -> int | None:
    common = [s for s in outputs if s in plain]
    if not common:
        return None
    return max(int(np.abs(outputs[s].astype(int) - plain[s].astype(int)).max()) for s in common)


def make_pipeline(models: Models, assets: Path, device: torch.device, dtype: torch.dtype):
    """FaceMePipeline over the built models, every model resident; the prompt is encoded once, then
    the text encoders go (as with the prompt cache)."""
    from diffusers import DDPMScheduler
    from transformers import CLIPTokenizer

    from engine.faceme.pipeline import FaceMePipeline

    scheduler = DDPMScheduler.from_config(json.loads((assets / "scheduler_config.json").read_text()))
    pipe = FaceMePipeline(models.unet, models.vae, models.text_encoder, models.text_encoder_2,
                          CLIPTokenizer.from_pretrained(assets / "tokenizer"),
                          CLIPTokenizer.from_pretrained(assets / "tokenizer_2"), scheduler, models.controlnet,
                          models.id_encoder, models.mix, None, device=device, dtype=dtype, memory_mode="full")
    pipe.prompt  # noqa: B018 - encoded now, on the device
    pipe.text_encoder = pipe.text_encoder_2 = None
    models.text_encoder = models.text_encoder_2 = None
    return pipe


def unstream(module: nn.Module, device: torch.device) -> None:
    """Undo diffusers' group offloading on `module` (its hooks removed) and put it back on `device`."""
    from diffusers.hooks import HookRegistry
    from diffusers.hooks.group_offloading import (_GROUP_OFFLOADING, _LAYER_EXECUTION_TRACKER,
                                                  _LAZY_PREFETCH_GROUP_OFFLOADING)

    from engine.faceme.memory import is_streamed

    if is_streamed(module):
        registry = HookRegistry.check_if_exists_or_initialize(module)
        for hook in (_LAZY_PREFETCH_GROUP_OFFLOADING, _LAYER_EXECUTION_TRACKER, _GROUP_OFFLOADING):
            registry.remove_hook(hook, recurse=True)
    module.to(device)


def place(pipe, device: torch.device, mode: str) -> None:
    """The same modules, placed as memory mode `mode` places them (full: all resident again)."""
    from engine.faceme.memory import is_streamed, place_models

    for module in (pipe.unet, pipe.controlnet, pipe.vae):
        unstream(module, device)
    gc.collect()
    if mode != "full":
        place_models(pipe.unet, pipe.controlnet, pipe.vae, device, mode)
    pipe.memory_mode = mode
    if mode == "full":
        models = (pipe.unet, pipe.controlnet, pipe.vae)
        if any(is_streamed(m) for m in models) or any(p.device.type != device.type for m in models
                                                      for p in m.parameters()):
            raise RuntimeError("a model is still streamed, or off the device, after unstreaming")


@dataclass
class RunSettings:
    assets: Path
    scale: str
    device: torch.device
    dtype: torch.dtype
    steps: int = 50
    faces: int = 5
    photos: int = 3
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    compile_backend: str = "inductor"
    preview_steps: int | None = None
    deadline_s: float | None = None
    results: Path | None = None


@dataclass
class Context:
    """What every variant shares: the pipeline over the one set of models, the crop, the tokens."""

    settings: RunSettings
    pipe: object
    lq: np.ndarray
    identity: torch.Tensor
    plain: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.settings.device


def environment_info(settings: RunSettings) -> dict:
    from importlib import metadata

    versions = {}
    for dist in ("torch", "transformers", "diffusers", "onnxruntime", "onnxruntime-gpu", "numpy",
                 "insightface", "opencv-python-headless", "nvidia-ml-py"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    device = settings.device
    info = {"variant": "info", "scale": settings.scale, "device": str(device), "dtype": str(settings.dtype),
            "steps": settings.steps, "faces": settings.faces, "photos": settings.photos,
            "python": platform.python_version(), "versions": versions, "cuda": torch.version.cuda,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host_cpus": os.cpu_count()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / GIB, 1))
    else:
        info["gpu"] = f"none: CPU {platform.machine()}, {torch.get_num_threads()} torch thread(s)"
    try:
        import onnxruntime

        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        pass
    return info


def one_by_one(ctx: Context, record: dict, restore: Callable[[int, int], np.ndarray], keep_as_plain: bool = False):
    """A warm-up face (2 steps), then `faces` faces timed one at a time; fills `record` as it goes."""
    s = ctx.settings
    restore(10_000, min(s.steps, 2))
    _sync(ctx.device)
    times = record.setdefault("face_times_s", [])
    outputs: dict[int, np.ndarray] = {}
    for seed in range(s.faces):
        t0 = time.perf_counter()
        outputs[seed] = restore(seed, s.steps)
        _sync(ctx.device)
        times.append(time.perf_counter() - t0)
        if keep_as_plain:
            ctx.plain[seed] = outputs[seed]
        record["max_diff_to_plain"] = max_difference(outputs, ctx.plain)


def measure_plain(ctx: Context, record: dict) -> None:
    one_by_one(ctx, record, lambda seed, steps: ctx.pipe(ctx.lq, identity=ctx.identity, steps=steps, seed=seed),
               keep_as_plain=True)


def measure_batch(ctx: Context, record: dict, size: int) -> None:
    """Warm-up call, then calls of `size` faces until at least `faces` faces (and, for more than one
    face, two calls) are timed."""
    s, pipe = ctx.settings, ctx.pipe
    seeds = list(range(size))  # the first ones are plain's seeds: compared face by face
    record["batch"] = size

    def call(steps):
        return pipe.restore_faces([ctx.lq] * size, [ctx.identity] * size, seeds, steps=steps, batch_size=size)

    call(min(s.steps, 2))
    _sync(ctx.device)
    times = record.setdefault("face_times_s", [])
    calls = max(2 if s.faces > 1 else 1, -(-s.faces // size))  # two calls at least where a spread is asked
    for _ in range(calls):
        t0 = time.perf_counter()
        outputs = call(s.steps)
        _sync(ctx.device)
        times.append((time.perf_counter() - t0) / size)
        record["faces_timed"] = len(times) * size
        record["max_diff_to_plain"] = max_difference(dict(zip(seeds, outputs)), ctx.plain)


def measure_mode(ctx: Context, record: dict, mode: str) -> None:
    place(ctx.pipe, ctx.device, mode)
    record["memory_mode"] = mode
    measure_plain_like(ctx, record)


def measure_plain_like(ctx: Context, record: dict) -> None:
    one_by_one(ctx, record, lambda seed, steps: ctx.pipe(ctx.lq, identity=ctx.identity, steps=steps, seed=seed))


def measure_preview(ctx: Context, record: dict) -> None:
    from engine.faceme.pipeline import PREVIEW_STEPS

    steps = ctx.settings.preview_steps or PREVIEW_STEPS
    record["preview_steps"] = steps
    one_by_one(ctx, record, lambda seed, n: ctx.pipe.preview(ctx.lq, identity=ctx.identity, seed=seed,
                                                             steps=steps if n == ctx.settings.steps else n))


def measure_compile(ctx: Context, record: dict) -> None:
    record["backend"] = ctx.settings.compile_backend
    ctx.pipe.compile_models(ctx.settings.compile_backend)
    t0 = time.perf_counter()
    ctx.pipe(ctx.lq, identity=ctx.identity, steps=min(ctx.settings.steps, 2), seed=10_001)  # compiles
    _sync(ctx.device)
    record["first_call_s"] = round(time.perf_counter() - t0, 2)
    measure_plain_like(ctx, record)


def measure_photos(ctx: Context, record: dict) -> None:
    """End to end on the carried 12 MP photo, `photos` times: read, detect, plan (every face one person),
    crop, denoise (batched as the product batches), identity check, paste-back, encode, verified write."""
    from engine.faces.insightface_backend import InsightFaceAnalyzer, providers_for_device
    from engine.imageio import read_image, write_image
    from engine.restore.identity_check import IdentityCheck
    from engine.restore.options import RestoreOptions
    from engine.restore.photo import plan_photo_ad_hoc, restore_plan
    from engine.restore.plan import Identity, RestorationPlan

    s, pipe = ctx.settings, ctx.pipe
    detector = s.assets / "detector"
    analyzer = InsightFaceAnalyzer(detector, providers=providers_for_device(s.device))
    check = IdentityCheck(InsightFaceAnalyzer(detector, providers=providers_for_device(s.device)))
    record["onnx_providers"] = analyzer.providers
    options = RestoreOptions(steps=s.steps, seed=0, identity_check=True)
    person = Identity("bench", "bench")
    denoising: list[float] = []
    restore_faces = pipe.restore_faces

    def timed_restore_faces(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return restore_faces(*args, **kwargs)
        finally:
            _sync(s.device)
            denoising.append(time.perf_counter() - t0)

    pipe.restore_faces = timed_restore_faces  # an instance attribute: the bench's stopwatch, removed below
    walls, per_photo, seen = [], [], 0
    stages = {"read_s": [], "plan_s": [], "restore_s": [], "write_s": []}
    out_dir = Path(tempfile.mkdtemp(prefix="faceme-bench-photo-"))
    try:
        for k in range(s.photos):
            t0 = time.perf_counter()
            loaded = read_image(s.assets / "photo.jpg")
            t1 = time.perf_counter()
            plan = plan_photo_ad_hoc(loaded.pixels, [], analyzer, options, source=s.assets / "photo.jpg")
            plan = RestorationPlan([replace(f, action="restored", identity=person.key, person_name=person.name,
                                            reason="the benchmark restores every face as one person")
                                    if f.action == "blind" else f for f in plan.faces], {person.key: person},
                                   plan.source)
            t2 = time.perf_counter()
            result = restore_plan(loaded, plan, pipe, options, tokens=lambda _who: ctx.identity, check=check,
                                  check_references=lambda _who: None)
            t3 = time.perf_counter()
            write_image(out_dir / f"restored{k}.jpg", result.pixels, like=loaded)
            t4 = time.perf_counter()
            walls.append(t4 - t0)
            per_photo.append(sum(denoising[seen:]))  # a photo's faces may take several batches
            seen = len(denoising)
            for key, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                stages[key].append(value)
            record.update(photos=len(walls), photo_pixels=int(loaded.pixels.shape[0] * loaded.pixels.shape[1]),
                          faces_per_photo=result.restored_count,
                          s_per_photo_median=round(statistics.median(walls), 3),
                          s_per_photo_min=round(min(walls), 3), s_per_photo_max=round(max(walls), 3),
                          denoise_s_median=round(statistics.median(per_photo), 3),
                          cpu_stages_s_median=round(statistics.median(w - d for w, d in zip(walls, per_photo)), 3),
                          gpu_busy=round(sum(per_photo) / sum(walls), 3),
                          **{key: round(statistics.median(v), 3) for key, v in stages.items()})
    finally:
        del pipe.restore_faces
        shutil.rmtree(out_dir, ignore_errors=True)


def build_context(settings: RunSettings, info: dict) -> Context:
    from PIL import Image

    from engine.faceme.references import encode_references

    started = time.perf_counter()
    lq = np.asarray(Image.open(settings.assets / "lq.png").convert("RGB"))
    references = load_references(settings.assets)
    models = build_models(settings.scale, settings.device, settings.dtype)
    identity = encode_references(references, models.id_encoder, models.mix)
    models.id_encoder = None  # released once the tokens are made, as the pipeline does
    pipe = make_pipeline(models, settings.assets, settings.device, settings.dtype)
    _sync(settings.device)
    info["build_s"] = round(time.perf_counter() - started, 2)
    return Context(settings, pipe, lq, identity)


def run(settings: RunSettings) -> list[dict]:
    """Every variant of `settings.variants`, in VARIANTS' order, each line appended to
    `settings.results` as soon as it is known. Returns the records (the info line first)."""
    def time_left() -> float:
        if settings.deadline_s is None:
            return float("inf")
        return settings.deadline_s - (time.perf_counter() - PROCESS_STARTED)

    device = settings.device
    gpu_index = (device.index if device.index is not None else torch.cuda.current_device()) \
        if device.type == "cuda" else None
    info = environment_info(settings)
    records = [info]
    try:
        ctx = build_context(settings, info)
    except Exception as exc:  # noqa: BLE001 - nothing can run without the models: say why, on file
        info.update(status="error", error=f"{exc.__class__.__name__}: {exc}"[:2000],
                    traceback=traceback.format_exc()[-3000:])
        append_result(settings.results, info)
        raise
    append_result(settings.results, info)
    log.info("models built in %.1f s on %s", info["build_s"], info["gpu"])
    scaled = settings.scale == "sdxl"
    measures: dict[str, tuple[Callable[[dict], None], Callable[[], None] | None]] = {
        "plain": (lambda r: measure_plain(ctx, r), None),
        "batch4": (lambda r: measure_batch(ctx, r, 4), None),
        "batch8": (lambda r: measure_batch(ctx, r, 8), None),
        "balanced": (lambda r: measure_mode(ctx, r, "balanced"), lambda: place(ctx.pipe, device, "full")),
        "low": (lambda r: measure_mode(ctx, r, "low"), lambda: place(ctx.pipe, device, "full")),
        "preview": (lambda r: measure_preview(ctx, r), None),
        "photo": (lambda r: measure_photos(ctx, r), None),
        "compile": (lambda r: measure_compile(ctx, r), None),
    }
    for name in [v for v in VARIANTS if v in settings.variants]:
        measure, after = measures[name]
        cap = VARIANT_CAPS[name] if scaled else None
        records.append(run_variant(name, measure, device, settings.results, time_left, cap, gpu_index, after))
    return records


# ---- the summary, with the targets beside the figures ------------------------------------------------

def _fmt(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def target_notes(record: dict, plain: dict | None) -> list[str]:
    """Each of issue 22's targets that applies to this record, with met / NOT met."""
    notes = []
    name = record["variant"]
    if plain and plain.get("s_per_face_median") and record.get("s_per_face_median") and name in (
            "batch4", "batch8", "compile"):
        ratio = plain["s_per_face_median"] / record["s_per_face_median"]
        identical = record.get("max_diff_to_plain") is not None and record["max_diff_to_plain"] <= IDENTICAL_MAX_DIFF
        met = ratio >= THROUGHPUT_TARGET and identical
        notes.append(f"throughput {ratio:.2f}× plain (target ≥ {THROUGHPUT_TARGET:.0f}× at Δ ≤ "
                     f"{IDENTICAL_MAX_DIFF}): {'met' if met else 'NOT met'}")
    if name in RESERVED_TARGET_GIB and record.get("peak_reserved_gib") is not None:
        limit = RESERVED_TARGET_GIB[name]
        mode = "full" if name == "plain" else name
        notes.append(f"peak reserved {record['peak_reserved_gib']:.2f} GiB in {mode} (target ≤ {limit:.0f} GiB): "
                     f"{'met' if record['peak_reserved_gib'] <= limit else 'NOT met'}")
    if name == "photo" and record.get("gpu_busy") is not None:
        notes.append(f"GPU-busy {record['gpu_busy']:.0%} (target ≥ {GPU_BUSY_TARGET:.0%}): "
                     f"{'met' if record['gpu_busy'] >= GPU_BUSY_TARGET else 'NOT met'}")
    return notes


def format_records(records: list[dict]) -> str:
    info = next((r for r in records if r.get("variant") == "info"), {})
    rows = [r for r in records if r.get("variant") != "info"]
    plain = next((r for r in rows if r["variant"] == "plain" and r.get("status") == "ok"), None)
    versions = info.get("versions", {})
    lines = [f"FaceMe GPU benchmark — {info.get('gpu', '?')}, Python {info.get('python', '?')}, torch "
             f"{versions.get('torch', '?')} (CUDA {info.get('cuda')}), transformers {versions.get('transformers', '?')}, "
             f"diffusers {versions.get('diffusers', '?')}, {info.get('date', '?')}",
             f"scale {info.get('scale')}, {info.get('dtype')}, {info.get('steps')} steps, {info.get('faces')} face(s) "
             f"timed per variant after a warm-up; models built once in {info.get('build_s', '?')} s",
             f"{'variant':<9} {'status':<8} {'s/face med':>10} {'min–max':>15} {'faces/s':>8} {'×plain':>7} "
             f"{'alloc GiB':>9} {'resv GiB':>9} {'proc GiB':>9} {'util %':>6} {'maxΔ':>5}"]
    for r in rows:
        ratio = (plain["s_per_face_median"] / r["s_per_face_median"]
                 if plain and r.get("s_per_face_median") else None)
        spread = (f"{r['s_per_face_min']:.3f}–{r['s_per_face_max']:.3f}" if r.get("s_per_face_min") is not None
                  else "-")
        lines.append(f"{r['variant']:<9} {r.get('status', '?'):<8} {_fmt(r.get('s_per_face_median')):>10} {spread:>15} "
                     f"{_fmt(r.get('faces_per_s')):>8} {_fmt(ratio, '.2f'):>7} "
                     f"{_fmt(r.get('peak_allocated_gib'), '.2f'):>9} {_fmt(r.get('peak_reserved_gib'), '.2f'):>9} "
                     f"{_fmt(r.get('process_gib'), '.2f'):>9} {_fmt(r.get('gpu_util_mean'), '.0f'):>6} "
                     f"{_fmt(r.get('max_diff_to_plain'), 'd'):>5}")
        if r["variant"] == "photo" and r.get("s_per_photo_median") is not None:
            lines.append(f"          {r.get('photos')} photo(s) of {r.get('photo_pixels', 0) / 1e6:.1f} MP, "
                         f"{r.get('faces_per_photo')} face(s) each: {r['s_per_photo_median']:.2f} s/photo "
                         f"(denoising {r.get('denoise_s_median')} s, CPU stages {r.get('cpu_stages_s_median')} s: "
                         f"read {r.get('read_s')}, detect+plan {r.get('plan_s')}, write {r.get('write_s')}); "
                         f"ONNX on {r.get('onnx_providers')}")
        for note in target_notes(r, plain):
            lines.append(f"          {note}")
        if r.get("status") not in ("ok", None):
            lines.append(f"          {r.get('error', '')}")
    return "\n".join(lines)


def read_results(path: Path) -> list[dict]:
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # the last line of a killed run may be cut
                log.warning("%s: a line that is not JSON was left out", path)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="write the crop, prepared references, tokenizers, detector and photo")
    p.add_argument("out", type=Path)
    p.add_argument("--crop", type=Path)
    p.add_argument("--ref", type=Path, action="append")
    p.add_argument("--antelope", type=Path, help="InsightFace pack folder (default: real SCRFD + small ArcFace)")
    p.add_argument("--photo", type=Path, help="group photo (default: ../shared's insightface_t1.jpg)")
    p.add_argument("--megapixels", type=float, default=PHOTO_MEGAPIXELS, help="the photo's size once scaled")
    r = sub.add_parser("run", help="build the models on the device once and time every variant")
    r.add_argument("--assets", type=Path, required=True)
    r.add_argument("--scale", choices=("sdxl", "interface", "tiny"), default="sdxl")
    r.add_argument("--device", default="cuda")
    r.add_argument("--dtype", default="auto")
    r.add_argument("--steps", type=int, default=50)
    r.add_argument("--faces", type=int, default=5, help="faces timed per variant after a warm-up (median)")
    r.add_argument("--photos", type=int, default=3, help="12 MP photos restored end to end")
    r.add_argument("--variants", default=",".join(VARIANTS))
    r.add_argument("--compile-backend", default="inductor")
    r.add_argument("--preview-steps", type=int, default=None, help="steps of the preview variant (default 12)")
    r.add_argument("--deadline", type=float, default=None,
                   help="seconds this process may take, imports included; variants that would start too late "
                        "are recorded as skipped")
    r.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    r.add_argument("--results", type=Path, help="JSON lines file, appended to as each variant ends")
    s = sub.add_parser("summary", help="print the table of a results file, targets beside the figures")
    s.add_argument("results", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.command == "prepare":
        print(prepare(args.out, args.crop, args.ref, args.antelope, args.photo, args.megapixels))
        return 0
    if args.command == "summary":
        print(format_records(read_results(args.results)))
        return 0
    from engine.faceme.memory import resolve_device, resolve_dtype

    device = resolve_device(args.device)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    torch.backends.cuda.matmul.allow_tf32 = False  # the plain path's arithmetic, in every variant
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = RunSettings(args.assets, args.scale, device, resolve_dtype(args.dtype, device), args.steps, args.faces,
                           args.photos, variants, args.compile_backend, args.preview_steps, args.deadline,
                           args.results)
    records = run(settings)
    print(format_records(records))
    return 0 if all(r.get("status", "ok") == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
