"""A person adapter (PFStorer's idea on FaceMe): low-rank adapters on the UNet's attention, trained on the
person's faces with the frozen pack's own denoising loss, restored with at a strength the user chooses.

The adapters are peft LoRA layers on every attention projection of the UNet (`TARGET_MODULES`: query,
key, value, output), added and trained on the pipeline's own UNet with the person's identity prompt
(their reference tokens, as a restoration uses them), then saved in diffusers' LoRA format (the
`unet.`-prefixed file `StableDiffusionXLPipeline.load_lora_weights` reads) as one safetensors file, and
removed again. A restoration loads that file through diffusers' LoRA loading (`load_lora_into_unet`)
into the UNet once (`LoadedAdapters`), and switches it on only while that person's faces are denoised
(`AdapterUse.active`, at the strength: PFStorer's balance between the base model and the person,
here the user's); every other face sees the UNet exactly as it was.

PFStorer's generative regularizer (training also on unpaired noise to keep the adapter from copying
the degraded input) and its learned per-block balance are not reproduced: the strength is one number.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.errors import FaceMeError, UsageError
from engine.learn.checkpoint import atomic_write
from engine.learn.denoising import (DenoisingModels, FitSettings, TrainingFaces, denoising_loss,
                                   gradient_checkpointing, mean_loss, run_fit)
from engine.progress import CancelCheck, ProgressCallback

log = logging.getLogger(__name__)

#: the UNet's attention projections the adapters sit on (diffusers' Attention module names)
TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
DEFAULT_RANK = 8
#: the defaults of an adapter fit (more steps than an identity: many more weights)
ADAPTER_SETTINGS = FitSettings(steps=400, learning_rate=1e-4, checkpoint_every=50)
#: the name the adapter is trained under (a peft adapter name must not be a module attribute)
TRAINING_NAME = "faceme_person_fit"


@dataclass(frozen=True)
class PersonAdapter:
    """A trained adapter file (diffusers LoRA safetensors), its SHA-256, rank, and the fit's figures."""

    path: Path
    sha256: str
    rank: int
    losses: list[float]
    loss_before: float
    loss_after: float
    resumed_from: int = 0


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _lora_config(rank: int):
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", lora_dropout=0.0,
                      target_modules=list(TARGET_MODULES))


def _seeded_init(parameters: dict[str, torch.nn.Parameter], rank: int, seed: int) -> None:
    """LoRA A ~ N(0, 1/rank²) from the fit's own generator (not torch's global one), B = 0 (the adapter
    starts as no change), all in float32 whatever the UNet's precision (Adam on fp16 weights loses steps)."""
    generator = torch.Generator("cpu").manual_seed(int(seed) + 7)
    with torch.no_grad():
        for name in sorted(parameters):
            p = parameters[name]
            p.data = p.data.float()
            if ".lora_A." in name:
                p.copy_(torch.randn(p.shape, generator=generator) / rank)
            else:
                p.zero_()
            p.requires_grad_(True)


def save_adapter_file(path: Path, state: dict[str, torch.Tensor], rank: int) -> None:
    """Write `state` (peft state dict of the UNet's adapter) in diffusers' SDXL LoRA format, atomically."""
    from diffusers.loaders.lora_pipeline import StableDiffusionXLLoraLoaderMixin

    metadata = _lora_config(rank).to_dict()
    metadata["target_modules"] = sorted(metadata["target_modules"])

    def write(temporary: Path) -> None:
        folder = Path(tempfile.mkdtemp(prefix=".adapter-", dir=temporary.parent))
        try:
            StableDiffusionXLLoraLoaderMixin.save_lora_weights(
                folder, unet_lora_layers={k: v.detach().float().cpu().contiguous() for k, v in state.items()},
                weight_name="adapter.safetensors", unet_lora_adapter_metadata=metadata)
            shutil.move(str(folder / "adapter.safetensors"), temporary)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    atomic_write(path, write)


