"""The CLIP image encoder of FaceMe's identity path, loaded from a PhotoMaker v1 checkpoint.

PhotoMaker's `id_encoder` is transformers' CLIPVisionModelWithProjection (ViT-L/14) with a second
projection `visual_projection_2` (no bias). FaceMe uses the two projections of the pooled output,
concatenated (768 + 1280 = 2048). PhotoMaker's `fuse_module` and its LoRA are not used by FaceMe.

Checkpoint formats read here (the real upstream ones):
- `photomaker-v1.bin`: a torch pickle of `{"id_encoder": state_dict, "lora_weights": state_dict}`,
  read with `torch.load(weights_only=True)` (tensors and plain containers only, no code);
- a `.safetensors` variant whose keys carry the prefixes `id_encoder.` / `lora_weights.`.

The CLIPVisionConfig is inferred from the tensor shapes, so the same code loads the released
ViT-L/14 and the tiny test encoders. The one width that shapes cannot reveal is the number of
attention heads: we use hidden // 64, the head width every OpenAI CLIP ViT uses (ViT-B: 768/12,
ViT-L: 1024/16, ViT-H: 1280/16, ViT-bigG: 1664/16 all give 64).
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from engine.errors import ModelPackError
from engine.models.layout import PARTS

log = logging.getLogger(__name__)

PART = "photomaker"
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_HEAD_DIM = 64

_PREFIX = "vision_model."


def _error(message: str, path: Path) -> ModelPackError:
    return ModelPackError(message, path, part=PART, hint=f"get it: {PARTS[PART].where_to_get}")


class CLIPIdentityEncoder(nn.Module):
    """CLIP ViT vision tower + `visual_projection` + `visual_projection_2`.

    The submodules carry the exact PhotoMaker key names (`vision_model.…`, `visual_projection.weight`,
    `visual_projection_2.weight`), so a checkpoint's `id_encoder` dict (minus `fuse_module.*`) loads
    strictly.
    """

    def __init__(self, config: CLIPVisionConfig, projection_2_dim: int = 1280):
        super().__init__()
        clip = CLIPVisionModelWithProjection(config)
        self.config = config
        self.vision_model = clip.vision_model
        self.visual_projection = clip.visual_projection
        self.visual_projection_2 = nn.Linear(config.hidden_size, projection_2_dim, bias=False)

    @property
    def image_size(self) -> int:
        return int(self.config.image_size)

    @property
    def output_dim(self) -> int:
        return self.visual_projection.out_features + self.visual_projection_2.out_features

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, 3, S, S), CLIP-normalised → (B, projection_dim + projection_2_dim)."""
        pooled = self.vision_model(pixel_values=pixel_values).pooler_output
        return torch.cat([self.visual_projection(pooled), self.visual_projection_2(pooled)], dim=-1)


def clip_preprocess(image_rgb: np.ndarray, size: int = 224) -> np.ndarray:
    """Standard CLIP preprocessing → float32 (3, size, size).

    RGB, shortest side to `size` (bicubic, long side truncated like transformers), centre crop,
    scale to [0, 1], normalise with the OpenAI CLIP mean/std.
    """
    image = np.asarray(image_rgb)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = image[..., :3]
    height, width = image.shape[:2]
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    resized = np.asarray(Image.fromarray(image.astype(np.uint8)).resize((new_w, new_h), Image.BICUBIC))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    crop = resized[top:top + size, left:left + size].astype(np.float32) / 255.0
    crop = (crop - np.asarray(OPENAI_CLIP_MEAN, np.float32)) / np.asarray(OPENAI_CLIP_STD, np.float32)
    return np.ascontiguousarray(crop.transpose(2, 0, 1))


