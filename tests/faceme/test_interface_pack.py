"""The released tensor interfaces, end to end: a pack at the real widths (shallow layers) loads through
`FaceMePipeline.from_pack` and restores a real crop with real reference photos.

The everyday tiny pack checks the procedure at small widths; this one checks that the loaders infer
the released shapes (CLIP ViT-L/14 vision tower with two projections → 2048, Mix at 512/1024/2048,
text 768 + 1280 → 2048 with pooled 1280, SDXL's 2816-wide added embedding) from configs and tensors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.faceme.conditioning import identity_prompt
from engine.faceme.mix import Mix, MixWidths
from engine.models.layout import RESTORATION_PARTS, verify_pack
from engine.testing.tiny_pack import INTERFACE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def interface_pipeline(interface_pack):
    from engine.faceme.pipeline import FaceMePipeline

    return FaceMePipeline.from_pack(interface_pack, device="cpu", dtype="float32")


def test_pack_is_in_the_released_layout_with_fp16_variant_files(interface_pack):
    assert all(status.ok for status in verify_pack(interface_pack, RESTORATION_PARTS))
    base = interface_pack / "realvisxl_v3.0"
    for sub, stem in (("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"),
                      ("text_encoder", "model"), ("text_encoder_2", "model")):
        assert (base / sub / f"{stem}.fp16.safetensors").is_file()
    size = sum(p.stat().st_size for p in interface_pack.rglob("*") if p.is_file())
    assert 300e6 < size < 600e6


def test_loaded_shapes_are_the_released_interfaces(interface_pipeline):
    pipe = interface_pipeline
    vision = pipe.id_encoder.config
    assert (vision.hidden_size, vision.num_attention_heads, vision.patch_size, vision.image_size) == (1024, 16, 14, 224)
    assert vision.num_hidden_layers == INTERFACE.vision_layers  # 24 in ViT-L/14; shallow here
    assert vision.intermediate_size == 4096
    assert pipe.id_encoder.vision_model.embeddings.position_embedding.weight.shape == (257, 1024)
    assert pipe.id_encoder.visual_projection.weight.shape == (768, 1024)
    assert pipe.id_encoder.visual_projection.bias is None
    assert pipe.id_encoder.visual_projection_2.weight.shape == (1280, 1024)
    assert pipe.id_encoder.visual_projection_2.bias is None
    assert pipe.id_encoder.output_dim == 2048

    # Mix widths inferred from the file are the released ones, with exactly the released tensors.
    assert pipe.mix.widths == MixWidths(arcface_dim=512, id_hidden_dim=1024, clip_dim=2048, token_dim=2048)
    with torch.device("meta"):
        released = Mix()
    assert {k: tuple(v.shape) for k, v in pipe.mix.state_dict().items()} == {
        k: tuple(v.shape) for k, v in released.state_dict().items()}

    assert pipe.text_encoder.config.hidden_size == 768
    assert (pipe.text_encoder_2.config.hidden_size, pipe.text_encoder_2.config.projection_dim) == (1280, 1280)
    unet = pipe.unet.config
    assert (unet.cross_attention_dim, unet.addition_time_embed_dim, unet.projection_class_embeddings_input_dim) == (
        2048, 256, 2816)
    assert pipe.controlnet.config.cross_attention_dim == 2048
    assert pipe.controlnet.config.projection_class_embeddings_input_dim == 2816

    prompt = pipe.prompt
    assert prompt.plain.embeds.shape == (1, 77, 2048)
    assert prompt.plain.pooled.shape == (1, 1280)
    assert prompt.identity_position == 4


def test_real_references_give_released_width_tokens_spliced_at_face(interface_pipeline, ref_paths):
    pipe = interface_pipeline
    tokens = pipe.encode_identity(ref_paths)
    assert tokens.shape == (2, 2048) and torch.isfinite(tokens).all()
    assert not torch.allclose(tokens[0], tokens[1])  # two photos, two tokens
    plain = pipe.prompt.plain.embeds
    spliced = identity_prompt(pipe.prompt, tokens).embeds
    assert spliced.shape == (1, 77, 2048)
    torch.testing.assert_close(spliced[0, :4], plain[0, :4])
    torch.testing.assert_close(spliced[0, 4:6], tokens)
    torch.testing.assert_close(spliced[0, 6:], plain[0, 5:76])


def test_one_step_restoration_of_a_real_crop(interface_pipeline, lq_image, ref_paths):
    pipe = interface_pipeline
    restored = pipe(lq_image, references=ref_paths, steps=1, seed=7)
    assert restored.shape == (512, 512, 3) and restored.dtype == np.uint8
    assert restored.std() > 1.0  # an image, not a constant
    blind = pipe(lq_image, steps=1, seed=7)
    assert not np.array_equal(restored, blind)  # the identity tokens reached the UNet
