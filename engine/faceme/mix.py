"""Mix: FaceMe's identity fusion MLPs (CLIP image features + ArcFace → one identity token).

The module tree mirrors the released `mix/mix.safetensors` key names exactly (`pro_id.mlp1.fc1.weight`,
`mlp1.layernorm.bias`, `norm1.weight`, `mlp2.fc2.bias`, ...), so the released file loads strictly.
Widths are constructor parameters with the released widths as defaults; `load_mix` reads them from the
file's tensor shapes, so tiny test packs and the real weights take the same path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engine.errors import ModelPackError
from engine.models.layout import PARTS

log = logging.getLogger(__name__)

PART = "faceme-mix"


def _error(message: str, path: Path) -> ModelPackError:
    return ModelPackError(message, path, part=PART, hint=f"get it: {PARTS[PART].where_to_get}")


class MLP(nn.Module):
    """layernorm → fc1 → GELU → fc2, plus the input when `residual` (then in_dim == out_dim)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int, residual: bool):
        super().__init__()
        if residual and in_dim != out_dim:
            raise ValueError(f"a residual MLP needs in_dim == out_dim (got {in_dim} → {out_dim})")
        self.residual = residual
        self.layernorm = nn.LayerNorm(in_dim)
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, out_dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc2(self.act(self.fc1(self.layernorm(x))))
        return x + y if self.residual else y


class ProjectID(nn.Module):
    """ArcFace embedding → the CLIP feature width, through four MLPs (two residual)."""

    def __init__(self, arcface_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.mlp1 = MLP(arcface_dim, hidden_dim, hidden_dim, residual=False)
        self.mlp2 = MLP(hidden_dim, hidden_dim, hidden_dim, residual=True)
        self.mlp3 = MLP(hidden_dim, out_dim, out_dim, residual=False)
        self.mlp4 = MLP(out_dim, out_dim, out_dim, residual=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp4(self.mlp3(self.mlp2(self.mlp1(x))))


@dataclass(frozen=True)
class MixWidths:
    arcface_dim: int = 512
    id_hidden_dim: int = 1024
    clip_dim: int = 2048
    token_dim: int = 2048


class Mix(nn.Module):
    """Mix(clip (…, clip_dim), arcface (…, arcface_dim)) → identity token (…, token_dim).

    The CLIP features come first in the concatenation, as in the release.
    """

    def __init__(self, arcface_dim: int = 512, id_hidden_dim: int = 1024, clip_dim: int = 2048,
                 token_dim: int = 2048):
        super().__init__()
        self.widths = MixWidths(arcface_dim, id_hidden_dim, clip_dim, token_dim)
        self.pro_id = ProjectID(arcface_dim, id_hidden_dim, clip_dim)
        self.mlp1 = MLP(2 * clip_dim, token_dim, token_dim, residual=False)
        self.norm1 = nn.LayerNorm(token_dim)
        self.mlp2 = MLP(token_dim, token_dim, token_dim, residual=True)

    def forward(self, clip_features: torch.Tensor, arcface: torch.Tensor) -> torch.Tensor:
        fused = torch.cat([clip_features, self.pro_id(arcface)], dim=-1)
        return self.mlp2(self.norm1(self.mlp1(fused)))


def mix_widths_from_state_dict(state: dict[str, torch.Tensor]) -> MixWidths:
    """Read the widths from the tensor shapes (Linear weights are (out, in))."""
    arc_w = state["pro_id.mlp1.fc1.weight"]
    return MixWidths(
        arcface_dim=int(arc_w.shape[1]),
        id_hidden_dim=int(arc_w.shape[0]),
        clip_dim=int(state["pro_id.mlp3.fc2.weight"].shape[0]),
        token_dim=int(state["mlp1.fc2.weight"].shape[0]),
    )


def load_mix(path: str | Path, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> Mix:
    """Load `mix.safetensors` strictly: every released key present, nothing unexpected."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        state = load_file(str(path))
    except FileNotFoundError as exc:
        raise _error("Mix weights not found", path) from exc
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise _error(f"not a readable safetensors file ({exc})", path) from exc
    try:
        widths = mix_widths_from_state_dict(state)
        mix = Mix(widths.arcface_dim, widths.id_hidden_dim, widths.clip_dim, widths.token_dim)
        mix.load_state_dict(state, strict=True)
    except KeyError as exc:
        raise _error(f"not FaceMe Mix weights: tensor {exc} is missing", path) from exc
    except (RuntimeError, ValueError, IndexError) as exc:
        raise _error(f"not FaceMe Mix weights: {exc}", path) from exc
    log.debug("loaded Mix %s from %s", widths, path)
    return mix.to(device=device, dtype=dtype).eval().requires_grad_(False)
