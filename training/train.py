"""Stage I and stage II of FaceMe's training, on accelerate (one process or `accelerate launch`).

Stage I trains a ControlNet initialised from the UNet together with a fresh Mix, always with the
identity prompt, and keeps both. Stage II loads stage I's Mix frozen, starts a fresh ControlNet from
the UNet and replaces the identity prompt by the plain prompt with probability 0.5 (drawn per sample).
In both: noise-prediction MSE, timesteps uniform over the schedule's 1000 steps, UNet / VAE / text
encoders frozen, AdamW(lr 5e-5, betas (0.9, 0.999), weight decay 1e-2, eps 1e-8).

Exact resume: a checkpoint (`accelerator.save_state`) holds the trainable weights, the optimizer, the
LR schedule, accelerate's RNG states and our position (step, epoch, batches consumed in the epoch).
Everything random in a step (VAE latent sample, noise, timesteps, how many references the batch keeps,
the stage-II identity drop) is drawn from a generator seeded by (seed, step, micro-batch, process), and
the data (order, degradation, reference draws) from (seed, epoch, index): a resumed run therefore
computes exactly the updates the uninterrupted run would have.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from engine.errors import UsageError
from engine.progress import ProgressCallback, report
from training.config import TrainingConfig

log = logging.getLogger(__name__)

STAGES = ("stage1", "stage2")
CHECKPOINT_PREFIX = "checkpoint-"


class TrainingInterrupted(RuntimeError):
    """Raised by `stop_after_step` (tests of resuming stand in for a killed process with it)."""


@dataclass
class TrainingPosition:
    """Where the run is; saved in every checkpoint (accelerate's `register_for_checkpointing`)."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0

    def state_dict(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.epoch, self.batches_in_epoch = (int(state[k]) for k in ("step", "epoch", "batches_in_epoch"))


@dataclass(frozen=True)
class StageResult:
    output_dir: Path
    steps: int
    losses: list[float]
    is_main_process: bool = True


def step_generator(seed: int, step: int, micro: int, process: int) -> torch.Generator:
    """The CPU generator for one micro-batch; a pure function of its position in the run."""
    mixed = (seed * 1_000_003 + step) * 1_000_003 + micro
    return torch.Generator("cpu").manual_seed((mixed * 1_009 + process) % (2**63 - 1))


def checkpoints(folder: Path) -> list[Path]:
    found = [p for p in folder.glob(CHECKPOINT_PREFIX + "*") if p.is_dir() and p.name[len(CHECKPOINT_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def resolve_resume(resume: str | None, checkpoint_dir: Path) -> Path | None:
    if not resume:
        return None
    if resume == "latest":
        found = checkpoints(checkpoint_dir)
        if not found:
            log.info("no checkpoint in %s: starting from scratch", checkpoint_dir)
            return None
        return found[-1]
    path = Path(resume)
    if not path.is_dir():
        raise UsageError("no such checkpoint folder", path)
    return path


def splice_batch(plain: torch.Tensor, tokens: torch.Tensor, position: int) -> torch.Tensor:
    """plain (1, L, D), tokens (B, K, D) → (B, L, D): each sample's K identity tokens in place of the
    identity word, cut back to L (the engine's `splice_identity`, per sample)."""
    from engine.faceme.conditioning import splice_identity

    return torch.cat([splice_identity(plain, tokens[b], position) for b in range(tokens.shape[0])])


def _flat_config(config: TrainingConfig) -> dict:
    flat = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}/" if prefix or k else k, v)
        else:
            flat[prefix.rstrip("/")] = value if isinstance(value, (int, float, str, bool)) else str(value)

    walk("", config.as_dict())
    return flat


def _cpu_only_distributed() -> bool:
    """True for several processes on a machine without GPUs (`accelerate launch --multi_gpu
    --num_processes N` there starts torchrun workers): accelerate then needs cpu=True to join them
    with gloo instead of running each worker alone."""
    accelerators = torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
    return not accelerators and int(os.environ.get("WORLD_SIZE", "1")) > 1


def _forget_previous_accelerator() -> None:
    """accelerate keeps one process-wide state and refuses a second Accelerator with other settings
    (e.g. stage I in fp32, then a bf16 run in the same Python process, as tests and notebooks do).
    In a single-process run that state is ours alone, so it is dropped; under `accelerate launch`
    (WORLD_SIZE > 1) it is the launcher's and stays."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def _make_optimizer(params, config: TrainingConfig):
    o = config.optim
    kwargs = dict(lr=o.learning_rate, betas=(o.adam_beta1, o.adam_beta2), weight_decay=o.weight_decay,
                  eps=o.adam_epsilon)
    if o.use_8bit_adam:
        try:
            import bitsandbytes as bnb
        except ImportError as exc:
            raise UsageError("optim.use_8bit_adam needs bitsandbytes (pip install bitsandbytes, CUDA only)") from exc
        return bnb.optim.AdamW8bit(params, **kwargs)
    return torch.optim.AdamW(params, **kwargs)


def train_stage(config: TrainingConfig, stage: str, resume: str | None = None, stop_after_step: int | None = None,
                progress: ProgressCallback | None = None) -> StageResult:
    """Run one stage to `config.<stage>.max_steps`; returns where the release-layout weights are."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from diffusers.optimization import get_scheduler

    from engine.faceme.conditioning import encode_prompt
    from engine.faceme.mix import load_mix
    from training.data import EpochSampler, FaceMeTrainDataset, build_index, trim_references
    from training.embeddings import EmbeddingTable
    from training.models import load_base_models, new_controlnet, new_mix, save_release_layout

    if stage not in STAGES:
        raise UsageError(f"unknown stage {stage!r}")
    stage_cfg = config.stage(stage)
    run = config.run
    out_dir = config.stage_output_dir(stage)
    checkpoint_dir = out_dir / "checkpoints"
    if run.cpu_threads:
        torch.set_num_threads(run.cpu_threads)

    log_with = None if run.log_with in ("", "none", None) else run.log_with
    _forget_previous_accelerator()
    accelerator = Accelerator(
        cpu=_cpu_only_distributed(),
        gradient_accumulation_steps=run.gradient_accumulation_steps,
        mixed_precision=run.mixed_precision,
        log_with=log_with,
        project_config=ProjectConfiguration(project_dir=str(out_dir), logging_dir=str(out_dir / "logs")),
    )
    set_seed(run.seed)
    device = accelerator.device
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
    if not run.cast_frozen_models:
        weight_dtype = torch.float32

    # Frozen parts. The prompt is fixed, so it is encoded once and the text encoders are dropped.
    base = load_base_models(config.models_dir)
    prompt = encode_prompt(base.tokenizer, base.tokenizer_2, base.text_encoder, base.text_encoder_2)
    plain_embeds = prompt.plain.embeds.to(device)
    pooled = prompt.plain.pooled.to(device)
    # The engine's micro-conditioning (512, 512, 0, 0, 512, 512), exactly what inference passes.
    time_ids = prompt.plain.time_ids.to(device)
    del base.text_encoder, base.text_encoder_2
    unet, vae, noise_scheduler = base.unet, base.vae, base.scheduler
    # The ControlNet copies the UNet's encoder in full precision, before the UNet is cast.
    controlnet = new_controlnet(unet, config.model.controlnet_conditioning_channels).to(device)
    vae_dtype = torch.float32 if vae.config.get("force_upcast", True) else weight_dtype
    # `.to(dtype)` only when it changes something: diffusers warns about casting otherwise.
    for module, dtype in ((unet, weight_dtype), (vae, vae_dtype)):
        if dtype == torch.float32:
            module.to(device)
        else:
            module.to(device, dtype=dtype)

    # Data.
    table = EmbeddingTable.load(Path(config.data.embeddings_dir))
    index = build_index(config.data.layout, config.data.gt_dir, config.data.ref_dir, config.data.include_gt_in_pool)
    dataset = FaceMeTrainDataset(index, table, config.data.resolution, config.data.refs_per_sample, seed=run.seed)
    sampler = EpochSampler(len(dataset), seed=run.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=run.batch_size, sampler=sampler, drop_last=True,
                                         num_workers=config.data.num_workers,
                                         persistent_workers=config.data.num_workers > 0)
    if len(loader) == 0:
        raise UsageError(f"{len(dataset)} samples make no full batch of {run.batch_size}")

    # Trainable parts.
    token_dim = int(unet.config.cross_attention_dim)
    clip_dim, arcface_dim = int(table.clip.shape[1]), int(table.arcface.shape[1])
    mix_path = stage_cfg.mix_path or (str(config.stage_output_dir("stage1") / "mix" / "mix.safetensors")
                                      if stage == "stage2" else "")
    if mix_path:
        mix = load_mix(mix_path, device=device)
        log.info("Mix from %s", mix_path)
    else:
        mix = new_mix(clip_dim, token_dim, arcface_dim, config.model.mix_id_hidden_dim).to(device)
    mix.requires_grad_(stage_cfg.train_mix)
    controlnet.train()
    mix.train(stage_cfg.train_mix)
    if run.gradient_checkpointing:
        controlnet.enable_gradient_checkpointing()
        unet.enable_gradient_checkpointing()

    trainable = [controlnet] + ([mix] if stage_cfg.train_mix else [])
    params = [p for m in trainable for p in m.parameters() if p.requires_grad]
    optimizer = _make_optimizer(params, config)
    lr_scheduler = get_scheduler("constant_with_warmup", optimizer=optimizer,
                                 num_warmup_steps=config.optim.lr_warmup_steps * accelerator.num_processes)
    if stage_cfg.train_mix:
        controlnet, mix, optimizer, loader, lr_scheduler = accelerator.prepare(controlnet, mix, optimizer, loader,
                                                                               lr_scheduler)
    else:
        controlnet, optimizer, loader, lr_scheduler = accelerator.prepare(controlnet, optimizer, loader, lr_scheduler)
    position = TrainingPosition()
    accelerator.register_for_checkpointing(position)

    resume_from = resolve_resume(resume, checkpoint_dir)
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        log.info("resumed from %s at step %d", resume_from, position.step)

    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "training_config.yaml").write_text(yaml.safe_dump(config.as_dict(), sort_keys=False),
                                                      encoding="utf-8")
        if log_with:
            accelerator.init_trackers(f"faceme-{stage}", config=_flat_config(config))
        log.info("%s: %d samples, %d batches/epoch/process, %d processes, batch %d, accumulation %d, %s, "
                 "up to step %d", stage, len(dataset), len(loader), accelerator.num_processes, run.batch_size,
                 run.gradient_accumulation_steps, accelerator.mixed_precision, stage_cfg.max_steps)

    min_refs = max(1, config.data.min_refs)
    max_refs = config.data.refs_per_sample
    drop_prob = float(stage_cfg.drop_identity_prob)
    num_train_timesteps = int(noise_scheduler.config.num_train_timesteps)
    scaling = float(vae.config.scaling_factor)
    log_path = out_dir / "train_log.jsonl"
    losses: list[float] = []
    window: list[float] = []
    started = time.monotonic()
    micro = 0

    def compute_loss(batch: dict, gen: torch.Generator) -> torch.Tensor:
        keep = int(torch.randint(min_refs, max_refs + 1, (1,), generator=gen))
        batch = trim_references(batch, keep)
        gt = batch["gt"].to(device, vae_dtype)
        bsz = gt.shape[0]
        with torch.no_grad():
            dist = vae.encode(gt).latent_dist
            eps = torch.randn(dist.mean.shape, generator=gen).to(device, dist.mean.dtype)
            latents = ((dist.mean + dist.std * eps) * scaling).to(weight_dtype)
        noise = torch.randn(latents.shape, generator=gen).to(device, weight_dtype)
        timesteps = torch.randint(0, num_train_timesteps, (bsz,), generator=gen).to(device)
        drop = torch.rand(bsz, generator=gen).to(device) < drop_prob
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)

        tokens = mix(batch["clip"].to(device), batch["arcface"].to(device))
        embeds = splice_batch(plain_embeds, tokens.to(plain_embeds.dtype), prompt.identity_position)
        embeds = torch.where(drop[:, None, None], plain_embeds.expand_as(embeds), embeds)
        added = {"text_embeds": pooled.expand(bsz, -1), "time_ids": time_ids.expand(bsz, -1)}
        control = batch["lq"].to(device)
        down, mid = controlnet(noisy, timesteps, encoder_hidden_states=embeds, controlnet_cond=control,
                               added_cond_kwargs=added, return_dict=False)
        pred = unet(noisy, timesteps, encoder_hidden_states=embeds.to(weight_dtype),
                    added_cond_kwargs={k: v.to(weight_dtype) for k, v in added.items()},
                    down_block_additional_residuals=[d.to(weight_dtype) for d in down],
                    mid_block_additional_residual=mid.to(weight_dtype), return_dict=False)[0]
        return F.mse_loss(pred.float(), noise.float(), reduction="mean")

    while position.step < stage_cfg.max_steps:
        epoch_loader = (accelerator.skip_first_batches(loader, position.batches_in_epoch)
                        if position.batches_in_epoch else loader)
        # accelerate's loaders pass their own epoch counter to the sampler when iterated (a skipping
        # loader starts it at 0), so the epoch is set on the loader, not on the sampler.
        epoch_loader.set_epoch(position.epoch)
        for batch in epoch_loader:
            position.batches_in_epoch += 1
            gen = step_generator(run.seed, position.step, micro, accelerator.process_index)
            micro += 1
            with accelerator.accumulate(*trainable):
                loss = compute_loss(batch, gen)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.optim.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(params, config.optim.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            window.append(float(accelerator.gather(loss.detach()[None]).mean()))
            if not accelerator.sync_gradients:
                continue
            micro = 0
            position.step += 1
            step_loss = sum(window) / len(window)
            window.clear()
            losses.append(step_loss)
            if accelerator.is_main_process:
                report(progress, position.step, stage_cfg.max_steps, f"loss {step_loss:.4f}")
            if position.step % max(1, run.log_every) == 0 or position.step == stage_cfg.max_steps:
                lr = lr_scheduler.get_last_lr()[0]
                accelerator.log({"train/loss": step_loss, "train/lr": lr}, step=position.step)
                if accelerator.is_main_process:
                    with log_path.open("a", encoding="utf-8") as f:
                        f.write(json.dumps({"step": position.step, "loss": step_loss, "lr": lr,
                                            "seconds": round(time.monotonic() - started, 2)}) + "\n")
                if accelerator.is_main_process:
                    log.info("%s step %d/%d loss %.5f", stage, position.step, stage_cfg.max_steps, step_loss)
            if run.checkpointing_steps and position.step % run.checkpointing_steps == 0:
                save_checkpoint(accelerator, checkpoint_dir, position.step, run.checkpoints_total_limit)
            if stop_after_step is not None and position.step >= stop_after_step:
                accelerator.end_training()
                raise TrainingInterrupted(f"stopped after step {position.step} as asked")
            if position.step >= stage_cfg.max_steps:
                break
        else:
            position.epoch += 1
            position.batches_in_epoch = 0

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_release_layout(out_dir, accelerator.unwrap_model(controlnet), accelerator.unwrap_model(mix))
    accelerator.end_training()
    return StageResult(out_dir, position.step, losses, accelerator.is_main_process)


def save_checkpoint(accelerator, checkpoint_dir: Path, step: int, keep: int | None) -> Path:
    target = checkpoint_dir / f"{CHECKPOINT_PREFIX}{step}"
    accelerator.save_state(str(target))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and keep:
        for old in checkpoints(checkpoint_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    if accelerator.is_main_process:
        log.info("checkpoint %s", target)
    return target
