"""A fitted identity (IDFSR's idea on FaceMe): the person's identity tokens, optimised on their own faces.

The tokens start as the person's identity tokens (the Mix output of their references, what FaceMe
splices into the prompt) and are optimised with the frozen pack's denoising loss on the person's album
faces (engine.learn.denoising: each face's degraded copy as the ControlNet input, the clean face as the
target), plus a pull toward the starting tokens, `pull × mean((tokens − start)²)`, so that a few faces
cannot carry the tokens away from what the encoder made of the person. Nothing of the model changes;
the result is N tokens of the same shape, used in place of the references' tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.learn.denoising import (DenoisingModels, FitSettings, TrainingFaces, denoising_loss,
                                   gradient_checkpointing, mean_loss, run_fit)
from engine.progress import CancelCheck, ProgressCallback

log = logging.getLogger(__name__)

#: the defaults of a fitted identity (IDFSR fits its embedding in a few hundred steps)
IDENTITY_SETTINGS = FitSettings(steps=300, learning_rate=2e-3, checkpoint_every=25)
#: weight of the pull toward the starting tokens
DEFAULT_PULL = 1.0


@dataclass(frozen=True)
class FittedIdentity:
    """The fitted tokens (N, D) float32, and the fit's figures: the loss of every step (denoising + pull),
    and the mean denoising loss over the fit's first draws before and after (`loss_before` → `loss_after`)."""

    tokens: np.ndarray
    losses: list[float]
    loss_before: float
    loss_after: float
    resumed_from: int = 0


def fit_identity(models: DenoisingModels, start_tokens, crops: Sequence[np.ndarray],
                 settings: FitSettings = IDENTITY_SETTINGS, pull: float = DEFAULT_PULL,
                 checkpoint: Path | None = None, key: dict | None = None,
                 progress: ProgressCallback | None = None, cancel: CancelCheck | None = None) -> FittedIdentity:
    """Fit identity tokens to `crops` (the fit set: aligned 512 RGB faces) from `start_tokens` (N, D).

    `checkpoint`: the file the fit is saved to and resumed from (`key` names the run: person, faces, pack).
    """
    start = torch.as_tensor(np.asarray(start_tokens, np.float32)).to(models.device)
    tokens = start.clone().requires_grad_(True)
    faces = TrainingFaces(models, crops, settings.resolution)

    def step_loss(step: int) -> torch.Tensor:
        loss = denoising_loss(models, faces, tokens, settings, step)
        return loss + pull * torch.mean((tokens - start) ** 2)

    def denoising_only(step: int) -> torch.Tensor:
        return denoising_loss(models, faces, tokens, settings, step)

    draws = list(range(min(settings.steps, 8)))  # the first steps' draws: the same set before and after
    run_key = {"method": "fitted", "pull": pull, "start": _digest(start), **(key or {})}
    with gradient_checkpointing(models, settings.gradient_checkpointing):
        before = mean_loss(denoising_only, draws)
        outcome = run_fit({"tokens": tokens}, step_loss, settings, checkpoint, run_key, models.dtype, progress,
                          cancel, "fitting the identity")
        after = mean_loss(denoising_only, draws)
    log.info("fitted identity: loss %.5f → %.5f over %d draws (%d steps)", before, after, len(draws), settings.steps)
    return FittedIdentity(tokens.detach().float().cpu().numpy(), outcome.losses, before, after, outcome.resumed_from)


def _digest(tensor: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha256(tensor.detach().float().cpu().numpy().tobytes()).hexdigest()[:16]
