"""Loading choices: device/precision resolution and fp16-variant files of the base model."""

from __future__ import annotations

import shutil

import pytest
import torch

from engine.errors import ModelPackError, UsageError
from engine.faceme.pipeline import FaceMePipeline, resolve_device, resolve_dtype


def test_device_and_dtype_resolution():
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(UsageError):
        resolve_dtype("float8", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA"):
            resolve_device("cuda")


def test_fp16_variant_files_are_used_when_present(tiny_pack, tmp_path):
    """RealVisXL ships `*.fp16.safetensors` beside (or instead of) the fp32 files: those are loaded."""
    from diffusers import UNet2DConditionModel

    pack = tmp_path / "pack"
    # the user's own files, placed by hand: no install records (they are made on this first load)
    shutil.copytree(tiny_pack, pack, ignore=shutil.ignore_patterns(".faceme-part.json"))
    unet_dir = pack / "realvisxl_v3.0" / "unet"
    unet = UNet2DConditionModel.from_pretrained(unet_dir)
    (unet_dir / "diffusion_pytorch_model.safetensors").unlink()
    with torch.no_grad():
        for p in unet.parameters():
            p.mul_(0.5)  # so that the test can tell which file was read
    unet.half().save_pretrained(unet_dir, variant="fp16")
    assert (unet_dir / "diffusion_pytorch_model.fp16.safetensors").is_file()
    pipe = FaceMePipeline.from_pack(pack, device="cpu", dtype="float32")
    assert pipe.unet.dtype == torch.float32
    name, param = next(iter(unet.named_parameters()))
    torch.testing.assert_close(dict(pipe.unet.named_parameters())[name], param.float())


def test_each_missing_part_is_named(tiny_pack, tmp_path):
    for part, folder in (("photomaker", "photomaker"), ("faceme-controlnet", "faceme/controlnet"),
                         ("antelopev2", "insightface/antelopev2")):
        pack = tmp_path / part
        shutil.copytree(tiny_pack, pack, ignore=shutil.ignore_patterns("unet", "vae", "text_encoder*"))
        for sub in ("unet", "vae", "text_encoder", "text_encoder_2"):
            (pack / "realvisxl_v3.0" / sub).symlink_to(tiny_pack / "realvisxl_v3.0" / sub)
        shutil.rmtree(pack / folder)
        with pytest.raises(ModelPackError) as info:
            FaceMePipeline.from_pack(pack, device="cpu")
        assert info.value.part == part and info.value.hint and "get it" in str(info.value)


def test_loading_draws_no_library_progress_bars(tiny_pack, capfd):
    from transformers.utils import logging as transformers_logging

    from engine.faceme.pipeline import FaceMePipeline

    transformers_logging.enable_progress_bar()
    FaceMePipeline.from_pack(tiny_pack, device="cpu")
    assert "Loading weights" not in capfd.readouterr().err
    assert transformers_logging.is_progress_bar_enabled()  # restored for other users of the library
