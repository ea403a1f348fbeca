"""The tiny pack is in the released formats and the documented layout."""

from __future__ import annotations

import json

import onnx
import torch
from safetensors import safe_open

from engine.models.layout import RESTORATION_PARTS, verify_pack
from engine.testing.tiny_pack import main as tiny_pack_main


def test_layout_verifies(tiny_pack, run_cli):
    assert all(status.ok for status in verify_pack(tiny_pack, RESTORATION_PARTS))
    code, out, err = run_cli("models", "verify", "--models", tiny_pack)
    assert code == 0, out + err
    assert "all parts present" in out


def test_photomaker_checkpoint_format(tiny_pack):
    data = torch.load(tiny_pack / "photomaker" / "photomaker-v1.bin", map_location="cpu", weights_only=True)
    assert set(data) == {"id_encoder", "lora_weights"}
    keys = set(data["id_encoder"])
    assert "vision_model.embeddings.patch_embedding.weight" in keys
    assert {"visual_projection.weight", "visual_projection_2.weight"} <= keys
    assert any(k.startswith("fuse_module.") for k in keys)
    assert data["lora_weights"] and all(k.startswith("unet.") for k in data["lora_weights"])


def test_mix_file_has_the_official_names(tiny_pack):
    with safe_open(str(tiny_pack / "faceme" / "mix" / "mix.safetensors"), "pt") as f:
        keys = set(f.keys())
    mlp = ("layernorm.weight", "layernorm.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")
    expected = {f"{block}.{leaf}" for block in ("pro_id.mlp1", "pro_id.mlp2", "pro_id.mlp3", "pro_id.mlp4",
                                                "mlp1", "mlp2") for leaf in mlp}
    assert keys == expected | {"norm1.weight", "norm1.bias"}


def test_recognition_model_has_arcface_signature_in_one_file(tiny_pack, shared):
    folder = tiny_pack / "insightface" / "antelopev2"
    # (the install record, .faceme-part.json, is not a model file)
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["glintr100.onnx", "scrfd_10g_bnkps.onnx"]
    model = onnx.load(str(folder / "glintr100.onnx"))  # loads without external data
    (graph_input,) = model.graph.input
    dims = [d.dim_value or d.dim_param for d in graph_input.type.tensor_type.shape.dim]
    assert dims[1:] == [3, 112, 112]
    (graph_output,) = model.graph.output
    assert [d.dim_value for d in graph_output.type.tensor_type.shape.dim][1:] == [512]
    detector = shared / "models" / "insightface_scrfd" / "det_500m.onnx"
    assert (folder / "scrfd_10g_bnkps.onnx").read_bytes() == detector.read_bytes()
    from insightface.model_zoo import model_zoo

    routed = model_zoo.get_model(str(folder / "glintr100.onnx"), providers=["CPUExecutionProvider"])
    assert routed.taskname == "recognition" and routed.input_mean == 127.5


def test_diffusers_folders_and_scheduler(tiny_pack):
    base = tiny_pack / "realvisxl_v3.0"
    index = json.loads((base / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    for sub in ("tokenizer", "tokenizer_2"):
        vocab = json.loads((base / sub / "vocab.json").read_text(encoding="utf-8"))
        assert len(vocab) == 49408 and vocab["face</w>"] == 1710 and vocab["!"] == 0
    unet = json.loads((base / "unet" / "config.json").read_text())
    text_1 = json.loads((base / "text_encoder" / "config.json").read_text())
    text_2 = json.loads((base / "text_encoder_2" / "config.json").read_text())
    assert unet["cross_attention_dim"] == text_1["hidden_size"] + text_2["hidden_size"]
    assert unet["projection_class_embeddings_input_dim"] == 6 * unet["addition_time_embed_dim"] + text_2["projection_dim"]
    vae = json.loads((base / "vae" / "config.json").read_text())
    assert len(vae["block_out_channels"]) == 4  # ÷8, as the ControlNet's conditioning embedding expects
    scheduler = json.loads((base / "scheduler" / "scheduler_config.json").read_text())
    assert (scheduler["timestep_spacing"], scheduler["steps_offset"], scheduler["beta_schedule"]) == (
        "leading", 1, "scaled_linear")
    control = json.loads((tiny_pack / "faceme" / "controlnet" / "config.json").read_text())
    assert control["_class_name"] == "ControlNetModel"
    assert control["conditioning_embedding_out_channels"] == [4, 8, 8, 16]


def test_command_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "something").write_text("x")
    assert tiny_pack_main([str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