def train_adapter(models: DenoisingModels, tokens, crops: Sequence[np.ndarray], out_path: Path,
                  settings: FitSettings = ADAPTER_SETTINGS, rank: int = DEFAULT_RANK,
                  checkpoint: Path | None = None, key: dict | None = None,
                  progress: ProgressCallback | None = None, cancel: CancelCheck | None = None) -> PersonAdapter:
    """Train LoRA adapters on `models.unet`'s attention on `crops` (the fit set) with the identity prompt
    of `tokens` (N, D: the person's reference tokens); write them to `out_path`. The UNet is left as it
    was (the adapter is removed after saving, also on error or cancel)."""
    from peft.utils import get_peft_model_state_dict

    if rank < 1:
        raise UsageError(f"the adapter rank must be at least 1 (got {rank})")
    unet = models.unet
    if TRAINING_NAME in (getattr(unet, "peft_config", None) or {}):
        unet.delete_adapters(TRAINING_NAME)  # left by a fit this process abandoned
    unet.add_adapter(_lora_config(rank), adapter_name=TRAINING_NAME)
    try:
        lora = {n: p for n, p in unet.named_parameters() if f".{TRAINING_NAME}." in n}
        _seeded_init(lora, rank, settings.seed)
        unet.set_adapters([TRAINING_NAME])
        unet.enable_adapters()  # person adapters loaded for restorations leave the LoRA layers switched off
        identity = torch.as_tensor(np.asarray(tokens, np.float32)).to(models.device)
        faces = TrainingFaces(models, crops, settings.resolution)

        def step_loss(step: int) -> torch.Tensor:
            return denoising_loss(models, faces, identity, settings, step)

        draws = list(range(min(settings.steps, 8)))
        run_key = {"method": "adapter", "rank": rank, "targets": list(TARGET_MODULES), **(key or {})}
        with gradient_checkpointing(models, settings.gradient_checkpointing):
            before = mean_loss(step_loss, draws)
            outcome = run_fit(lora, step_loss, settings, checkpoint, run_key, models.dtype, progress, cancel,
                              "training the adapter")
            after = mean_loss(step_loss, draws)
        state = get_peft_model_state_dict(unet, adapter_name=TRAINING_NAME)
        save_adapter_file(Path(out_path), state, rank)
    finally:
        unet.delete_adapters(TRAINING_NAME)
        if getattr(unet, "peft_config", None):  # adapters loaded for restorations: off again
            unet.disable_adapters()
        for p in unet.parameters():
            p.requires_grad_(False)
    log.info("person adapter: loss %.5f → %.5f over %d draws (%d steps) → %s", before, after, len(draws),
             settings.steps, out_path)
    return PersonAdapter(Path(out_path), file_sha256(Path(out_path)), rank, outcome.losses, before, after,
                         outcome.resumed_from)


class AdapterFileError(FaceMeError):
    """A stored adapter file is missing or is not the file that was stored (its hash differs)."""


class LoadedAdapters:
    """Person adapters loaded into one UNet through diffusers' LoRA loading, each once; none is active
    except inside `active` (so every restoration without one sees the UNet unchanged)."""

    def __init__(self, unet):
        self.unet = unet
        self.loaded: set[str] = set()
        self.lock = threading.RLock()

    def load(self, path: Path, sha256: str) -> str:
        """Load the adapter file (checked against its hash first) once; its name in the UNet."""
        from diffusers.loaders.lora_pipeline import StableDiffusionXLLoraLoaderMixin

        name = f"person_{sha256[:16]}"
        with self.lock:
            if name in self.loaded:
                return name
            path = Path(path)
            if not path.is_file():
                raise AdapterFileError("the person adapter file is missing", path)
            if file_sha256(path) != sha256:
                raise AdapterFileError("the person adapter file is not the one that was stored (changed since)", path)
            state, alphas, metadata = StableDiffusionXLLoraLoaderMixin.lora_state_dict(str(path),
                                                                                      return_lora_metadata=True)
            StableDiffusionXLLoraLoaderMixin.load_lora_into_unet(state, alphas, self.unet, adapter_name=name,
                                                                 metadata=metadata)
            self.unet.disable_adapters()
            self.loaded.add(name)
            log.info("person adapter %s loaded from %s", name, path)
            return name

    @contextmanager
    def active(self, name: str, strength: float) -> Iterator[None]:
        with self.lock:
            self.unet.set_adapters([name], weights=[float(strength)])
            self.unet.enable_adapters()
            try:
                yield
            finally:
                self.unet.disable_adapters()


_LOADED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOADED_LOCK = threading.Lock()


def loaded_adapters(unet) -> LoadedAdapters:
    """The adapters loaded into this UNet (one set per UNet for the life of the UNet)."""
    with _LOADED_LOCK:
        if unet not in _LOADED:
            _LOADED[unet] = LoadedAdapters(unet)
        return _LOADED[unet]


@dataclass(frozen=True)
class AdapterUse:
    """One person's adapter, loaded into a UNet, and the strength it is used at."""

    adapters: LoadedAdapters
    name: str
    strength: float = 1.0

    def active(self):
        """While the block runs, the UNet is the person's (the adapter on at `strength`)."""
        return self.adapters.active(self.name, self.strength)


def adapter_use(unet, path: Path, sha256: str, strength: float = 1.0) -> AdapterUse:
    adapters = loaded_adapters(unet)
    return AdapterUse(adapters, adapters.load(path, sha256), strength)
