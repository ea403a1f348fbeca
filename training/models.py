"""Loading what training needs from an engine model pack, and saving in the release layout.

The model classes are the engine's (`engine.faceme.mix.Mix`, `engine.faceme.id_encoder`,
`engine.faces.insightface_backend`) and diffusers' (`ControlNetModel.from_unet`), so what training
writes is exactly what `FaceMePipeline.from_pack` reads: `controlnet/` (diffusers `save_pretrained`) and
`mix/mix.safetensors`.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch

from engine.errors import ModelPackError
from engine.faceme.pipeline import BaseModel, load_base_model, require_part
from engine.models.layout import PARTS, find_file, part_dir

log = logging.getLogger(__name__)


def load_base_models(models_dir: str | Path) -> BaseModel:
    """The frozen SDXL parts and the DDPM noise schedule, in fp32 (the engine's loader)."""
    return load_base_model(Path(models_dir), torch.float32)


def load_reference_models(models_dir: str | Path, device: str | torch.device = "cpu", providers=None):
    """(InsightFace analyzer of antelopev2, CLIP image encoder of PhotoMaker) for `precompute`."""
    from engine.faceme.id_encoder import load_id_encoder
    from engine.faces.insightface_backend import InsightFaceAnalyzer, providers_for_device

    models_dir = Path(models_dir)
    antelope = require_part(models_dir, "antelopev2")
    require_part(models_dir, "photomaker")
    photomaker = find_file(models_dir, "photomaker", PARTS["photomaker"].files[0])
    if providers is None:
        providers = providers_for_device(device)
    analyzer = InsightFaceAnalyzer(antelope, providers=providers)
    return analyzer, load_id_encoder(photomaker, device=device)


def new_controlnet(unet, conditioning_channels: tuple[int, ...] | None = None):
    """A ControlNet initialised from the UNet (diffusers' `from_unet`: encoder copied, zero convolutions)."""
    from diffusers import ControlNetModel

    if conditioning_channels:
        return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=tuple(conditioning_channels))
    return ControlNetModel.from_unet(unet)


def new_mix(clip_dim: int, token_dim: int, arcface_dim: int = 512, id_hidden_dim: int = 1024):
    from engine.faceme.mix import Mix

    return Mix(arcface_dim=arcface_dim, id_hidden_dim=id_hidden_dim, clip_dim=clip_dim, token_dim=token_dim)


def save_mix(mix: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in mix.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(path)


def save_release_layout(out_dir: Path, controlnet, mix) -> None:
    """`out_dir/controlnet/` and `out_dir/mix/mix.safetensors`, as in thomas2modyu/FaceMe."""
    out_dir = Path(out_dir)
    controlnet.save_pretrained(out_dir / "controlnet")
    save_mix(mix, out_dir / "mix" / "mix.safetensors")
    log.info("saved controlnet/ and mix/mix.safetensors in %s", out_dir)


def assemble_pack(base_pack: str | Path, trained: str | Path, out: str | Path) -> Path:
    """A model pack that uses `trained`'s controlnet/ and mix/ and `base_pack`'s other parts.

    The other parts are linked (symlinks where the file system allows, else copied), so the engine's
    `FaceMePipeline.from_pack` / `faceme restore-face --models OUT` load the trained weights directly."""
    base_pack, trained, out = Path(base_pack).resolve(), Path(trained).resolve(), Path(out)
    for sub in ("controlnet", "mix"):
        if not (trained / sub).is_dir():
            raise ModelPackError(f"no {sub}/ folder in the training output", trained)
    faceme = part_dir(out, "faceme-controlnet").parent
    if faceme.exists():
        shutil.rmtree(faceme)
    faceme.mkdir(parents=True)
    shutil.copytree(trained / "controlnet", part_dir(out, "faceme-controlnet"))
    shutil.copytree(trained / "mix", part_dir(out, "faceme-mix"))
    for name in PARTS:
        if name in ("faceme-controlnet", "faceme-mix"):
            continue
        source, target = part_dir(base_pack, name), part_dir(out, name)
        if not source.exists() or target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.symlink_to(source, target_is_directory=True)
        except OSError:
            shutil.copytree(source, target)
    return out
