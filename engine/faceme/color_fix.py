"""Wavelet colour correction: the restored image's detail on the LQ image's colours.

Both images are split into high-frequency detail and a low-frequency residual with an "à trous"
(dilated) wavelet: 5 levels of a 3×3 binomial blur, dilation 2^level, replicate padding. The result is
the restored detail plus the LQ's low frequencies, which undoes the colour drift diffusion brings in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LEVELS = 5
_KERNEL = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0


def wavelet_blur(image: torch.Tensor, dilation: int) -> torch.Tensor:
    """3×3 binomial blur of (B, C, H, W) with the given dilation and replicate padding."""
    channels = image.shape[1]
    kernel = _KERNEL.to(device=image.device, dtype=image.dtype).expand(channels, 1, 3, 3)
    padded = F.pad(image, (dilation, dilation, dilation, dilation), mode="replicate")
    return F.conv2d(padded, kernel, groups=channels, dilation=dilation)


def wavelet_decompose(image: torch.Tensor, levels: int = LEVELS) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low): high = Σ_levels (current − blurred), low = the last blurred image."""
    high = torch.zeros_like(image)
    current = image
    for level in range(levels):
        blurred = wavelet_blur(current, 2 ** level)
        high = high + (current - blurred)
        current = blurred
    return high, current


def wavelet_color_fix(restored: torch.Tensor, lq: torch.Tensor, levels: int = LEVELS) -> torch.Tensor:
    """Detail of `restored` + low frequencies of `lq`; both (B, C, H, W) in the same value range."""
    if restored.shape != lq.shape:
        raise ValueError(f"shapes differ: restored {tuple(restored.shape)} vs lq {tuple(lq.shape)}")
    high, _ = wavelet_decompose(restored, levels)
    _, low = wavelet_decompose(lq, levels)
    return high + low
