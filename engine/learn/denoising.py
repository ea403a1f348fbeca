"""The frozen pack's own denoising loss on a person's faces, and the seeded, resumable loop that lowers it.

One training pair is made as the released model was trained (the FACEME spec's training procedure): a
clean aligned face (the target, encoded by the VAE), its copy degraded by paper Eq. 6
(engine.faceme.degrade) as the ControlNet's input, a timestep uniform over the schedule, fresh noise; the
loss is the MSE between that noise and the UNet's prediction, with the identity prompt (the person's
tokens spliced in) given to both the UNet and the ControlNet. The models stay frozen; what is trained
is handed to `run_fit` (identity tokens, or adapter weights).

Everything random in step s (which faces, the degradation, the latent sample, noise, timestep) comes
from generators seeded by (seed, s) alone, and the optimizer's state is checkpointed with the trained
tensors, so a fit resumed from its checkpoint takes exactly the steps the uninterrupted fit would have.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import CancelledError, UsageError
from engine.learn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from engine.progress import CancelCheck, ProgressCallback, report

log = logging.getLogger(__name__)

#: the fp16 loss scale (a fixed one: its value is part of no checkpoint, so a resumed fit scales alike)
FP16_LOSS_SCALE = 1024.0


@dataclass(frozen=True)
class FitSettings:
    """How a fit runs. `resolution`: the side the faces are fitted at (512 as the model restores; smaller
    only for tests and smoke runs). `checkpoint_every`: steps between checkpoints (a kill loses at most
    these). `gradient_checkpointing`: recompute activations in the backward pass (GPU memory; None:
    on for CUDA)."""

    steps: int = 300
    learning_rate: float = 1e-3
    seed: int = 0
    resolution: int = 512
    batch_size: int = 1
    checkpoint_every: int = 25
    gradient_checkpointing: bool | None = None

    def __post_init__(self):
        if self.steps < 1:
            raise UsageError(f"steps must be at least 1 (got {self.steps})")
        if self.resolution % 64 or not 64 <= self.resolution <= 1024:
            raise UsageError(f"the fit resolution must be a multiple of 64 from 64 to 1024 (got {self.resolution})")
        if self.batch_size < 1 or self.checkpoint_every < 1 or self.learning_rate <= 0:
            raise UsageError("batch size and checkpoint interval must be at least 1, the learning rate positive")

    def trajectory_key(self) -> dict:
        """What the fit's path depends on (not how far it goes, nor how often it is saved)."""
        values = asdict(self)
        for name in ("steps", "checkpoint_every", "gradient_checkpointing"):
            values.pop(name)
        return values


@dataclass
class DenoisingModels:
    """The frozen parts a fit needs, as a loaded pipeline holds them."""

    unet: torch.nn.Module
    controlnet: torch.nn.Module
    vae: torch.nn.Module
    scheduler: object
    prompt: object  # engine.faceme.conditioning.EncodedPrompt
    device: torch.device
    dtype: torch.dtype

    @classmethod
    def from_pipeline(cls, pipeline) -> DenoisingModels:
        return cls(pipeline.unet, pipeline.controlnet, pipeline.vae, pipeline.scheduler, pipeline.prompt,
                   torch.device(pipeline.device), pipeline.dtype)


def resized(crop: np.ndarray, size: int) -> np.ndarray:
    import cv2

    crop = np.ascontiguousarray(np.asarray(crop)[..., :3])
    if crop.shape[:2] == (size, size):
        return crop
    shrinking = crop.shape[0] > size
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def to_model_range(images: Sequence[np.ndarray]) -> torch.Tensor:
    """RGB images (uint8, or float in [0, 1]) → (B, 3, H, W) float32 in [-1, 1]."""
    arrays = [np.asarray(i, np.float32) / (255.0 if np.asarray(i).dtype == np.uint8 else 1.0) for i in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) * 2.0 - 1.0


class TrainingFaces:
    """The clean faces of a fit at the fit resolution, with their VAE latent distributions (the VAE is
    frozen: each face is encoded once)."""

    def __init__(self, models: DenoisingModels, crops: Sequence[np.ndarray], resolution: int):
        if not crops:
            raise UsageError("a fit needs at least one face")
        self.clean = [resized(c, resolution) for c in crops]
        vae = models.vae
        vae_dtype = next(vae.parameters()).dtype
        means, stds = [], []
        with torch.no_grad():
            for face in self.clean:
                dist = vae.encode(to_model_range([face]).to(models.device, vae_dtype)).latent_dist
                means.append(dist.mean.float())
                stds.append(dist.std.float())
        self.mean, self.std = torch.cat(means), torch.cat(stds)

    def __len__(self) -> int:
        return len(self.clean)


def step_seed(seed: int, step: int) -> int:
    """The seed of step `step`'s torch generator: a pure function of the run's seed and the step."""
    return (int(seed) * 1_000_003 + int(step) * 7_919 + 17) % (2**63 - 1)


def training_batch(models: DenoisingModels, faces: TrainingFaces, settings: FitSettings, step: int):
    """(noisy latents, timesteps, noise, degraded inputs) of step `step`, all drawn from (seed, step)."""
    from engine.faceme.degrade import apply_degradation, sample_degradation

    rng = np.random.default_rng([int(settings.seed), int(step)])
    chosen = rng.integers(0, len(faces), size=settings.batch_size)
    degraded = [apply_degradation(faces.clean[i], sample_degradation(rng)) for i in chosen]
    control = to_model_range(degraded).to(models.device, models.dtype)
    generator = torch.Generator("cpu").manual_seed(step_seed(settings.seed, step))
    index = torch.from_numpy(chosen)
    mean, std = faces.mean[index.to(faces.mean.device)], faces.std[index.to(faces.std.device)]
    eps = torch.randn(mean.shape, generator=generator).to(mean.device)
    latents = ((mean + std * eps) * float(models.vae.config.scaling_factor)).to(models.dtype)
    noise = torch.randn(latents.shape, generator=generator).to(latents.device, models.dtype)
    steps = int(models.scheduler.config.num_train_timesteps)
    timesteps = torch.randint(0, steps, (settings.batch_size,), generator=generator).to(latents.device)
    noisy = models.scheduler.add_noise(latents, noise, timesteps)
    return noisy, timesteps, noise, control


