"""Speed and memory at identical output (issue 12): the cached prompt, reference models on demand,
batched denoising, memory modes, device/dtype choice, and the options that trade output for speed."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from engine.errors import UsageError
from engine.faceme import memory
from engine.faceme.conditioning import encode_prompt
from engine.faceme.pipeline import FaceMePipeline, load_base_model


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.fixture(scope="module")
def crops(crops_dir):
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(crops_dir.glob("*.png"))[:3]]


# ---- the prompt, computed once per pack ---------------------------------------------------------------

def test_prompt_cached_on_disk_then_text_encoders_never_loaded(tiny_pack, tmp_path, monkeypatch, lq_image):
    first = FaceMePipeline.from_pack(tiny_pack, device="cpu", prompt_cache=tmp_path)
    files = list((tmp_path / "prompt-embeddings").glob("*.safetensors"))
    assert len(files) == 1
    assert first.loaded_components() == []  # text encoders dropped once the cache is written

    loads = []
    real = load_base_model

    def counting(*args, **kwargs):
        loads.append(kwargs.get("text_encoders", True))
        return real(*args, **kwargs)

    monkeypatch.setattr("engine.faceme.pipeline.load_base_model", counting)
    cached = FaceMePipeline.from_pack(tiny_pack, device="cpu", prompt_cache=tmp_path)
    assert loads == [False] and cached.loaded_components() == []
    base = real(tiny_pack, torch.float32)
    encoded = encode_prompt(base.tokenizer, base.tokenizer_2, base.text_encoder, base.text_encoder_2)
    for got, expected in ((cached.prompt.plain.embeds, encoded.plain.embeds),
                          (cached.prompt.plain.pooled, encoded.plain.pooled),
                          (cached.prompt.plain.time_ids, encoded.plain.time_ids)):
        assert torch.equal(got, expected)
    assert cached.prompt.identity_position == encoded.identity_position == 4
    assert loads == [False]  # the prompt came from the file
    uncached = FaceMePipeline.from_pack(tiny_pack, device="cpu", prompt_cache=False)
    assert "text_encoder" in uncached.loaded_components()
    np.testing.assert_array_equal(cached(lq_image, steps=2, seed=4), uncached(lq_image, steps=2, seed=4))


def test_a_broken_cache_file_is_recomputed(tiny_pack, tmp_path):
    FaceMePipeline.from_pack(tiny_pack, device="cpu", prompt_cache=tmp_path)
    cache_file = next((tmp_path / "prompt-embeddings").glob("*.safetensors"))
    good = cache_file.read_bytes()
    cache_file.write_bytes(b"truncated")
    again = FaceMePipeline.from_pack(tiny_pack, device="cpu", prompt_cache=tmp_path)
    assert cache_file.read_bytes() == good
    assert again.prompt.plain.embeds.shape[1] == 77


def test_reference_models_load_on_demand_and_are_released(tiny_pack, ref_paths, identity):
    pipe = FaceMePipeline.from_pack(tiny_pack, device="cpu")
    assert "id_encoder" not in pipe.loaded_components() and "face_analyzer" not in pipe.loaded_components()
    tokens = pipe.encode_identity(ref_paths)
    assert {"id_encoder", "face_analyzer"} <= set(pipe.loaded_components())
    pipe.release_reference_models()
    assert pipe.loaded_components() == []
    torch.testing.assert_close(tokens, identity)
    torch.testing.assert_close(pipe.encode_identity(ref_paths), identity)  # loaded again when needed


# ---- several faces in one batched denoising -------------------------------------------------------

def test_batched_restoration_equals_one_by_one(pipeline, crops, identity):
    identities = [identity, None, identity[:1]]
    seeds = [11, 12, 13]
    rows = []
    handle = pipeline.unet.register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[0]))
    try:
        batched = pipeline.restore_faces(crops, identities, seeds, steps=3, batch_size=3)
    finally:
        handle.remove()
    assert rows == [5, 5, 5]  # 3 faces: 2 + 1 + 2 guidance branches in each forward
    for crop, tokens, seed, got in zip(crops, identities, seeds, batched):
        alone = pipeline(crop, identity=tokens, steps=3, seed=seed)
        assert _max_diff(got, alone) <= 1
    assert _max_diff(batched[0], batched[2]) > 0
    two_at_a_time = pipeline.restore_faces(crops, identities, seeds, steps=3, batch_size=2)
    for a, b in zip(batched, two_at_a_time):
        assert _max_diff(a, b) <= 1


def test_faces_of_one_real_photo_restored_together(pipeline, shared, ref_paths):
    from engine.faces.align import align_face, warp_to_crop

    photo = np.asarray(Image.open(shared / "data" / "group_photos" / "images" / "dlib_2008_001322.jpg")
                       .convert("RGB"))
    faces = sorted(pipeline.face_analyzer.detect(photo), key=lambda f: -f.area)[:3]
    assert len(faces) >= 2
    crops = [warp_to_crop(photo, align_face(face.landmarks)) for face in faces]
    tokens = pipeline.encode_identity(ref_paths[:1])
    seeds = list(range(len(crops)))
    progress = []
    batched = pipeline.restore_faces(crops, [tokens] * len(crops), seeds, steps=2,
                                     progress=lambda d, t, m: progress.append((d, t)))
    assert progress[-1] == (2, 2)  # one batch of every face (CPU batch size 4)
    for crop, seed, got in zip(crops, seeds, batched):
        assert got.shape == (512, 512, 3)
        assert _max_diff(got, pipeline(crop, identity=tokens, steps=2, seed=seed)) <= 1


def test_restore_faces_checks_its_lists(pipeline, crops):
    with pytest.raises(UsageError, match="3 crops need 3 identities"):
        pipeline.restore_faces(crops, [None], [1, 2, 3], steps=1)
    assert pipeline.restore_faces([], steps=1) == []


def test_batch_size_follows_free_memory(monkeypatch):
    assert memory.batch_size_for(torch.device("cpu"), 10) == memory.CPU_BATCH
    assert memory.batch_size_for(torch.device("cpu"), 2) == 2
    monkeypatch.setattr(memory, "free_memory", lambda device: 5 * memory.FACE_WORKING_BYTES + 1)
    assert memory.batch_size_for(torch.device("cuda"), 10) == 5
    assert memory.batch_size_for(torch.device("cuda"), 10, limit=3) == 3
    monkeypatch.setattr(memory, "free_memory", lambda device: 100 * memory.FACE_WORKING_BYTES)
    assert memory.batch_size_for(torch.device("cuda"), 20) == memory.MAX_BATCH
    monkeypatch.setattr(memory, "free_memory", lambda device: 0)
    assert memory.batch_size_for(torch.device("cuda"), 20) == 1


# ---- memory modes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["balanced", "low"])
def test_memory_modes_restore_exactly_like_full(tiny_pack, pipeline, lq_image, identity, mode):
    offloaded = FaceMePipeline.from_pack(tiny_pack, device="cpu", memory=mode)
    assert offloaded.memory_mode == mode
    streamed = [offloaded.controlnet] + ([offloaded.unet, offloaded.vae] if mode == "low" else [])
    for module in streamed:
        assert memory.is_streamed(module)  # diffusers' group offloading, not code of ours
    assert not memory.is_streamed(offloaded.unet) or mode == "low"
    expected = pipeline(lq_image, identity=identity, steps=2, seed=21)
    np.testing.assert_array_equal(offloaded(lq_image, identity=identity, steps=2, seed=21), expected)


def test_auto_memory_mode_from_free_vram(caplog):
    cuda = torch.device("cuda")
    gib = memory.GIB
    assert memory.choose_memory_mode("auto", cuda, free_bytes=40 * gib) == "full"
    assert memory.choose_memory_mode("auto", cuda, free_bytes=8 * gib) == "balanced"
    with caplog.at_level("INFO", logger="engine.faceme.memory"):
        assert memory.choose_memory_mode("auto", cuda, free_bytes=5 * gib) == "low"
    assert "5.0 GiB free" in caplog.text and "low" in caplog.text
    assert memory.choose_memory_mode("auto", torch.device("cpu")) == "full"
    assert memory.choose_memory_mode("auto", torch.device("mps")) == "full"  # unified memory
    assert memory.choose_memory_mode("low", cuda, free_bytes=80 * gib) == "low"
    with pytest.raises(UsageError, match="unknown memory mode"):
        memory.choose_memory_mode("tiny", cuda)


# ---- devices: Apple Silicon ------------------------------------------------------------------------

def test_auto_device_is_mps_on_a_mac_with_fp16_and_an_fp32_vae(monkeypatch, tiny_pack):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(memory, "mps_available", lambda: True)
    monkeypatch.setattr(sys, "platform", "darwin")
    device = memory.resolve_device("auto")
    assert device == torch.device("mps")
    assert memory.resolve_dtype("auto", device) == torch.float16
    monkeypatch.setattr(sys, "platform", "linux")
    assert memory.resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(memory, "mps_available", lambda: False)
    with pytest.raises(UsageError, match="MPS is not available"):
        memory.resolve_device("mps")
    # what "auto" then loads: fp16 models with the VAE kept in fp32 (its config asks for it)
    base = load_base_model(tiny_pack, memory.resolve_dtype("auto", torch.device("mps")), text_encoders=False)
    assert base.unet.dtype == torch.float16 and base.vae.dtype == torch.float32
    assert base.text_encoder is None and base.text_encoder_2 is None


# ---- options that trade output for speed -----------------------------------------------------------

def test_preview_is_a_12_step_multistep_solver_starting_at_999(pipeline, lq_image, identity):
    timesteps = []
    handle = pipeline.unet.register_forward_pre_hook(lambda m, args: timesteps.append(int(args[1])))
    try:
        quick = pipeline.preview(lq_image, identity=identity, seed=2)
    finally:
        handle.remove()
    assert len(timesteps) == 12 and timesteps[0] == 999 and timesteps == sorted(timesteps, reverse=True)
    assert quick.shape == (512, 512, 3)
    assert np.abs(quick.mean((0, 1)) - lq_image.mean((0, 1))).max() < 8  # a restoration, colour-fixed
    assert pipeline.scheduler.__class__.__name__ == "DDPMScheduler"  # the pipeline's own is untouched


def test_compile_option_keeps_the_output(tiny_pack, lq_image):
    plain = FaceMePipeline.from_pack(tiny_pack, device="cpu")
    compiled = FaceMePipeline.from_pack(tiny_pack, device="cpu", compile="eager")
    assert compiled.unet is not plain.unet and hasattr(compiled.unet, "_orig_mod")
    np.testing.assert_array_equal(compiled(lq_image, steps=1, seed=3), plain(lq_image, steps=1, seed=3))
    with pytest.raises(UsageError, match="full"):
        FaceMePipeline.from_pack(tiny_pack, device="cpu", memory="low", compile=True)


# ---- the command line ------------------------------------------------------------------------------

def test_cli_restore_face_and_restore_with_memory_low(run_cli, tiny_pack, lq_path, ref_paths, shared, tmp_path):
    out = tmp_path / "face.png"
    code, _, err = run_cli("restore-face", lq_path, "--ref", ref_paths[0], "-o", out, "--models", tiny_pack,
                           "--steps", "2", "--seed", "1", "--memory", "low", "--device", "cpu")
    assert code == 0, err
    full = tmp_path / "face_full.png"
    assert run_cli("restore-face", lq_path, "--ref", ref_paths[0], "-o", full, "--models", tiny_pack,
                   "--steps", "2", "--seed", "1", "--memory", "full", "--device", "cpu")[0] == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(full)))
    photo = shared / "data" / "group_photos" / "images" / "deepface_couple.jpg"
    code, stdout, err = run_cli("restore", photo, "-o", tmp_path / "couple.jpg", "--models", tiny_pack,
                                "--steps", "1", "--seed", "0", "--memory", "low", "--device", "cpu")
    assert code == 0, err
    assert (tmp_path / "couple.jpg").is_file() and "face 1:" in stdout
    code, _, err = run_cli("restore-face", lq_path, "-o", out, "--models", tiny_pack, "--memory", "huge")
    assert code == 2 and "--memory" in err


def test_text_encoders_load_alone_when_asked_for(tiny_pack, tmp_path, monkeypatch):
    pipe = FaceMePipeline.from_pack(tiny_pack, device="cpu", prompt_cache=tmp_path)
    monkeypatch.setattr("engine.faceme.pipeline.load_base_model", None)  # never the whole base model
    encoded = encode_prompt(pipe.tokenizer, pipe.tokenizer_2, pipe.text_encoder, pipe.text_encoder_2)
    assert torch.equal(encoded.plain.embeds, pipe.prompt.plain.embeds)
    pipe.release_text_encoders()
    assert pipe.loaded_components() == []
