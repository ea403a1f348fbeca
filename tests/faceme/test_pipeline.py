"""FaceMePipeline follows the released procedure (checked through hooks on the real modules)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import CancelledError
from engine.faceme.conditioning import identity_prompt
from engine.faceme.pipeline import combine_guidance, initial_latents, lq_to_tensor, predict_noise


def _capture(module, store):
    def hook(mod, args, kwargs):
        store.append((args, kwargs))
    return module.register_forward_pre_hook(hook, with_kwargs=True)


def test_initial_latent_is_add_noise_at_999(pipeline, lq_image):
    lq = lq_to_tensor(lq_image)
    got = initial_latents(pipeline.vae, pipeline.scheduler, lq, torch.Generator().manual_seed(7), torch.float32)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        dist = pipeline.vae.encode(lq).latent_dist
    latent = dist.sample(gen) * pipeline.vae.config.scaling_factor
    noise = torch.randn(latent.shape, generator=gen)
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2  # scaled_linear
    alpha_bar = torch.cumprod(1 - betas, 0)[999]
    expected = (alpha_bar.sqrt() * latent + (1 - alpha_bar).sqrt() * noise).float()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_call_starts_from_that_latent(pipeline, lq_image):
    seen = []
    handle = _capture(pipeline.unet, seen)
    try:
        pipeline(lq_image, steps=3, seed=11)
    finally:
        handle.remove()
    expected = initial_latents(pipeline.vae, pipeline.scheduler, lq_to_tensor(lq_image),
                               torch.Generator().manual_seed(11), torch.float32)
    torch.testing.assert_close(seen[0][0][0], expected)
    assert [int(args[1]) for args, _ in seen] == [667, 334, 1]  # DDPM "leading", offset 1, 3 steps
    pipeline.scheduler.set_timesteps(50)
    timesteps = pipeline.scheduler.timesteps.tolist()
    assert len(timesteps) == 50 and timesteps[0] == 981 and timesteps[-1] == 1  # released: first t = 981


def test_controlnet_sees_the_lq_in_minus_one_to_one(pipeline, lq_image, identity):
    control_calls, unet_calls = [], []
    handles = [_capture(pipeline.controlnet, control_calls), _capture(pipeline.unet, unet_calls)]
    try:
        pipeline(lq_image[::2, ::2].copy(), identity=identity, steps=2, seed=3)  # 256 px in: resized to 512
    finally:
        for h in handles:
            h.remove()
    assert len(control_calls) == 2
    cond = control_calls[0][1]["controlnet_cond"]
    assert cond.shape == (2, 3, 512, 512)  # both guidance branches in one batch
    expected = lq_to_tensor(lq_image[::2, ::2].copy())
    torch.testing.assert_close(cond[0:1], expected)
    torch.testing.assert_close(cond[1:2], expected)
    assert cond.min() < -0.5 and cond.max() <= 1.0 and cond.min() >= -1.0
    assert control_calls[0][1]["conditioning_scale"] == 1.0
    # the ControlNet gets the same prompt embedding as the UNet, branch by branch
    torch.testing.assert_close(control_calls[0][1]["encoder_hidden_states"], unet_calls[0][1]["encoder_hidden_states"])


def test_guidance_zero_is_plain_and_one_is_identity_per_step(pipeline, lq_image, identity):
    latents = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    control = lq_to_tensor(lq_image)
    plain = pipeline.prompt.plain
    ident = identity_prompt(pipeline.prompt, identity)
    t = torch.tensor(501)
    both = predict_noise(pipeline.unet, pipeline.controlnet, latents, t, [plain, ident], control)
    only_plain = predict_noise(pipeline.unet, pipeline.controlnet, latents, t, [plain], control)
    only_ident = predict_noise(pipeline.unet, pipeline.controlnet, latents, t, [ident], control)
    torch.testing.assert_close(combine_guidance(both, 0.0), only_plain, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(combine_guidance(both, 1.0), only_ident, rtol=1e-4, atol=1e-5)
    assert (only_plain - only_ident).abs().max() > 1e-4  # identity tokens matter
    torch.testing.assert_close(combine_guidance(both, 5.0), only_plain + 5 * (only_ident - only_plain),
                               rtol=1e-4, atol=1e-4)


def test_guidance_zero_and_one_end_to_end(pipeline, lq_image, identity, monkeypatch):
    blind = pipeline(lq_image, steps=2, seed=5).astype(int)
    zero = pipeline(lq_image, identity=identity, steps=2, seed=5, guidance_scale=0.0).astype(int)
    one = pipeline(lq_image, identity=identity, steps=2, seed=5, guidance_scale=1.0).astype(int)
    five = pipeline(lq_image, identity=identity, steps=2, seed=5, guidance_scale=5.0).astype(int)
    assert np.abs(zero - blind).max() <= 1
    ident_branch = identity_prompt(pipeline.prompt, identity)
    monkeypatch.setattr(pipeline, "branches", lambda tokens: [ident_branch])
    identity_only = pipeline(lq_image, identity=identity, steps=2, seed=5).astype(int)
    assert np.abs(one - identity_only).max() <= 1
    assert np.abs(five - blind).max() > 1 and np.abs(one - blind).max() > 0


def test_seeded_runs_are_deterministic(pipeline, lq_image, identity):
    a = pipeline(lq_image, identity=identity, steps=2, seed=42)
    b = pipeline(lq_image, identity=identity, steps=2, seed=42)
    c = pipeline(lq_image, identity=identity, steps=2, seed=43)
    assert a.shape == (512, 512, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_references_as_paths_or_arrays(pipeline, ref_paths, identity):
    from PIL import Image

    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in ref_paths]
    torch.testing.assert_close(pipeline.encode_identity(arrays), identity)


def test_cancel_between_steps(pipeline, lq_image):
    progress = []

    def cancel():
        return len(progress) >= 2  # after the first step has reported

    with pytest.raises(CancelledError):
        pipeline(lq_image, steps=4, seed=1, progress=lambda d, t, m: progress.append(d), cancel=cancel)
    assert progress == [0, 1]


def test_color_fix_is_optional(pipeline, lq_image):
    fixed = pipeline(lq_image, steps=2, seed=9)
    raw = pipeline(lq_image, steps=2, seed=9, color_fix=False)
    assert not np.array_equal(fixed, raw)
    # the colour fix brings the output's mean colour to the LQ's
    assert np.abs(fixed.mean((0, 1)) - lq_image.mean((0, 1))).max() < np.abs(raw.mean((0, 1)) - lq_image.mean((0, 1))).max()