def denoising_loss(models: DenoisingModels, faces: TrainingFaces, tokens: torch.Tensor, settings: FitSettings,
                   step: int) -> torch.Tensor:
    """The noise-prediction MSE of step `step` with the identity prompt made of `tokens` (N, D)."""
    from engine.faceme.conditioning import splice_identity

    noisy, timesteps, noise, control = training_batch(models, faces, settings, step)
    batch = noisy.shape[0]
    plain = models.prompt.plain
    embeds = splice_identity(plain.embeds.to(models.device, models.dtype), tokens,
                             models.prompt.identity_position).expand(batch, -1, -1)
    added = {"text_embeds": plain.pooled.to(models.device, models.dtype).expand(batch, -1),
             "time_ids": plain.time_ids.to(models.device, models.dtype).expand(batch, -1)}
    down, mid = models.controlnet(noisy, timesteps, encoder_hidden_states=embeds, controlnet_cond=control,
                                  conditioning_scale=1.0, added_cond_kwargs=added, return_dict=False)
    prediction = models.unet(noisy, timesteps, encoder_hidden_states=embeds, added_cond_kwargs=added,
                             down_block_additional_residuals=down, mid_block_additional_residual=mid,
                             return_dict=False)[0]
    return F.mse_loss(prediction.float(), noise.float())


class gradient_checkpointing:
    """Gradient checkpointing on the UNet and ControlNet for the block (as they were after it)."""

    def __init__(self, models: DenoisingModels, on: bool | None):
        self.modules = [m for m in (models.unet, models.controlnet) if hasattr(m, "enable_gradient_checkpointing")]
        self.on = models.device.type == "cuda" if on is None else bool(on)
        self.before = [bool(getattr(m, "is_gradient_checkpointing", False)) for m in self.modules]

    def __enter__(self):
        if self.on:
            for module in self.modules:
                module.enable_gradient_checkpointing()
        return self

    def __exit__(self, *exc):
        for module, before in zip(self.modules, self.before):
            if self.on and not before:
                module.disable_gradient_checkpointing()
        return False


@dataclass(frozen=True)
class FitOutcome:
    """A finished fit: the losses of every step (from the start, resumed or not) and where it began."""

    losses: list[float]
    resumed_from: int


def run_fit(trainable: dict[str, torch.Tensor], step_loss: Callable[[int], torch.Tensor], settings: FitSettings,
            checkpoint_path: Path | None, key: dict, dtype: torch.dtype = torch.float32,
            progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
            what: str = "learning") -> FitOutcome:
    """Lower `step_loss(step)` over `trainable` (leaf tensors that require grad, trained in place) with
    Adam for `settings.steps` steps, resuming from `checkpoint_path` when it holds this run (`key`).

    A checkpoint is written every `settings.checkpoint_every` steps, at the end, and when `cancel` stops
    the fit (CancelledError, raised at a step boundary, so the checkpoint is a consistent state)."""
    parameters = list(trainable.values())
    optimizer = torch.optim.Adam(parameters, lr=settings.learning_rate, foreach=False)
    key = {**key, "fit": settings.trajectory_key()}
    checkpoint = load_checkpoint(checkpoint_path, key) if checkpoint_path is not None else None
    step, losses = 0, []
    if checkpoint is not None and checkpoint.step <= settings.steps:
        with torch.no_grad():
            for name, tensor in trainable.items():
                tensor.copy_(checkpoint.tensors[name].to(tensor.device, tensor.dtype))
        if checkpoint.optimizer is not None:
            optimizer.load_state_dict(checkpoint.optimizer)
        step, losses = checkpoint.step, list(checkpoint.losses)
        log.info("%s resumed at step %d of %d from %s", what, step, settings.steps, checkpoint_path)
    resumed_from = step

    def save() -> None:
        if checkpoint_path is not None:
            save_checkpoint(checkpoint_path, Checkpoint(key, step, losses, dict(trainable), optimizer.state_dict()))

    scale = FP16_LOSS_SCALE if dtype == torch.float16 else 1.0
    saved_at = step
    report(progress, step, settings.steps, what)
    while step < settings.steps:
        if cancel is not None and cancel():
            if step != saved_at:
                save()
            raise CancelledError(f"{what} stopped at step {step} of {settings.steps}; the same command resumes it")
        optimizer.zero_grad(set_to_none=True)
        loss = step_loss(step)
        (loss * scale).backward()
        finite = True
        for p in parameters:
            if p.grad is not None:
                p.grad.div_(scale)
                finite = finite and bool(torch.isfinite(p.grad).all())
        if finite:
            optimizer.step()
        else:
            log.warning("%s step %d: gradients overflowed in fp16; step skipped", what, step)
        step += 1
        losses.append(float(loss.detach()))
        report(progress, step, settings.steps, f"{what}: loss {losses[-1]:.4f}")
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            save()
            saved_at = step
    return FitOutcome(losses, resumed_from)


@torch.no_grad()
def mean_loss(step_loss: Callable[[int], torch.Tensor], steps: Sequence[int]) -> float:
    """The loss averaged over the draws of `steps` (a fixed set: comparable before and after a fit)."""
    return float(np.mean([float(step_loss(s)) for s in steps]))
