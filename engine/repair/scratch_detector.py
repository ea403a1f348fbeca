"""The scratch detector of "Bringing Old Photos Back to Life" (Wan et al., CVPR 2020; MIT), which
spandrel does not read: its network, written here from the published description of the architecture,
and a reader of its released checkpoint (`Global/checkpoints/detection/FT_Epoch_latest.pt` of the
release's global_checkpoints.zip: a torch pickle whose "model_state" holds the network's state dict).

The network is a U-Net on one grey channel: a 7×7 stem (reflection padded), then per level an
anti-aliased downsampling (3×3 conv, batch norm, leaky ReLU 0.2, a fixed binomial [1, 2, 1] blur with
stride 2) followed by `conv_num` 3×3 conv + batch norm + leaky ReLU layers doubling the width; the way
up is bilinear ×2, a 3×3 conv, concatenation with the skip, and the same conv layers; a last 3×3 conv
gives one logit per pixel. The release's detector has depth 4, two convs per block and 64 channels at
the stem; every width and depth is read from the checkpoint here, so smaller test checkpoints load
through the same code. Input: grey in [-1, 1] (x − 0.5) / 0.5, sides multiples of 16; a pixel is
damage where sigmoid(logit) ≥ 0.4, the release's threshold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import ModelPackError

#: the release's threshold on sigmoid(logit)
THRESHOLD = 0.4
#: input sides must be multiples of this (2 ** depth of the released network)
SIDE_MULTIPLE = 16


@dataclass(frozen=True)
class DetectorShape:
    in_channels: int
    stem_width: int
    depth: int
    conv_num: int


def _conv_block(conv_num: int, in_size: int, out_size: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(conv_num):
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(in_size, out_size, 3), nn.BatchNorm2d(out_size),
                   nn.LeakyReLU(0.2, True)]
        in_size = out_size
    return nn.Sequential(*layers)


class BlurDownsample(nn.Module):
    """A fixed [1, 2, 1] ⊗ [1, 2, 1] / 16 blur per channel, reflection padded, stride 2 (its filter is
    stored in the checkpoint as the buffer `filt`)."""

    def __init__(self, channels: int):
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("filt", (kernel / kernel.sum())[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class UpBlock(nn.Module):
    def __init__(self, conv_num: int, in_size: int, out_size: int):
        super().__init__()
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                nn.ReflectionPad2d(1), nn.Conv2d(in_size, out_size, 3))
        self.conv_block = _ConvBlock(conv_num, in_size, out_size)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up(x)
        dy, dx = (skip.shape[2] - up.shape[2]) // 2, (skip.shape[3] - up.shape[3]) // 2
        skip = skip[:, :, dy:dy + up.shape[2], dx:dx + up.shape[3]]
        return self.conv_block(torch.cat([up, skip], 1))


class _ConvBlock(nn.Module):
    """Holds its layers as `block` (the checkpoint's key names)."""

    def __init__(self, conv_num: int, in_size: int, out_size: int):
        super().__init__()
        self.block = _conv_block(conv_num, in_size, out_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class ScratchDetector(nn.Module):
    def __init__(self, shape: DetectorShape):
        super().__init__()
        self.shape = shape
        width = shape.stem_width
        self.first = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(shape.in_channels, width, 7),
                                   nn.LeakyReLU(0.2, True))
        self.down_sample = nn.ModuleList()
        self.down_path = nn.ModuleList()
        for _ in range(shape.depth):
            self.down_sample.append(nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3),
                                                  nn.BatchNorm2d(width), nn.LeakyReLU(0.2, True),
                                                  BlurDownsample(width)))
            self.down_path.append(_ConvBlock(shape.conv_num, width, width * 2))
            width *= 2
        self.up_path = nn.ModuleList()
        for _ in range(shape.depth):
            self.up_path.append(UpBlock(shape.conv_num, width, width // 2))
            width //= 2
        self.last = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(width, 1, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(x)
        skips = []
        for down, block in zip(self.down_sample, self.down_path):
            skips.append(x)
            x = block(down(x))
        for up, skip in zip(self.up_path, reversed(skips)):
            x = up(x, skip)
        return self.last(x)


def shape_of(state: dict[str, torch.Tensor], path: Path) -> DetectorShape:
    """The network's widths and depth as the state dict has them."""
    try:
        stem = state["first.1.weight"]
        depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"down_path\.(\d+)\.", k)))
        convs = {int(m.group(1)) for k in state if (m := re.match(r"down_path\.0\.block\.(\d+)\.weight$", k))}
    except (KeyError, ValueError) as exc:
        raise ModelPackError(f"not the old-photo scratch detector's checkpoint (no {exc})", path,
                             part="scratch-detector") from exc
    # per conv: pad, conv, norm, activation → the convs sit at 1, 5, 9, …
    conv_num = len([i for i in convs if i % 4 == 1])
    return DetectorShape(in_channels=int(stem.shape[1]), stem_width=int(stem.shape[0]), depth=depth,
                         conv_num=conv_num)


def load_scratch_detector(path: str | Path, device: str = "cpu") -> ScratchDetector:
    """The detector of the released checkpoint at `path` (or of a bare state dict), in eval mode.
    Only tensors are unpickled (weights_only). ModelPackError naming the file when it is not one."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise ModelPackError(f"cannot be read as the scratch detector's checkpoint ({exc.__class__.__name__}: "
                             f"{exc})", path, part="scratch-detector") from exc
    state = checkpoint.get("model_state", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ModelPackError("not the scratch detector's checkpoint (no model_state)", path, part="scratch-detector")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model = ScratchDetector(shape_of(state, path))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelPackError(f"does not fit the scratch detector's network: {exc}", path,
                             part="scratch-detector") from exc
    return model.to(device).eval().requires_grad_(False)
