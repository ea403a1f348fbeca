"""Stage I → stage II on real faces with the tiny pack; the result restores through `faceme restore-face`;
an interrupted stage II resumes to exactly the weights of an uninterrupted run; `accelerate launch`
with two CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from training.models import assemble_pack
from training.train import TrainingInterrupted, checkpoints, train_stage

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "controlnet" / "diffusion_pytorch_model.safetensors"))


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def test_two_stages_loss_falls_and_the_engine_restores_with_the_weights(tiny_config, tiny_pack, faces_64, run_cli,
                                                                        tmp_path):
    from engine.faceme.mix import load_mix
    from training.degrade import degrade, to_uint8
    from training.prepare import read_rgb, write_rgb

    config = tiny_config("stage1.max_steps=24", "stage2.max_steps=24", "run.checkpointing_steps=0",
                         "run.log_every=1")
    first = train_stage(config, "stage1")
    second = train_stage(config, "stage2")
    for result in (first, second):
        assert result.steps == 24 and len(result.losses) == 24
        assert np.mean(result.losses[-6:]) < np.mean(result.losses[:6]), result.losses
        logged = [json.loads(line) for line in (result.output_dir / "train_log.jsonl").read_text().splitlines()]
        assert [r["step"] for r in logged] == list(range(1, 25))
    out1, out2 = first.output_dir, second.output_dir
    # stage II keeps stage I's Mix unchanged and trains a fresh ControlNet
    mix1, mix2 = load_file(str(out1 / "mix" / "mix.safetensors")), load_file(str(out2 / "mix" / "mix.safetensors"))
    assert _max_diff(mix1, mix2) == 0.0
    assert _max_diff(_weights(out1), _weights(out2)) > 0
    load_mix(out2 / "mix" / "mix.safetensors")  # strict load by the engine

    pack = assemble_pack(tiny_pack, out2, tmp_path / "pack")
    gt = read_rgb(faces_64 / "person_01" / "img1.png")
    lq_path = tmp_path / "lq.png"
    write_rgb(lq_path, to_uint8(degrade(gt, 0).image))
    out_path = tmp_path / "restored.png"
    code, out, err = run_cli("restore-face", lq_path, "--ref", faces_64 / "person_01" / "img2.png",
                             "-o", out_path, "--models", pack, "--steps", "2", "--seed", "0", "--device", "cpu")
    assert code == 0, err
    assert read_rgb(out_path).shape == (512, 512, 3)


def test_interrupted_stage2_resumes_to_the_same_weights(tiny_config, tiny_pack):
    mix = tiny_pack / "faceme" / "mix" / "mix.safetensors"
    common = ("stage2.max_steps=6", "run.checkpointing_steps=3", f"stage2.mix_path={mix}")
    straight = tiny_config(*common)
    a = train_stage(straight, "stage2")
    resumed_cfg = tiny_config(*common, f"stage2.output_dir={a.output_dir.parent / 'resumed'}")
    with pytest.raises(TrainingInterrupted):
        train_stage(resumed_cfg, "stage2", stop_after_step=4)
    ckpt_dir = a.output_dir.parent / "resumed" / "checkpoints"
    assert [p.name for p in checkpoints(ckpt_dir)] == ["checkpoint-3"]
    b = train_stage(resumed_cfg, "stage2", resume="latest")
    assert b.steps == 6 and len(b.losses) == 3  # steps 4, 5, 6 run again after the checkpoint
    assert b.losses == a.losses[3:]
    # tolerance: exact (CPU, fixed seeds; every random draw is a function of the position in the run)
    assert _max_diff(_weights(a.output_dir), _weights(b.output_dir)) == 0.0


def test_accumulation_checkpointing_and_mixed_precision(tiny_config):
    config = tiny_config("stage1.max_steps=2", "run.gradient_accumulation_steps=2", "run.gradient_checkpointing=true",
                         "run.checkpointing_steps=0", "run.batch_size=2", "run.mixed_precision=bf16")
    result = train_stage(config, "stage1")
    assert result.steps == 2 and len(result.losses) == 2  # optimizer steps, each over 2 micro-batches
    weights = _weights(result.output_dir)
    assert {v.dtype for v in weights.values()} == {torch.float32}  # trained in fp32 under autocast


def test_accelerate_launch_two_cpu_processes(tiny_config, tmp_path):
    config = tiny_config()
    out = tmp_path / "ddp"
    sets = [f"models_dir={config.models_dir}", f"data.gt_dir={config.data.gt_dir}",
            f"data.embeddings_dir={config.data.embeddings_dir}", f"stage1.output_dir={out}",
            "stage1.max_steps=2", "run.checkpointing_steps=2", "run.batch_size=2", "run.log_with=none",
            "run.cpu_threads=1"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", "29517", "-m", "training", "stage1",
           "--config", str(ROOT / "training" / "configs" / "tiny.yaml"), "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes" in proc.stderr
    # each process saved its own RNG state in the checkpoint; the weights were written once
    ckpt = out / "checkpoints" / "checkpoint-2"
    assert (ckpt / "random_states_0.pkl").is_file() and (ckpt / "random_states_1.pkl").is_file()
    assert (out / "controlnet" / "diffusion_pytorch_model.safetensors").is_file()
    assert proc.stdout.count("stage1: 2 steps") == 1  # only the main process reports
