"""Training configuration: small typed dataclasses read from one YAML file.

The YAML mirrors the dataclasses (`models_dir`, `output_dir`, `data:`, `model:`, `optim:`, `run:`, `stage1:`,
`stage2:`, `refpool:`, `evaluate:`). Relative paths are resolved against the current directory, as
for every command-line path. `--set section.key=value` on the command line overrides single values
(the value is parsed as YAML, so numbers and booleans keep their types).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import UsageError


@dataclass
class DataConfig:
    #: "ffhq" (gt_dir/<id>.png + FFHQRef ref_dir/target_pose_i/target_pose_i_j/<id>.png) or
    #: "identity_folders" (gt_dir/<identity>/<image>; every image is a sample, its folder its pool).
    layout: str = "ffhq"
    gt_dir: str = ""
    ref_dir: str = ""
    #: where `precompute` writes and training reads the ArcFace + CLIP embedding shards.
    embeddings_dir: str = ""
    resolution: int = 512
    #: references drawn per sample from its pool (with repeats when the pool is smaller)
    refs_per_sample: int = 4
    #: each batch keeps a random number of them in [min_refs, refs_per_sample]
    min_refs: int = 1
    include_gt_in_pool: bool = True
    num_workers: int = 0
    shard_size: int = 1024


@dataclass
class ModelConfig:
    #: ControlNet conditioning-embedding widths; None = diffusers' default (16, 32, 96, 256), as released
    controlnet_conditioning_channels: list[int] | None = None
    #: Mix's ArcFace projection width (1024 in the release; the other widths come from the models)
    mix_id_hidden_dim: int = 1024


@dataclass
class OptimConfig:
    learning_rate: float = 5e-5
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    lr_warmup_steps: int = 0
    max_grad_norm: float = 1.0
    use_8bit_adam: bool = False


@dataclass
class RunConfig:
    seed: int = 0
    batch_size: int = 4  # per process
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "fp16"  # "no" | "fp16" | "bf16"
    gradient_checkpointing: bool = True
    checkpointing_steps: int = 5000
    checkpoints_total_limit: int | None = 3
    log_every: int = 10
    #: "tensorboard" by default; any accelerate tracker name ("wandb", "comet_ml", …) or "none"
    log_with: str = "tensorboard"
    #: run the frozen models in this dtype under fp16/bf16 mixed precision (as diffusers' trainers do)
    cast_frozen_models: bool = True
    #: 0 = none; the number of worker threads torch may use on CPU
    cpu_threads: int = 0


@dataclass
class StageConfig:
    max_steps: int = 1000
    #: probability of replacing the identity prompt by the plain prompt (stage II: 0.5)
    drop_identity_prob: float = 0.0
    train_mix: bool = True
    output_dir: str = ""
    #: stage II: the Mix to start from (the stage-I output's mix/mix.safetensors)
    mix_path: str = ""


@dataclass
class RefPoolConfig:
    pose_clusters: int = 3
    expression_clusters: int = 3
    #: ArcFace cosine similarity a synthetic reference must reach to be kept
    similarity_threshold: float = 0.5
    max_attempts: int = 3
    #: "arc2face" (diffusers, real weights) or "standin" (the tiny test generator)
    generator: str = "arc2face"
    arc2face_dir: str = ""
    pose_controlnet_dir: str = ""
    base_model_dir: str = ""
    num_inference_steps: int = 25
    guidance_scale: float = 3.0
    seed: int = 0


@dataclass
class EvaluateConfig:
    num_inference_steps: int = 50
    guidance_scale: float = 5.0
    max_refs: int = 4
    seed: int = 0
    color_fix: bool = True


@dataclass
class TrainingConfig:
    #: an engine model pack (realvisxl_v3.0/, photomaker/, insightface/antelopev2/, optionally faceme/)
    models_dir: str = ""
    output_dir: str = "runs/faceme"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    stage1: StageConfig = field(default_factory=lambda: StageConfig(max_steps=130_000, train_mix=True))
    stage2: StageConfig = field(default_factory=lambda: StageConfig(max_steps=210_000, train_mix=False,
                                                                     drop_identity_prob=0.5))
    refpool: RefPoolConfig = field(default_factory=RefPoolConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def stage(self, name: str) -> StageConfig:
        return {"stage1": self.stage1, "stage2": self.stage2}[name]

    def stage_output_dir(self, name: str) -> Path:
        configured = self.stage(name).output_dir
        return Path(configured) if configured else Path(self.output_dir) / name

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls, values: dict[str, Any], where: str):
    if not isinstance(values, dict):
        raise UsageError(f"{where} must be a mapping, got {type(values).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UsageError(f"unknown setting(s) in {where}: {', '.join(unknown)}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value or {}, f"{where}.{name}")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _apply_override(raw: dict[str, Any], assignment: str) -> None:
    if "=" not in assignment:
        raise UsageError(f"--set expects section.key=value, got {assignment!r}")
    key, value = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UsageError(f"--set {key}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(value) if value != "" else ""


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> TrainingConfig:
    """Read a YAML config (or start from the defaults when `path` is None) and apply `overrides`."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise UsageError(f"cannot read the config ({exc.strerror})", path) from exc
        except yaml.YAMLError as exc:
            raise UsageError(f"not valid YAML: {exc}", path) from exc
    for assignment in overrides:
        _apply_override(raw, assignment)
    return _build(TrainingConfig, raw, str(path) if path else "config")
