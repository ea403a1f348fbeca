"""FaceMePipeline: restore one aligned 512×512 face crop with SDXL + ControlNet + identity tokens.

The released inference procedure (see the project's FACEME spec):
- ControlNet condition = the LQ crop in [-1, 1], conditioning scale 1.0;
- initial latent = scheduler.add_noise(VAE latent sample × scaling factor, noise, t=999);
- DDPM with the base model's scheduler config, 50 steps ("leading" spacing, offset 1: first t = 981);
- each step predicts noise for two prompt branches in one batch, plain and identity, and combines
  them as plain + scale × (identity − plain); with no references only the plain branch runs (blind);
- VAE decode, then the wavelet colour fix against the LQ.

Random numbers come from one CPU generator, drawn in this order: the VAE latent sample, the initial
noise, then each DDPM step's variance noise. A seeded run is therefore reproducible on any device.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.errors import FaceMeError, ModelPackError, UsageError
from engine.faceme.color_fix import wavelet_color_fix
from engine.faceme.conditioning import EncodedPrompt, PromptEmbeddings, encode_prompt, identity_prompt
from engine.faceme.references import Reference, identity_tokens
from engine.models.layout import PARTS, check_before_loading, check_part, find_file, part_dir
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report

log = logging.getLogger(__name__)

RESOLUTION = 512
NOISE_TIMESTEP = 999


# ---- device and precision -------------------------------------------------------------------------

def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise UsageError(f"unknown device {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} asked for, but CUDA is not available here")
    return resolved


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
             "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype not in names:
        raise UsageError(f"unknown dtype {dtype!r} (use auto, float32, float16 or bfloat16)")
    return names[dtype]


# ---- the steps of the procedure, as plain functions ----------------------------------------------

def lq_to_tensor(lq_rgb: np.ndarray, resolution: int = RESOLUTION) -> torch.Tensor:
    """RGB uint8 (H, W, 3) → (1, 3, R, R) float32 in [-1, 1], resized (bicubic) when needed."""
    image = np.asarray(lq_rgb)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = image[..., :3]
    if image.dtype != np.uint8:
        raise UsageError(f"the LQ image must be uint8 RGB, got {image.dtype}")
    if image.shape[:2] != (resolution, resolution):
        image = np.asarray(Image.fromarray(image).resize((resolution, resolution), Image.BICUBIC))
    tensor = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float() / 127.5 - 1.0
    return tensor.unsqueeze(0)


def tensor_to_rgb(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] → RGB uint8 (H, W, 3)."""
    pixels = ((image[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(1, 2, 0).cpu().numpy()


def randn(shape, generator: torch.Generator, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Gaussian noise drawn on the generator's (CPU) device, then moved: identical on any device."""
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)


@torch.no_grad()
def initial_latents(vae, scheduler, lq: torch.Tensor, generator: torch.Generator,
                    dtype: torch.dtype) -> torch.Tensor:
    """add_noise(VAE latent sample × scaling factor, fresh noise, t=999)."""
    vae_param = next(vae.parameters())
    dist = vae.encode(lq.to(device=vae_param.device, dtype=vae_param.dtype)).latent_dist
    eps = randn(dist.mean.shape, generator, dist.mean.device, dist.mean.dtype)
    latents = (dist.mean + dist.std * eps) * vae.config.scaling_factor
    latents = latents.to(dtype)
    noise = randn(latents.shape, generator, latents.device, dtype)
    timestep = torch.tensor([NOISE_TIMESTEP], dtype=torch.long, device=latents.device)
    return scheduler.add_noise(latents, noise, timestep)


@torch.no_grad()
def predict_noise(unet, controlnet, latents: torch.Tensor, timestep, branches: Sequence[PromptEmbeddings],
                  control: torch.Tensor, conditioning_scale: float = 1.0) -> torch.Tensor:
    """Noise predictions (len(branches), C, h, w), all branches in one batched forward.

    The ControlNet sees the same prompt embedding as the UNet in each branch.
    """
    n = len(branches)
    latent_in = latents.expand(n, *latents.shape[1:])
    embeds = torch.cat([b.embeds for b in branches])
    added = {"text_embeds": torch.cat([b.pooled for b in branches]),
             "time_ids": torch.cat([b.time_ids for b in branches])}
    control_in = control.expand(n, *control.shape[1:])
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
    vae_param = next(vae.parameters())
    image = vae.decode(latents.to(dtype=vae_param.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    return image.float().clamp(-1, 1)


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
    return any(folder.glob("*.fp16.safetensors")) or any(folder.glob("*.fp16.bin"))


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
    text_encoder: torch.nn.Module
    text_encoder_2: torch.nn.Module
    tokenizer: object
    tokenizer_2: object
    scheduler: object  # DDPMScheduler with the base model's config


def load_base_model(models_dir: str | Path, dtype: torch.dtype = torch.float32) -> BaseModel:
    """Load the base model's diffusers folders (fp16-variant files when those are what is installed),
    modules frozen and in eval mode, on the CPU. The VAE stays fp32 when its config asks for it."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    base = require_part(Path(models_dir), "realvisxl")
    try:
        def diffusers_part(model_cls, sub, load_dtype=dtype):
            variant = "fp16" if _has_fp16_variant(base / sub) else None
            return model_cls.from_pretrained(base, subfolder=sub, torch_dtype=load_dtype, variant=variant)

        def transformers_part(model_cls, sub):
            variant = "fp16" if _has_fp16_variant(base / sub) else None
            return model_cls.from_pretrained(base, subfolder=sub, dtype=dtype, variant=variant)

        unet = diffusers_part(UNet2DConditionModel, "unet")
        vae_config = AutoencoderKL.load_config(base, subfolder="vae")
        # fp16 SDXL VAEs overflow; their config asks for fp32 (force_upcast).
        vae_dtype = torch.float32 if dtype != torch.float32 and vae_config.get("force_upcast", True) else dtype
        vae = diffusers_part(AutoencoderKL, "vae", vae_dtype)
        text_encoder = transformers_part(CLIPTextModel, "text_encoder")
        text_encoder_2 = transformers_part(CLIPTextModelWithProjection, "text_encoder_2")
        tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
        tokenizer_2 = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer_2")
        scheduler = DDPMScheduler.from_config(DDPMScheduler.load_config(base, subfolder="scheduler"))
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise _part_error("realvisxl", exc, base) from exc
    for module in (unet, vae, text_encoder, text_encoder_2):
        module.eval().requires_grad_(False)
    return BaseModel(unet, vae, text_encoder, text_encoder_2, tokenizer, tokenizer_2, scheduler)


class FaceMePipeline:
    """FaceMe restoration of an aligned 512×512 face crop.

    Components: `unet`, `vae`, `text_encoder`, `text_encoder_2`, `tokenizer`, `tokenizer_2`,
    `scheduler` (DDPM), `controlnet`, `id_encoder` (CLIP image encoder), `mix`, `face_analyzer`
    (InsightFace, for references; may be None when identity tokens are passed in directly).
    """

    def __init__(self, unet, vae, text_encoder, text_encoder_2, tokenizer, tokenizer_2, scheduler,
                 controlnet, id_encoder, mix, face_analyzer=None, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.unet = unet
        self.vae = vae
        self.text_encoder = text_encoder
        self.text_encoder_2 = text_encoder_2
        self.tokenizer = tokenizer
        self.tokenizer_2 = tokenizer_2
        self.scheduler = scheduler
        self.controlnet = controlnet
        self.id_encoder = id_encoder
        self.mix = mix
        self.face_analyzer = face_analyzer
        self.device = torch.device(device)
        self.dtype = dtype
        self._prompt: EncodedPrompt | None = None

    # -- loading from the model pack
    @classmethod
    def from_pack(cls, models_dir: str | Path, device: str | torch.device = "auto",
                  dtype: str | torch.dtype = "auto", providers: Sequence | None = None) -> FaceMePipeline:
        """Load the five parts from a model pack folder (layout: engine.models.layout)."""
        # transformers and diffusers draw tqdm bars while loading; our callers report progress their own
        # way (CLI bar, GUI signals), so the libraries' bars are off for the duration of the load.
        with _library_progress_bars_disabled():
            return cls._load_from_pack(models_dir, device, dtype, providers)

    @classmethod
    def _load_from_pack(cls, models_dir, device, dtype, providers) -> FaceMePipeline:
        from diffusers import ControlNetModel

        from engine.faceme.id_encoder import load_id_encoder
        from engine.faceme.mix import load_mix
        from engine.faces.insightface_backend import InsightFaceAnalyzer, providers_for_device

        models_dir = Path(models_dir)
        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        check_before_loading(models_dir, ("realvisxl", "photomaker", "faceme-controlnet", "faceme-mix", "antelopev2"))
        base_model = load_base_model(models_dir, dtype)
        unet, vae, scheduler = base_model.unet, base_model.vae, base_model.scheduler
        text_encoder, text_encoder_2 = base_model.text_encoder, base_model.text_encoder_2
        tokenizer, tokenizer_2 = base_model.tokenizer, base_model.tokenizer_2

        controlnet_dir = part_dir(models_dir, "faceme-controlnet")
        try:
            controlnet = ControlNetModel.from_pretrained(controlnet_dir, torch_dtype=dtype)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise _part_error("faceme-controlnet", exc, controlnet_dir) from exc

        photomaker = find_file(models_dir, "photomaker", PARTS["photomaker"].files[0])
        id_encoder = load_id_encoder(photomaker, device=device, dtype=dtype)
        mix = load_mix(find_file(models_dir, "faceme-mix", ("mix.safetensors",)), device=device, dtype=dtype)
        if providers is None:
            providers = providers_for_device(device)
        analyzer = InsightFaceAnalyzer(part_dir(models_dir, "antelopev2"), providers=providers)

        for module in (unet, vae, text_encoder, text_encoder_2, controlnet):
            module.to(device).eval().requires_grad_(False)
        log.info("FaceMe loaded from %s on %s (%s)", models_dir, device, dtype)
        return cls(unet, vae, text_encoder, text_encoder_2, tokenizer, tokenizer_2, scheduler, controlnet,
                   id_encoder, mix, analyzer, device=device, dtype=dtype)

    # -- conditioning
    @property
    def prompt(self) -> EncodedPrompt:
        """The fixed prompt, encoded once per loaded model."""
        if self._prompt is None:
            self._prompt = encode_prompt(self.tokenizer, self.tokenizer_2, self.text_encoder,
                                         self.text_encoder_2, device=self.device, dtype=self.dtype)
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
        if steps < 1:
            raise UsageError(f"steps must be at least 1 (got {steps})")
        if identity is None and len(references) > 0:
            identity = self.encode_identity(references, cancel=cancel)
        if seed is None:
            seed = int.from_bytes(os.urandom(7), "little")
        log.info("restoring with seed %d, %d steps, guidance %.2f, %d identity token(s)", seed, steps,
                 guidance_scale, 0 if identity is None else len(identity))
        generator = torch.Generator("cpu").manual_seed(int(seed))
        branches = self.branches(identity)

        lq_tensor = lq_to_tensor(lq).to(self.device)
        control = lq_tensor.to(self.dtype)
        latents = initial_latents(self.vae, self.scheduler, lq_tensor, generator, self.dtype)
        self.scheduler.set_timesteps(steps, device=self.device)
        timesteps = self.scheduler.timesteps
        report(progress, 0, len(timesteps), "denoising")
        for i, t in enumerate(timesteps):
            check_cancelled(cancel, "restoration")
            model_in = self.scheduler.scale_model_input(latents, t)
            noise = predict_noise(self.unet, self.controlnet, model_in, t, branches, control, conditioning_scale)
            noise = combine_guidance(noise, guidance_scale)
            latents = self.scheduler.step(noise, t, latents, generator=generator, return_dict=False)[0]
            report(progress, i + 1, len(timesteps), "denoising")
        check_cancelled(cancel, "restoration")
        image = decode_latents(self.vae, latents)
        if color_fix:
            image = wavelet_color_fix(image, lq_tensor.float()).clamp(-1, 1)
        return tensor_to_rgb(image)
