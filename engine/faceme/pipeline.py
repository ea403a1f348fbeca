"""FaceMePipeline: restore aligned 512×512 face crops with SDXL + ControlNet + identity tokens.

The released inference procedure (see the project's FACEME spec):
- ControlNet condition = the LQ crop in [-1, 1], conditioning scale 1.0;
- initial latent = scheduler.add_noise(VAE latent sample × scaling factor, noise, t=999);
- DDPM with the base model's scheduler config, 50 steps ("leading" spacing, offset 1: first t = 981);
- each step predicts noise for two prompt branches in one batch, plain and identity, and combines
  them as plain + scale × (identity − plain); with no references only the plain branch runs (blind);
- VAE decode, then the wavelet colour fix against the LQ.

Output rounding, as the release does it: the decoded image is rounded to uint8; with the colour fix,
that uint8 image and the uint8 LQ are taken to [0, 1], colour-fixed, clamped to [0, 1], and TRUNCATED
to uint8 (×255, then `floor`, like the release's `astype(uint8)`), not rounded. Without the colour fix
the release takes the rounded decode back to [-1, 1] and out again in float64, truncating: levels
10, 18, 26, 34, 42, 50 and 58 come out one lower (`RELEASE_LEVELS`). (`rgb_output`)

Random numbers come from one CPU generator per face, drawn in this order: the VAE latent sample, the
initial noise, then each DDPM step's variance noise. A seeded run is therefore reproducible on any
device, and a face restored in a batch (`restore_faces`: B faces × their guidance branches in one
denoising) draws exactly the numbers it would draw restored alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.errors import FaceMeError, ModelPackError, UsageError
from engine.faceme.color_fix import wavelet_color_fix
from engine.faceme.conditioning import EncodedPrompt, PromptEmbeddings, encode_prompt, identity_prompt
from engine.faceme.memory import (batch_size_for, check_memory_mode, choose_memory_mode, place_models,
                                  resolve_device, resolve_dtype)
from engine.faceme.references import Reference, identity_tokens
from engine.models.layout import PARTS, check_before_loading, check_part, find_file, part_dir
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report

log = logging.getLogger(__name__)

RESOLUTION = 512
NOISE_TIMESTEP = 999
#: Preview mode: steps of the multistep solver (trades output for speed; see FaceMePipeline.preview).
PREVIEW_STEPS = 12

__all__ = ["FaceMePipeline", "resolve_device", "resolve_dtype", "PREVIEW_STEPS"]


# ---- the steps of the procedure, as plain functions ----------------------------------------------

def lq_resized(lq_rgb: np.ndarray, resolution: int = RESOLUTION) -> np.ndarray:
    """RGB uint8 (H, W, 3) (or grey) → RGB uint8 (R, R, 3), resized (bicubic) when needed."""
    image = np.asarray(lq_rgb)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = image[..., :3]
    if image.dtype != np.uint8:
        raise UsageError(f"the LQ image must be uint8 RGB, got {image.dtype}")
    if image.shape[:2] != (resolution, resolution):
        image = np.asarray(Image.fromarray(image).resize((resolution, resolution), Image.BICUBIC))
    return np.ascontiguousarray(image)


def lq_to_tensor(lq_rgb: np.ndarray, resolution: int = RESOLUTION) -> torch.Tensor:
    """RGB uint8 (H, W, 3) → (1, 3, R, R) float32 in [-1, 1], resized (bicubic) when needed."""
    image = lq_resized(lq_rgb, resolution)
    tensor = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float() / 127.5 - 1.0
    return tensor.unsqueeze(0)


def tensor_to_rgb(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] → RGB uint8 (H, W, 3), rounded."""
    pixels = ((image[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(1, 2, 0).cpu().numpy()


def _release_levels() -> np.ndarray:
    """What the release writes for each level of its rounded decode without the colour fix:
    `astype(uint8)` of the float64 `(level / 255. * 2. - 1.) * 127.5 + 127.5`."""
    levels = np.arange(256, dtype=np.float64)
    return ((levels / 255.0 * 2.0 - 1.0) * 127.5 + 127.5).astype(np.uint8)


#: level of the rounded decode -> the release's output level without the colour fix (7 levels one lower)
RELEASE_LEVELS = _release_levels()


def rgb_output(decoded: torch.Tensor, lq_rgb: np.ndarray, color_fix: bool) -> np.ndarray:
    """One decoded image (1, 3, H, W) in [-1, 1] → the output RGB uint8, rounded as the release does:
    decode rounded to uint8; without the colour fix, each level as the release's float64 round trip
    leaves it (`RELEASE_LEVELS`); with it, both uint8 images in [0, 1], fixed, clamped and truncated
    (the release's `astype(uint8)`)."""
    rounded = tensor_to_rgb(decoded)
    if not color_fix:
        return RELEASE_LEVELS[rounded]
    restored = torch.from_numpy(rounded).permute(2, 0, 1)[None].float() / 255.0
    lq = torch.from_numpy(np.array(lq_rgb, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255.0
    fixed = wavelet_color_fix(restored, lq).clamp(0, 1)
    return (fixed[0] * 255.0).floor().to(torch.uint8).permute(1, 2, 0).numpy()


def randn(shape, generator: torch.Generator, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Gaussian noise drawn on the generator's (CPU) device, then moved: identical on any device."""
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)


def _module_dtype(module) -> torch.dtype:
    return next(module.parameters()).dtype


@torch.no_grad()
def initial_latents(vae, scheduler, lq: torch.Tensor, generator: torch.Generator | Sequence[torch.Generator],
                    dtype: torch.dtype, device: torch.device | None = None) -> torch.Tensor:
    """add_noise(VAE latent sample × scaling factor, fresh noise, t=999), for a batch of LQ images.

    `generator`: one per image (a single one for a batch of one). Each image draws its latent sample's
    noise, then its initial noise, from its own generator, so batching does not change any image.
    `device`: where the VAE runs (default: where its weights are; offloaded VAEs need it said).
    """
    generators = [generator] if isinstance(generator, torch.Generator) else list(generator)
    if len(generators) != lq.shape[0]:
        raise ValueError(f"{lq.shape[0]} image(s) but {len(generators)} generator(s)")
    device = device if device is not None else next(vae.parameters()).device
    dist = vae.encode(lq.to(device=device, dtype=_module_dtype(vae))).latent_dist
    mean, std = dist.mean, dist.std
    latents = []
    for i, gen in enumerate(generators):
        eps = randn(mean[i:i + 1].shape, gen, mean.device, mean.dtype)
        latent = ((mean[i:i + 1] + std[i:i + 1] * eps) * vae.config.scaling_factor).to(dtype)
        noise = randn(latent.shape, gen, latent.device, dtype)
        latents.append((latent, noise))
    latent = torch.cat([pair[0] for pair in latents])
    noise = torch.cat([pair[1] for pair in latents])
    timestep = torch.full((latent.shape[0],), NOISE_TIMESTEP, dtype=torch.long, device=latent.device)
    return scheduler.add_noise(latent, noise, timestep)


@torch.no_grad()
def predict_noise(unet, controlnet, latents: torch.Tensor, timestep, branches: Sequence[PromptEmbeddings],
                  control: torch.Tensor, conditioning_scale: float = 1.0) -> torch.Tensor:
    """Noise predictions (len(branches), C, h, w), all branches in one batched forward.

    `latents` and `control` hold one row per branch, or one row shared by every branch. The ControlNet
    sees the same prompt embedding as the UNet in each branch.
    """
    n = len(branches)
    latent_in = latents.expand(n, *latents.shape[1:]) if latents.shape[0] == 1 else latents
    control_in = control.expand(n, *control.shape[1:]) if control.shape[0] == 1 else control
    if latent_in.shape[0] != n or control_in.shape[0] != n:
        raise ValueError(f"{n} branches but {latents.shape[0]} latent and {control.shape[0]} control rows")
    embeds = torch.cat([b.embeds for b in branches])
    added = {"text_embeds": torch.cat([b.pooled for b in branches]),
             "time_ids": torch.cat([b.time_ids for b in branches])}
    down, mid = controlnet(latent_in, timestep, encoder_hidden_states=embeds, controlnet_cond=control_in,
                           conditioning_scale=conditioning_scale, added_cond_kwargs=added,
                           return_dict=False)
    return unet(latent_in, timestep, encoder_hidden_states=embeds, added_cond_kwargs=added,
                down_block_additional_residuals=down, mid_block_additional_residual=mid,
                return_dict=False)[0]


def combine_guidance(noise: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """noise = [plain] (blind) or [plain, identity] → plain + scale × (identity − plain)."""
    if noise.shape[0] == 1:
        return noise
    plain, identity = noise[0:1], noise[1:2]
    return plain + guidance_scale * (identity - plain)


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """Latents → image in [-1, 1] (float32), decoded in the VAE's own dtype."""
    image = vae.decode(latents.to(dtype=_module_dtype(vae)) / vae.config.scaling_factor, return_dict=False)[0]
    return image.float().clamp(-1, 1)


def preview_scheduler(scheduler):
    """DPM-Solver++ (multistep, diffusers) on the base model's noise schedule, with "trailing" spacing so
    that its first step is t = 999, where the initial latent was noised. Fewer steps, different output."""
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler.from_config(scheduler.config, algorithm_type="dpmsolver++",
                                                   solver_order=2, timestep_spacing="trailing",
                                                   final_sigmas_type="zero")


# ---- loading ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def _library_progress_bars_disabled():
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    previous = [(lib, lib.is_progress_bar_enabled()) for lib in (diffusers_logging, transformers_logging)]
    for lib, _ in previous:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, enabled in previous:
            if enabled:
                lib.enable_progress_bar()


def _has_fp16_variant(folder: Path) -> bool:
    """Whether this sub-folder's installed weights are the fp16 variant, as the part's install record says
    (the files that were checked), never from whatever else lies in the folder; without a record (a folder
    loaded outside a pack), from the folder's files."""
    from engine.models.integrity import read_record

    record = read_record(folder.parent)
    names = [Path(rel) for rel in record.files if Path(rel).parent.name == folder.name] if record is not None \
        else list(folder.iterdir())
    return any(n.name.endswith((".fp16.safetensors", ".fp16.bin")) for n in names)


def _part_error(name: str, exc: Exception, path: Path) -> ModelPackError:
    return ModelPackError(f"{PARTS[name].title} could not be loaded ({exc.__class__.__name__}: {exc})",
                          path, part=name, hint=f"get it: {PARTS[name].where_to_get}")


def require_part(models_dir: Path, name: str) -> Path:
    """The part's folder, or ModelPackError naming the part and where to get it."""
    status = check_part(Path(models_dir), name)
    if not status.ok:
        raise ModelPackError(f"{PARTS[name].title} is {status.state}: {status.detail}",
                             part=name, hint=f"get it: {status.where_to_get}")
    return part_dir(Path(models_dir), name)


@dataclass
class BaseModel:
    """The SDXL base (RealVisXL layout): what both inference and training take from the pack."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module | None
    text_encoder_2: torch.nn.Module | None
    tokenizer: object
    tokenizer_2: object
    scheduler: object  # DDPMScheduler with the base model's config


def load_text_encoder(models_dir: str | Path, subfolder: str, dtype: torch.dtype = torch.float32):
    """One of the base model's text encoders ("text_encoder": CLIP-L, "text_encoder_2": OpenCLIP-bigG
    with projection), frozen, on the CPU."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    base = require_part(Path(models_dir), "realvisxl")
    model_cls = {"text_encoder": CLIPTextModel, "text_encoder_2": CLIPTextModelWithProjection}[subfolder]
    try:
        variant = "fp16" if _has_fp16_variant(base / subfolder) else None
        encoder = model_cls.from_pretrained(base, subfolder=subfolder, dtype=dtype, variant=variant)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise _part_error("realvisxl", exc, base) from exc
    return encoder.eval().requires_grad_(False)


def load_base_model(models_dir: str | Path, dtype: torch.dtype = torch.float32,
                    text_encoders: bool = True) -> BaseModel:
    """Load the base model's diffusers folders (fp16-variant files when those are what is installed),
    modules frozen and in eval mode, on the CPU. The VAE stays fp32 when its config asks for it.
    `text_encoders=False` leaves both text encoders unloaded (None): the prompt comes from its cache."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTokenizer

    base = require_part(Path(models_dir), "realvisxl")
    try:
        def diffusers_part(model_cls, sub, load_dtype=dtype):
            variant = "fp16" if _has_fp16_variant(base / sub) else None
            return model_cls.from_pretrained(base, subfolder=sub, torch_dtype=load_dtype, variant=variant)

        unet = diffusers_part(UNet2DConditionModel, "unet")
        vae_config = AutoencoderKL.load_config(base, subfolder="vae")
        # fp16 SDXL VAEs overflow; their config asks for fp32 (force_upcast).
        vae_dtype = torch.float32 if dtype != torch.float32 and vae_config.get("force_upcast", True) else dtype
        vae = diffusers_part(AutoencoderKL, "vae", vae_dtype)
        tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
        tokenizer_2 = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer_2")
        scheduler = DDPMScheduler.from_config(DDPMScheduler.load_config(base, subfolder="scheduler"))
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise _part_error("realvisxl", exc, base) from exc
    text_encoder = load_text_encoder(models_dir, "text_encoder", dtype) if text_encoders else None
    text_encoder_2 = load_text_encoder(models_dir, "text_encoder_2", dtype) if text_encoders else None
    for module in (unet, vae):
        module.eval().requires_grad_(False)
    return BaseModel(unet, vae, text_encoder, text_encoder_2, tokenizer, tokenizer_2, scheduler)


class FaceMePipeline:
    """FaceMe restoration of aligned 512×512 face crops.

    Components: `unet`, `vae`, `scheduler` (DDPM), `controlnet` (what denoising needs, placed by the
    memory mode), `mix`; `tokenizer`, `tokenizer_2`; and, loaded only when used and releasable:
    `text_encoder`, `text_encoder_2` (needed only when the prompt is not cached), `id_encoder` (CLIP
    image encoder) and `face_analyzer` (InsightFace; both only to make identity tokens). Components
    passed to the constructor stay as given; `from_pack` passes loaders for the on-demand ones.
    """

    def __init__(self, unet, vae, text_encoder, text_encoder_2, tokenizer, tokenizer_2, scheduler,
                 controlnet, id_encoder, mix, face_analyzer=None, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, *, loaders: dict[str, Callable[[], object]] | None = None,
                 memory_mode: str = "full", prompt: EncodedPrompt | None = None,
                 prompt_cache_file: Path | None = None):
        self.unet = unet
        self.vae = vae
        self.tokenizer = tokenizer
        self.tokenizer_2 = tokenizer_2
        self.scheduler = scheduler
        self.controlnet = controlnet
        self.mix = mix
        self.device = torch.device(device)
        self.dtype = dtype
        self.memory_mode = memory_mode
        #: name -> () -> component, for the components loaded on demand (see `_component`)
        self._loaders = dict(loaders or {})
        self._components = {"text_encoder": text_encoder, "text_encoder_2": text_encoder_2,
                            "id_encoder": id_encoder, "face_analyzer": face_analyzer}
        self._prompt = prompt
        self._prompt_cache_file = prompt_cache_file

    # -- components loaded on demand
    def _component(self, name: str):
        if self._components[name] is None and name in self._loaders:
            log.info("loading %s on demand", name)
            with _library_progress_bars_disabled():
                self._components[name] = self._loaders[name]()
        return self._components[name]

    def _release(self, *names: str) -> None:
        released = [n for n in names if self._components[n] is not None and n in self._loaders]
        for name in released:
            self._components[name] = None
        if released:
            log.info("released %s", ", ".join(released))
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    text_encoder = property(lambda self: self._component("text_encoder"),
                            lambda self, value: self._components.__setitem__("text_encoder", value))
    text_encoder_2 = property(lambda self: self._component("text_encoder_2"),
                              lambda self, value: self._components.__setitem__("text_encoder_2", value))
    id_encoder = property(lambda self: self._component("id_encoder"),
                          lambda self, value: self._components.__setitem__("id_encoder", value))
    face_analyzer = property(lambda self: self._component("face_analyzer"),
                             lambda self, value: self._components.__setitem__("face_analyzer", value))

    def loaded_components(self) -> list[str]:
        """Which of the on-demand components are in memory now."""
        return [name for name, value in self._components.items() if value is not None]

    def release_reference_models(self) -> None:
        """Drop the CLIP image encoder and the face analyzer (loaded again when next needed): call it once
        the identity tokens of the people at hand are made."""
        self._release("id_encoder", "face_analyzer")

    def release_text_encoders(self) -> None:
        self._release("text_encoder", "text_encoder_2")

    # -- loading from the model pack
    @classmethod
    def from_pack(cls, models_dir: str | Path, device: str | torch.device = "auto",
                  dtype: str | torch.dtype = "auto", providers: Sequence | None = None, *,
                  memory: str = "auto", prompt_cache: bool | str | Path = True,
                  compile: bool | str = False) -> FaceMePipeline:
        """Load the five parts from a model pack folder (layout: engine.models.layout).

        `memory`: auto, full, balanced or low (engine.faceme.memory). `prompt_cache`: True (the user
        cache folder), a folder, or False (encode the prompt at every load, text encoders kept).
        `compile`: torch.compile the UNet and ControlNet (True: inductor, or a backend name) — trades a
        slow first face, and output equal only up to float noise, for speed; full memory mode only.
        """
        # transformers and diffusers draw tqdm bars while loading; our callers report progress their own
        # way (CLI bar, GUI signals), so the libraries' bars are off for the duration of the load.
        with _library_progress_bars_disabled():
            return cls._load_from_pack(models_dir, device, dtype, providers, memory, prompt_cache, compile)

    @classmethod
    def _load_from_pack(cls, models_dir, device, dtype, providers, memory, prompt_cache, compile) -> FaceMePipeline:
        from diffusers import ControlNetModel

        from engine.faceme.id_encoder import load_id_encoder
        from engine.faceme.mix import load_mix
        from engine.faceme.prompt_cache import cache_key, cache_path, load_cached_prompt
        from engine.faces.insightface_backend import InsightFaceAnalyzer, providers_for_device
        from engine.settings import default_cache_dir

        models_dir = Path(models_dir)
        check_memory_mode(memory)
        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        mode = choose_memory_mode(memory, device)  # free accelerator memory now, before any weights arrive
        if compile and mode != "full":
            raise UsageError("torch.compile needs the models resident: use it with --memory full")
        check_before_loading(models_dir, ("realvisxl", "photomaker", "faceme-controlnet", "faceme-mix", "antelopev2"))
        base_dir = part_dir(models_dir, "realvisxl")

        cache_file, prompt = None, None
        if prompt_cache is not False:
            folder = default_cache_dir() if prompt_cache is True else Path(prompt_cache)
            cache_file = cache_path(folder, cache_key(base_dir, dtype, device))
            prompt = load_cached_prompt(cache_file, device, dtype)
            log.info("prompt embeddings %s %s", "read from" if prompt is not None else "will be cached in",
                     cache_file)
        base_model = load_base_model(models_dir, dtype, text_encoders=prompt is None)
        unet, vae, scheduler = base_model.unet, base_model.vae, base_model.scheduler

        controlnet_dir = part_dir(models_dir, "faceme-controlnet")
        try:
            controlnet = ControlNetModel.from_pretrained(controlnet_dir, torch_dtype=dtype)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise _part_error("faceme-controlnet", exc, controlnet_dir) from exc
        controlnet.eval().requires_grad_(False)

        photomaker = find_file(models_dir, "photomaker", PARTS["photomaker"].files[0])
        mix = load_mix(find_file(models_dir, "faceme-mix", ("mix.safetensors",)), device=device, dtype=dtype)
        if providers is None:
            providers = providers_for_device(device)
        antelope = part_dir(models_dir, "antelopev2")

        loaders = {"id_encoder": lambda: load_id_encoder(photomaker, device=device, dtype=dtype),
                   "face_analyzer": lambda: InsightFaceAnalyzer(antelope, providers=providers),
                   "text_encoder": lambda: load_text_encoder(models_dir, "text_encoder", dtype).to(device),
                   "text_encoder_2": lambda: load_text_encoder(models_dir, "text_encoder_2", dtype).to(device)}
        place_models(unet, controlnet, vae, device, mode)
        text_encoder, text_encoder_2 = base_model.text_encoder, base_model.text_encoder_2
        if text_encoder is not None:
            text_encoder, text_encoder_2 = text_encoder.to(device), text_encoder_2.to(device)
        pipeline = cls(unet, vae, text_encoder, text_encoder_2, base_model.tokenizer, base_model.tokenizer_2,
                       scheduler, controlnet, None, mix, None, device=device, dtype=dtype, loaders=loaders,
                       memory_mode=mode, prompt=prompt, prompt_cache_file=cache_file)
        if cache_file is not None and prompt is None:
            pipeline.prompt  # noqa: B018 - encode now, write the cache, drop the text encoders
        if compile:
            pipeline.compile_models("inductor" if compile is True else str(compile))
        log.info("FaceMe loaded from %s on %s (%s, memory %s)", models_dir, device, dtype, mode)
        return pipeline

    def compile_models(self, backend: str = "inductor") -> None:
        """torch.compile the UNet and ControlNet (off by default: a slow first face, then faster; output
        equal up to float noise)."""
        self.unet = torch.compile(self.unet, backend=backend)
        self.controlnet = torch.compile(self.controlnet, backend=backend)

    # -- conditioning
    @property
    def prompt(self) -> EncodedPrompt:
        """The fixed prompt, encoded once (and, from a pack, cached on disk: later loads skip the text
        encoders)."""
        if self._prompt is None:
            self._prompt = encode_prompt(self.tokenizer, self.tokenizer_2, self.text_encoder,
                                         self.text_encoder_2, device=self.device, dtype=self.dtype)
            if self._prompt_cache_file is not None:
                from engine.faceme.prompt_cache import save_prompt

                try:
                    save_prompt(self._prompt_cache_file, self._prompt)
                except OSError as exc:  # a read-only cache folder costs the next load time, nothing else
                    log.warning("could not write the prompt cache %s: %s", self._prompt_cache_file, exc)
                self.release_text_encoders()
        return self._prompt

    def encode_identity(self, references: Sequence[Reference], progress: ProgressCallback | None = None,
                        cancel: CancelCheck | None = None) -> torch.Tensor:
        """Reference photos (paths or RGB arrays) → identity tokens (N, token_dim), reusable in a batch."""
        if self.face_analyzer is None:
            raise FaceMeError("this pipeline has no face analyzer; pass identity tokens instead")
        return identity_tokens(references, self.face_analyzer, self.id_encoder, self.mix, progress, cancel)

    def branches(self, tokens: torch.Tensor | None) -> list[PromptEmbeddings]:
        """[plain] without identity (blind), else [plain, identity]."""
        plain = self.prompt.plain
        if tokens is None or len(tokens) == 0:
            return [plain]
        return [plain, identity_prompt(self.prompt, tokens)]

    # -- restoration
    @torch.no_grad()
    def __call__(self, lq: np.ndarray, references: Sequence[Reference] = (), steps: int = 50,
                 guidance_scale: float = 5.0, conditioning_scale: float = 1.0, seed: int | None = None,
                 color_fix: bool = True, progress: ProgressCallback | None = None,
                 cancel: CancelCheck | None = None, identity: torch.Tensor | None = None) -> np.ndarray:
        """Restore `lq` (RGB uint8 face crop, resized to 512 if needed) → 512×512 RGB uint8.

        `references`: reference photos of the same person (paths or RGB arrays), or `identity`:
        tokens from `encode_identity` (for a batch of faces of one person). Neither: blind restoration.
        """
        if identity is None and len(references) > 0:
            identity = self.encode_identity(references, cancel=cancel)
        return self.restore_faces([lq], [identity], [seed], steps=steps, guidance_scale=guidance_scale,
                                  conditioning_scale=conditioning_scale, color_fix=color_fix,
                                  progress=progress, cancel=cancel, batch_size=1)[0]

    @torch.no_grad()
    def preview(self, lq: np.ndarray, identity: torch.Tensor | None = None, seed: int | None = None,
                steps: int = PREVIEW_STEPS, guidance_scale: float = 5.0, color_fix: bool = True,
                progress: ProgressCallback | None = None, cancel: CancelCheck | None = None) -> np.ndarray:
        """A quick look (trades output for speed): the same model with a multistep DPM-Solver++ in
        `steps` steps (default 12) instead of 50 DDPM steps. Not the released procedure's output."""
        return self.restore_faces([lq], [identity], [seed], steps=steps, guidance_scale=guidance_scale,
                                  color_fix=color_fix, progress=progress, cancel=cancel, batch_size=1,
                                  preview=True)[0]

    @torch.no_grad()
    def restore_faces(self, crops: Sequence[np.ndarray], identities: Sequence[torch.Tensor | None] | None = None,
                      seeds: Sequence[int | None] | None = None, steps: int = 50, guidance_scale: float = 5.0,
                      conditioning_scale: float = 1.0, color_fix: bool = True,
                      progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
                      batch_size: int | None = None, preview: bool = False) -> list[np.ndarray]:
        """Restore several face crops, B at a time in one batched denoising (B faces × their guidance
        branches per forward). Face i uses `identities[i]` (tokens from `encode_identity`, or None:
        blind) and its own generator seeded with `seeds[i]` (None: random), so its result equals
        restoring it alone with that seed (up to float noise of the larger batch, ≤ 1 level).

        `batch_size`: faces per batch (default: what free accelerator memory holds, see
        engine.faceme.memory.batch_size_for). `preview`: the quick multistep solver (see `preview`).
        Progress counts denoising steps over all batches.
        """
        if steps < 1:
            raise UsageError(f"steps must be at least 1 (got {steps})")
        n = len(crops)
        identities = list(identities) if identities is not None else [None] * n
        seeds = list(seeds) if seeds is not None else [None] * n
        if len(identities) != n or len(seeds) != n:
            raise UsageError(f"{n} crops need {n} identities and {n} seeds "
                             f"(got {len(identities)} and {len(seeds)})")
        if n == 0:
            return []
        seeds = [int.from_bytes(os.urandom(7), "little") if s is None else int(s) for s in seeds]
        size = batch_size_for(self.device, n, batch_size)
        chunks = [range(i, min(i + size, n)) for i in range(0, n, size)]
        total = steps * len(chunks)
        report(progress, 0, total, "denoising")
        results: list[np.ndarray] = []
        for c, chunk in enumerate(chunks):
            done_before = c * steps

            def chunk_progress(done, _total, message, offset=done_before):
                report(progress, offset + done, total, message)

            results += self._restore_batch([crops[i] for i in chunk], [identities[i] for i in chunk],
                                           [seeds[i] for i in chunk], steps, guidance_scale, conditioning_scale,
                                           color_fix, chunk_progress, cancel, preview)
        return results

    def _restore_batch(self, crops, identities, seeds, steps, guidance_scale, conditioning_scale, color_fix,
                       progress, cancel, preview) -> list[np.ndarray]:
        log.info("restoring %d face(s), seeds %s, %d %s steps, guidance %.2f, identity tokens %s", len(crops),
                 seeds, steps, "preview (DPM-Solver++)" if preview else "DDPM", guidance_scale,
                 [0 if t is None else len(t) for t in identities])
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        lq_images = [lq_resized(crop) for crop in crops]
        lq = torch.cat([lq_to_tensor(image) for image in lq_images]).to(self.device)
        control = lq.to(self.dtype)
        # every face's guidance branches, flattened: rows[k] is the face of branch k
        per_face = [self.branches(tokens) for tokens in identities]
        flat_branches = [b for branches in per_face for b in branches]
        rows = torch.tensor([i for i, branches in enumerate(per_face) for _ in branches], device=self.device)
        bounds = np.cumsum([0] + [len(b) for b in per_face])

        scheduler = preview_scheduler(self.scheduler) if preview else self.scheduler
        # the initial latent is the released one in preview too: DDPM's add_noise at t = 999
        latents = initial_latents(self.vae, self.scheduler, lq, generators, self.dtype, device=self.device)
        scheduler.set_timesteps(steps, device=self.device)
        timesteps = scheduler.timesteps
        step_generator = generators if len(generators) > 1 else generators[0]
        for i, t in enumerate(timesteps):
            check_cancelled(cancel, "restoration")
            model_in = scheduler.scale_model_input(latents, t)
            noise = predict_noise(self.unet, self.controlnet, model_in[rows], t, flat_branches, control[rows],
                                  conditioning_scale)
            guided = torch.cat([combine_guidance(noise[bounds[f]:bounds[f + 1]], guidance_scale)
                                for f in range(len(per_face))])
            latents = scheduler.step(guided, t, latents, generator=step_generator, return_dict=False)[0]
            report(progress, i + 1, len(timesteps), "denoising")
        check_cancelled(cancel, "restoration")
        images = decode_latents(self.vae, latents)
        return [rgb_output(images[f:f + 1], lq_images[f], color_fix) for f in range(len(crops))]
