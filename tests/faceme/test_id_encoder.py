"""The CLIP image encoder loads from PhotoMaker-format checkpoints (.bin and .safetensors)."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from engine.errors import ModelPackError
from engine.faceme.id_encoder import clip_preprocess, load_id_encoder


def _photomaker_state(hidden=128, layers=2, patch=16, image=64, proj=24, proj2=40, old_position_ids=False):
    """A PhotoMaker-style id_encoder dict built with transformers' own CLIP class + extra keys."""
    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers,
                              num_attention_heads=hidden // 64, patch_size=patch, image_size=image,
                              projection_dim=proj, hidden_act="quick_gelu")
    reference = CLIPVisionModelWithProjection(config).eval()
    state = dict(reference.state_dict())
    state["visual_projection_2.weight"] = torch.randn(proj2, hidden) * 0.05
    state["fuse_module.mlp1.fc1.weight"] = torch.randn(8, 8)
    state["fuse_module.mlp2.layernorm.bias"] = torch.randn(8)
    if old_position_ids:
        state["vision_model.embeddings.position_ids"] = torch.arange((image // patch) ** 2 + 1)[None]
    lora = {"unet.down_blocks.0.attn1.processor.to_q_lora.down.weight": torch.randn(4, 8)}
    return reference, state, lora


def _expected(reference, state, pixels):
    with torch.no_grad():
        out = reference(pixel_values=pixels)
        pooled = reference.vision_model(pixel_values=pixels).pooler_output
        return torch.cat([out.image_embeds, pooled @ state["visual_projection_2.weight"].T], dim=-1)


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_loads_photomaker_checkpoint_and_ignores_fuse_module(tmp_path, caplog, fmt):
    reference, state, lora = _photomaker_state(old_position_ids=(fmt == "bin"))
    if fmt == "bin":
        path = tmp_path / "photomaker-v1.bin"
        torch.save({"id_encoder": state, "lora_weights": lora}, path)
    else:
        path = tmp_path / "photomaker-v1.safetensors"
        flat = {f"id_encoder.{k}": v.contiguous() for k, v in state.items()}
        flat.update({f"lora_weights.{k}": v.contiguous() for k, v in lora.items()})
        save_file(flat, str(path))
    with caplog.at_level(logging.DEBUG, logger="engine.faceme.id_encoder"):
        encoder = load_id_encoder(path)
    ignored = [r for r in caplog.records if "fuse_module" in r.getMessage()]
    assert ignored and all(r.levelno == logging.DEBUG for r in ignored)
    assert not any(r.levelno >= logging.WARNING for r in caplog.records)
    assert not any(k.startswith("fuse_module") for k in encoder.state_dict())
    config = encoder.config
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (128, 2, 384)
    assert (config.patch_size, config.image_size, config.num_attention_heads) == (16, 64, 2)
    assert encoder.output_dim == 24 + 40
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(encoder(pixels), _expected(reference, state, pixels), rtol=1e-4, atol=1e-5)


def test_missing_vision_key_is_a_model_pack_error(tmp_path):
    _, state, lora = _photomaker_state()
    del state["vision_model.post_layernorm.weight"]
    path = tmp_path / "photomaker-v1.bin"
    torch.save({"id_encoder": state, "lora_weights": lora}, path)
    with pytest.raises(ModelPackError) as info:
        load_id_encoder(path)
    assert info.value.part == "photomaker" and str(path) in str(info.value)


class _Payload:  # pickled by reference: weights_only=True must refuse to construct it
    pass


def test_pickles_with_code_are_refused(tmp_path):
    path = tmp_path / "photomaker-v1.bin"
    with open(path, "wb") as f:
        pickle.dump({"id_encoder": _Payload(), "lora_weights": {}}, f, protocol=2)
    with pytest.raises(ModelPackError, match="unreadable PhotoMaker checkpoint"):
        load_id_encoder(path)


def test_not_a_photomaker_dict(tmp_path):
    path = tmp_path / "photomaker-v1.bin"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ModelPackError, match="id_encoder"):
        load_id_encoder(path)


def test_preprocessing_matches_transformers_clip_processor(shared):
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    processor = CLIPImageProcessorPil()
    photo = np.asarray(Image.open(shared / "data" / "celebref_refs" / "00005" / "hq" / "0.png").convert("RGB"))
    crops = [photo, photo[40:400, 100:300], photo[100:220, 0:500], photo[:37, :53]]
    for crop in crops:
        ours = clip_preprocess(crop, 224)
        theirs = processor(images=Image.fromarray(np.ascontiguousarray(crop)), return_tensors="np")["pixel_values"][0]
        assert ours.shape == theirs.shape == (3, 224, 224)
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
