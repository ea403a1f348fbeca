"""`python -m training …`: configs, errors, and the data-preparation commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.__main__ import main
from training.config import load_config
from training.degrade import DegradationParams, apply_degradation, to_uint8
from training.prepare import read_rgb

ROOT = Path(__file__).resolve().parents[2]


def test_both_configs_load_with_the_papers_settings():
    sdxl = load_config(ROOT / "training" / "configs" / "sdxl.yaml")
    assert sdxl.optim.learning_rate == 5e-5 and (sdxl.optim.adam_beta1, sdxl.optim.adam_beta2) == (0.9, 0.999)
    assert sdxl.optim.weight_decay == 1e-2 and sdxl.optim.adam_epsilon == 1e-8
    assert sdxl.run.batch_size == 4 and sdxl.run.mixed_precision == "fp16"
    assert (sdxl.stage1.max_steps, sdxl.stage2.max_steps) == (130_000, 210_000)
    assert sdxl.stage1.train_mix and not sdxl.stage2.train_mix
    assert (sdxl.stage1.drop_identity_prob, sdxl.stage2.drop_identity_prob) == (0.0, 0.5)
    assert sdxl.data.resolution == 512 and sdxl.data.refs_per_sample == 4 and sdxl.data.layout == "ffhq"
    assert (sdxl.refpool.pose_clusters, sdxl.refpool.expression_clusters, sdxl.refpool.max_attempts) == (3, 3, 3)
    tiny = load_config(ROOT / "training" / "configs" / "tiny.yaml", ["run.batch_size=2", "data.num_workers=1"])
    assert tiny.data.resolution == 64 and tiny.run.batch_size == 2 and tiny.data.num_workers == 1


def test_config_mistakes_are_usage_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run:\n  bacth_size: 4\n")
    assert main(["stage1", "--config", str(bad)]) == 2
    assert "bacth_size" in capsys.readouterr().err
    assert main(["stage1", "--config", str(tmp_path / "missing.yaml")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0


def test_degrade_command_writes_replayable_lq_images(faces_64, tmp_path, capsys):
    out = tmp_path / "lq"
    assert main(["degrade", "--gt", str(faces_64), "--out", str(out), "--seed", "3"]) == 0
    records = json.loads((out / "degradations.json").read_text())
    assert len(records) == 8
    rel, params = next(iter(records.items()))
    replay = apply_degradation(read_rgb(faces_64 / rel), DegradationParams(**params))
    np.testing.assert_array_equal(read_rgb(out / rel), to_uint8(replay))


def test_faces_command_aligns_photos_of_a_folder(shared, tmp_path, capsys):
    src = tmp_path / "photos" / "person_11"
    src.mkdir(parents=True)
    for name in ("img24.jpg", "img25.jpg"):
        (src / name).write_bytes((shared / "data" / "deepface_ids" / "images" / "person_11" / name).read_bytes())
    (src / "notes.txt").write_text("not an image")
    assert main(["faces", "--src", str(tmp_path / "photos"), "--out", str(tmp_path / "faces"), "--size", "128"]) == 0
    crops = sorted((tmp_path / "faces" / "person_11").glob("*.png"))
    assert [p.name for p in crops] == ["img24.png", "img25.png"]
    assert read_rgb(crops[0]).shape == (128, 128, 3)


def test_optimizer_is_adamw_with_the_papers_settings_and_8bit_is_optional():
    import importlib.util

    import torch

    from engine.errors import UsageError
    from training.train import _make_optimizer

    config = load_config(ROOT / "training" / "configs" / "sdxl.yaml")
    optimizer = _make_optimizer([torch.nn.Parameter(torch.zeros(2))], config)
    assert isinstance(optimizer, torch.optim.AdamW)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"], group["eps"]) == (5e-5, (0.9, 0.999), 1e-2, 1e-8)
    eight_bit = load_config(ROOT / "training" / "configs" / "sdxl.yaml", ["optim.use_8bit_adam=true"])
    if importlib.util.find_spec("bitsandbytes") is None:
        with pytest.raises(UsageError, match="bitsandbytes"):
            _make_optimizer([torch.nn.Parameter(torch.zeros(2))], eight_bit)