def read_photomaker_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(id_encoder state dict, lora_weights state dict) from a `.bin` or `.safetensors` file."""
    path = Path(path)
    if not path.is_file():
        raise _error("PhotoMaker checkpoint not found", path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            flat = load_file(str(path))
            id_encoder = {k[len("id_encoder."):]: v for k, v in flat.items() if k.startswith("id_encoder.")}
            lora = {k[len("lora_weights."):]: v for k, v in flat.items() if k.startswith("lora_weights.")}
            other = [k for k in flat if not k.startswith(("id_encoder.", "lora_weights."))]
            if other:
                log.debug("%s: ignoring %d keys outside id_encoder./lora_weights.", path, len(other))
        else:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
            if not isinstance(data, dict) or "id_encoder" not in data:
                raise _error("not a PhotoMaker checkpoint (no 'id_encoder' entry)", path)
            id_encoder, lora = data["id_encoder"], data.get("lora_weights", {})
    except ModelPackError:
        raise
    except Exception as exc:  # unpickling / safetensors errors of every kind
        raise _error(f"unreadable PhotoMaker checkpoint ({exc.__class__.__name__}: {exc})", path) from exc
    if not id_encoder:
        raise _error("no id_encoder weights in the checkpoint", path)
    return dict(id_encoder), dict(lora)


def clip_vision_config_from_state_dict(state: dict[str, torch.Tensor]) -> tuple[CLIPVisionConfig, int]:
    """Infer (CLIPVisionConfig, visual_projection_2 width) from a CLIP vision state dict."""
    patch = state[_PREFIX + "embeddings.patch_embedding.weight"]  # (hidden, channels, p, p)
    hidden, channels, patch_size = int(patch.shape[0]), int(patch.shape[1]), int(patch.shape[2])
    num_positions = int(state[_PREFIX + "embeddings.position_embedding.weight"].shape[0])
    grid = math.isqrt(num_positions - 1)
    if grid * grid != num_positions - 1:
        raise ValueError(f"position embedding of {num_positions} rows is not a square grid + class token")
    layer_ids = {int(m.group(1)) for k in state if (m := re.match(r"vision_model\.encoder\.layers\.(\d+)\.", k))}
    if not layer_ids:
        raise ValueError("no encoder layers")
    if hidden % CLIP_HEAD_DIM:
        raise ValueError(f"hidden width {hidden} is not a multiple of the CLIP head width {CLIP_HEAD_DIM}")
    config = CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=int(state[_PREFIX + "encoder.layers.0.mlp.fc1.weight"].shape[0]),
        num_hidden_layers=max(layer_ids) + 1,
        num_attention_heads=hidden // CLIP_HEAD_DIM,
        num_channels=channels,
        patch_size=patch_size,
        image_size=grid * patch_size,
        projection_dim=int(state["visual_projection.weight"].shape[0]),
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    return config, int(state["visual_projection_2.weight"].shape[0])


def load_id_encoder(path: str | Path, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32) -> CLIPIdentityEncoder:
    """Load the CLIP image encoder strictly from a PhotoMaker-format checkpoint."""
    path = Path(path)
    id_state, lora = read_photomaker_checkpoint(path)
    fuse = [k for k in id_state if k.startswith("fuse_module.")]
    log.debug("%s: ignoring %d fuse_module keys and %d lora_weights keys (FaceMe uses neither)",
              path, len(fuse), len(lora))
    # Older transformers saved position_ids as a persistent buffer; it is derived, not learned.
    state = {k: v for k, v in id_state.items()
             if not k.startswith("fuse_module.") and not k.endswith("embeddings.position_ids")}
    try:
        config, projection_2_dim = clip_vision_config_from_state_dict(state)
        encoder = CLIPIdentityEncoder(config, projection_2_dim)
        encoder.load_state_dict(state, strict=True)
    except KeyError as exc:
        raise _error(f"id_encoder is not a CLIP vision encoder with two projections: tensor {exc} is missing",
                     path) from exc
    except (RuntimeError, ValueError, IndexError) as exc:
        raise _error(f"id_encoder is not a CLIP vision encoder with two projections: {exc}", path) from exc
    log.debug("loaded CLIP id encoder (hidden %d, %d layers, %d px) from %s", config.hidden_size,
              config.num_hidden_layers, config.image_size, path)
    return encoder.to(device=device, dtype=dtype).eval().requires_grad_(False)
