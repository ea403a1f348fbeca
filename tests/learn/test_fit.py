"""Issue 21: a fitted identity and a person adapter lower the frozen pack's denoising loss, reproducibly
from their seed, and an interrupted fit resumes to exactly the uninterrupted result.

Tiny pack (random weights), real album faces (LFW), fitted at 64 px for 2–4 steps."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from engine.errors import CancelledError
from engine.learn.adapter import train_adapter
from engine.learn.checkpoint import METADATA_KEY, load_checkpoint
from engine.learn.denoising import (DenoisingModels, FitSettings, TrainingFaces, denoising_loss, run_fit,
                                    training_batch)
from engine.learn.fitted_identity import fit_identity

FIT = FitSettings(steps=3, learning_rate=0.2, seed=3, resolution=64, checkpoint_every=1)


@pytest.fixture(scope="module")
def models(service):
    return DenoisingModels.from_pipeline(service.pipeline)


@pytest.fixture(scope="module")
def start(service, ann_faces):
    """Ann's identity tokens as FaceMe's encoder makes them from her fit faces' crops."""
    _, fit, _ = ann_faces
    return service.pipeline.encode_identity(fit[:2]).float().cpu().numpy()


@pytest.fixture(scope="module")
def whole(models, start, ann_faces):
    """A 3-step fit of Ann's identity, uninterrupted."""
    return fit_identity(models, start, ann_faces[1], FIT)


def test_the_pack_loss_falls_as_the_tokens_are_fitted(models, start, ann_faces):
    # the fit's own machinery (the pack's denoising loss, gradients through the frozen UNet and ControlNet
    # into the tokens, the optimizer) on one draw: the loss falls step by step. (Over a fit's fresh draws
    # the tiny pack's random cross-attention makes the tokens' effect too small to see, ~1e-6.)
    faces = TrainingFaces(models, ann_faces[1][:2], 64)
    tokens = torch.tensor(start, requires_grad=True)
    settings = FitSettings(steps=3, learning_rate=0.05, resolution=64)
    outcome = run_fit({"tokens": tokens}, lambda step: denoising_loss(models, faces, tokens, settings, 0), settings,
                      None, {})
    with torch.no_grad():
        final = float(denoising_loss(models, faces, tokens, settings, 0))
    assert outcome.losses[0] > outcome.losses[1] > outcome.losses[2] > final


def test_a_fit_is_reproduced_by_its_seed(models, start, ann_faces, whole):
    assert len(whole.losses) == FIT.steps
    assert not np.array_equal(whole.tokens, start) and whole.tokens.shape == start.shape
    again = fit_identity(models, start, ann_faces[1], FIT)
    np.testing.assert_array_equal(again.tokens, whole.tokens)
    assert again.losses == whole.losses and again.loss_after == whole.loss_after
    # another seed draws other pairs
    other = training_batch(models, TrainingFaces(models, ann_faces[1][:2], 64), replace(FIT, seed=4), 0)
    same = training_batch(models, TrainingFaces(models, ann_faces[1][:2], 64), FIT, 0)
    assert not torch.equal(other[0], same[0])


def _stop_after(steps: int):
    """A cancel check that asks to stop once `steps` steps were reported done (what Ctrl-C does)."""
    done = []

    def progress(d, total, message):
        done.append(d)

    return progress, lambda: bool(done) and done[-1] >= steps


def test_an_interrupted_fit_resumes_to_the_uninterrupted_result(models, start, ann_faces, whole, tmp_path):
    _, fit, _ = ann_faces
    checkpoint = tmp_path / "fit.safetensors"
    progress, cancel = _stop_after(2)
    with pytest.raises(CancelledError, match="stopped at step 2 of 3"):
        fit_identity(models, start, fit, FIT, checkpoint=checkpoint, key={"run": 1}, progress=progress, cancel=cancel)
    assert checkpoint.is_file()
    resumed = fit_identity(models, start, fit, FIT, checkpoint=checkpoint, key={"run": 1})
    assert resumed.resumed_from == 2
    np.testing.assert_array_equal(resumed.tokens, whole.tokens)
    assert resumed.losses == whole.losses
    # a checkpoint of another run (other faces, settings or pack: another key) is never resumed
    with safe_open(str(checkpoint), framework="pt") as handle:
        key = json.loads(handle.metadata()[METADATA_KEY])["key"]
    assert load_checkpoint(checkpoint, key).step == FIT.steps
    assert load_checkpoint(checkpoint, {**key, "run": 2}) is None


def test_an_interrupted_adapter_fit_resumes_to_the_same_adapter_file(models, start, ann_faces, tmp_path):
    _, fit, _ = ann_faces
    settings = FitSettings(steps=2, learning_rate=0.01, seed=5, resolution=64, checkpoint_every=1)
    whole = train_adapter(models, start, fit, tmp_path / "whole.safetensors", settings, rank=2)
    assert whole.loss_after < whole.loss_before
    progress, cancel = _stop_after(1)
    with pytest.raises(CancelledError):
        train_adapter(models, start, fit, tmp_path / "resumed.safetensors", settings, rank=2,
                      checkpoint=tmp_path / "adapter-fit.safetensors", progress=progress, cancel=cancel)
    assert not (tmp_path / "resumed.safetensors").exists()  # nothing half-trained is ever written as the result
    assert not getattr(models.unet, "peft_config", None)  # the UNet is left as it was
    resumed = train_adapter(models, start, fit, tmp_path / "resumed.safetensors", settings, rank=2,
                            checkpoint=tmp_path / "adapter-fit.safetensors")
    assert resumed.resumed_from == 1
    a, b = load_file(str(whole.path)), load_file(str(resumed.path))
    assert sorted(a) == sorted(b) and all(k.startswith("unet.") and ".lora_" in k for k in a)
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    # the same adapter: tensors above, metadata here (the file's bytes may differ: safetensors writes its
    # metadata map in a random order, even within one process)
    assert safe_open(str(whole.path), "pt").metadata() == safe_open(str(resumed.path), "pt").metadata()
