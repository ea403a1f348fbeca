"""Where the denoising models live: device, precision, and the memory modes.

Memory modes (what stays on the accelerator while a face is restored):
- `full`: UNet, ControlNet and VAE resident (about 7.8 GB of fp16 weights with the released models);
- `balanced`: UNet and VAE resident; the ControlNet streamed block by block from CPU memory
  (diffusers group offloading, block level, prefetched on a CUDA stream): about 5.3 GB resident;
- `low`: UNet, ControlNet and VAE streamed layer by layer (group offloading, leaf level, prefetched
  on a CUDA stream): for 6–8 GB cards; the slowest;
- `auto`: chosen from the free accelerator memory at load time (`choose_memory_mode`), and logged.
The text encoders, the CLIP image encoder and the face analyzer are never part of this: the prompt
comes from its cache and the reference models are loaded on demand (see FaceMePipeline).
Every mode computes the same thing; offloading moves weights, not arithmetic.

torch is imported inside the functions that use it: the CLI's parser and RestoreOptions read
MEMORY_MODES and check_memory_mode, and `faceme scan` must not pay torch's second of import.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from engine.errors import UsageError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MEMORY_MODES = ("auto", "full", "balanced", "low")
GIB = 1 << 30
#: Free accelerator memory `auto` needs for `full` / `balanced` (released fp16 weights: UNet 5.1 GB,
#: ControlNet 2.5 GB, VAE 0.17 GB (fp32: 0.33 GB), plus the working memory of a batch of faces).
FULL_NEEDS_BYTES = 11 * GIB
BALANCED_NEEDS_BYTES = 7 * GIB
#: Working memory per face in one batched step (2 guidance branches, 512 px, fp16), used to size
#: batches from free memory; an estimate to be checked against bench/faceme_gpu.py's peak figures.
FACE_WORKING_BYTES = int(1.5 * GIB)
MAX_BATCH = 8
CPU_BATCH = 4


# ---- device and precision -------------------------------------------------------------------------

def mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto": CUDA when available, else Apple's MPS on macOS, else the CPU."""
    import torch

    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if sys.platform == "darwin" and mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise UsageError(f"unknown device {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} asked for, but CUDA is not available here")
    if resolved.type == "mps" and not mps_available():
        raise UsageError(f"device {device!r} asked for, but Apple's MPS is not available here")
    return resolved


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """"auto": fp16 on CUDA and MPS, fp32 on the CPU. (The SDXL VAE stays fp32 wherever its config
    asks for it: see load_base_model.)"""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.float16 if torch.device(device).type in ("cuda", "mps") else torch.float32
    names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
             "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype not in names:
        raise UsageError(f"unknown dtype {dtype!r} (use auto, float32, float16 or bfloat16)")
    return names[dtype]


def free_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA device now; None where that cannot be asked (CPU, MPS)."""
    import torch

    if torch.device(device).type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


# ---- memory modes ---------------------------------------------------------------------------------

def check_memory_mode(memory: str) -> str:
    if memory not in MEMORY_MODES:
        raise UsageError(f"unknown memory mode {memory!r} (use {', '.join(MEMORY_MODES)})")
    return memory


def choose_memory_mode(memory: str, device: torch.device, free_bytes: int | None = None) -> str:
    """The mode to use: `memory` itself unless "auto"; "auto" is full where memory is not an accelerator's
    own (CPU, Apple's unified memory) or plenty is free, else balanced, else low."""
    import torch

    check_memory_mode(memory)
    if memory != "auto":
        return memory
    if torch.device(device).type != "cuda":
        return "full"
    free_bytes = free_memory(device) if free_bytes is None else free_bytes
    if free_bytes >= FULL_NEEDS_BYTES:
        chosen = "full"
    elif free_bytes >= BALANCED_NEEDS_BYTES:
        chosen = "balanced"
    else:
        chosen = "low"
    log.info("memory mode auto: %.1f GiB free on %s → %s", free_bytes / GIB, device, chosen)
    return chosen


def _stream(module: torch.nn.Module, device: torch.device, offload_type: str) -> None:
    """Keep `module`'s weights in CPU memory and move them onto `device` group by group as it runs
    (diffusers group offloading; on CUDA the next group is prefetched on a side stream)."""
    import torch

    on_cuda = device.type == "cuda"
    module.to("cpu")
    module.enable_group_offload(onload_device=device, offload_device=torch.device("cpu"),
                                offload_type=offload_type, num_blocks_per_group=1 if offload_type == "block_level"
                                else None, use_stream=on_cuda, non_blocking=on_cuda)


def is_streamed(module: torch.nn.Module) -> bool:
    """Whether diffusers' group offloading streams `module`'s weights."""
    from diffusers.hooks.group_offloading import _is_group_offload_enabled

    return _is_group_offload_enabled(module)


def place_models(unet, controlnet, vae, device: torch.device, mode: str) -> None:
    """Put the denoising models where `mode` says (see the module docstring)."""
    if mode == "full":
        for module in (unet, controlnet, vae):
            module.to(device)
    elif mode == "balanced":
        unet.to(device)
        vae.to(device)
        _stream(controlnet, device, "block_level")
    elif mode == "low":
        for module in (unet, controlnet, vae):
            _stream(module, device, "leaf_level")
    else:
        raise UsageError(f"memory mode {mode!r} cannot place models (use full, balanced or low)")


def batch_size_for(device: torch.device, faces: int, limit: int | None = None) -> int:
    """How many faces to denoise in one batch: what free accelerator memory holds (at least 1, at most
    MAX_BATCH), CPU_BATCH on the CPU, 1 on MPS (its memory cannot be asked)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        size = max(1, min(MAX_BATCH, free_memory(device) // FACE_WORKING_BYTES))
    elif device.type == "cpu":
        size = CPU_BATCH
    else:
        size = 1
    if limit is not None:
        size = min(size, max(1, int(limit)))
    return max(1, min(size, faces))
