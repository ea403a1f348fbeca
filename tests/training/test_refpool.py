"""Reference-pool construction: landmark pose/expression features, two-level K-means, synthesis with
the identity filter (stand-in generator), the FFHQRef layout; Arc2Face's identity prompt mechanics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from training.data import ffhqref_images
from training.prepare import list_images, read_rgb
from training.refpool import (StandInGenerator, arc2face_prompt_embeds, build_refpool, expression_codes,
                              face_features, head_pose, two_level_clusters)


def test_head_pose_of_frontal_and_turned_faces(faces_256):
    frontal, lm = face_features(read_rgb(faces_256 / "person_01" / "img1.png"))
    pitch, yaw, roll = np.degrees(frontal.pose[:3])
    assert abs(yaw) < 15 and abs(roll) < 10 and abs(pitch) < 20
    # mirroring the landmarks (and the 68-point numbering) flips the yaw and keeps the pitch
    mirror = np.array(lm)
    mirror[:, 0] = 256 - mirror[:, 0]
    flip = list(range(16, -1, -1)) + list(range(26, 16, -1)) + list(range(27, 31)) + list(range(35, 30, -1)) + \
        [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40] + list(range(54, 47, -1)) + list(range(59, 54, -1)) + \
        list(range(64, 59, -1)) + list(range(67, 64, -1))
    mirrored = head_pose(mirror[flip], (256, 256))
    assert mirrored[1] == pytest.approx(-frontal.pose[1], abs=math.radians(2))
    assert mirrored[0] == pytest.approx(frontal.pose[0], abs=math.radians(2))
    assert frontal.pose.shape == (6,) and frontal.expression_raw.shape == (102,)


def test_two_level_kmeans_makes_pose_groups_then_expression_groups():
    rng = np.random.default_rng(0)
    pose = np.concatenate([rng.normal(c, 0.05, (30, 6)) for c in (-1.0, 0.0, 1.0)])
    expression = rng.normal(0, 0.3, (90, 50))
    expression[:, 0] += np.tile(np.repeat([-5.0, 0.0, 5.0], 10), 3)
    labels = two_level_clusters(pose, expression, 3, 3, seed=0)
    assert labels.shape == (90, 2)
    for block in range(3):  # each true pose block is one pose cluster…
        assert len(set(labels[block * 30:(block + 1) * 30, 0])) == 1
        for sub in range(3):  # …split by the expression offset
            rows = slice(block * 30 + sub * 10, block * 30 + (sub + 1) * 10)
            assert len({tuple(x) for x in labels[rows]}) == 1
    assert len({tuple(x) for x in labels}) == 9


def test_expression_codes_have_fifty_numbers():
    raw = np.random.default_rng(1).normal(size=(12, 102))
    codes = expression_codes(raw)
    assert codes.shape == (12, 50)
    assert np.allclose(codes[:, 11:], 0)  # 12 shapes span at most 11 directions


def _embedder(tiny_pack, sizes=(640, 320)):
    from engine.faces.insightface_backend import InsightFaceAnalyzer

    analyzer = InsightFaceAnalyzer(tiny_pack / "insightface" / "antelopev2", providers=["CPUExecutionProvider"])

    def embed(image):
        for size in sizes:
            faces = analyzer.detect(image, det_size=size)
            if faces:
                return max(faces, key=lambda f: f.area).embedding
        return None

    return embed


def test_build_refpool_writes_the_ffhqref_layout(faces_256, tiny_pack, tmp_path):
    embed = _embedder(tiny_pack)
    out = tmp_path / "FFHQRef"
    source = faces_256 / "person_01"
    summary = build_refpool(source, out, StandInGenerator(max_noise=10), embed, c1=2, c2=2, threshold=0.0,
                            max_attempts=3, seed=0)
    # 3 images: 2 pose groups, the one with two members split in two by expression → 3 subsets
    assert summary.sources == 3 and summary.subsets == 3
    assert summary.written == 9 and summary.gave_up == 0 and summary.attempts == 9
    refs = ffhqref_images(out)  # the training data reader understands it
    assert set(refs) == {p.stem for p in list_images(source)}
    assert all(len(v) == 3 for v in refs.values())
    assert all(p.parent.name.startswith(p.parent.parent.name + "_") for v in refs.values() for p in v)
    image = read_rgb(next(iter(refs.values()))[0])
    assert image.shape == (256, 256, 3)
    record = json.loads((out / "refpool.json").read_text())
    assert len(record["clusters"]) == 3 and len(record["references"]) == 9


def test_identity_filter_retries_then_gives_up(faces_256, tiny_pack, tmp_path):
    embed = _embedder(tiny_pack)
    calls = []

    def unlike(source, arcface, condition, seed):
        calls.append(seed)
        return np.random.default_rng(seed).integers(0, 255, source.shape, dtype=np.uint8)  # not a face

    summary = build_refpool(faces_256 / "person_01", tmp_path / "pool", unlike, embed, c1=1, c2=1,
                            threshold=0.99, max_attempts=3, seed=0)
    assert summary.written == 0 and summary.gave_up == 3
    assert len(calls) == 9 and len(set(calls)) == 9  # three fresh attempts per identity


def test_arc2face_identity_prompt_replaces_only_the_id_token(tiny_pack):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    # the real CLIP vocabulary (the tiny pack's tokenizer) and a tiny text encoder whose width equals
    # the "ArcFace" width
    tokenizer = CLIPTokenizer.from_pretrained(tiny_pack / "realvisxl_v3.0" / "tokenizer")
    torch.manual_seed(0)
    encoder = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=16, intermediate_size=32,
                                           num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                                           bos_token_id=49406, eos_token_id=49407)).eval()
    id_token = tokenizer("id", add_special_tokens=False).input_ids[0]
    table = encoder.get_input_embeddings().weight
    unit = table[id_token].detach() / table[id_token].detach().norm()
    with torch.no_grad():
        table[id_token] = unit  # the id token's own embedding is already a unit vector
    ids = tokenizer("photo of a id person", padding="max_length", max_length=77, return_tensors="pt").input_ids
    plain = encoder(ids).last_hidden_state
    # replacing it by the same unit vector must reproduce the encoder's own forward pass…
    same = arc2face_prompt_embeds(tokenizer, encoder, unit.numpy() * 3.0)  # any length: it is normalised
    torch.testing.assert_close(same, plain, atol=1e-5, rtol=1e-5)
    # …and another identity changes the states from the id token on, not before it
    other = arc2face_prompt_embeds(tokenizer, encoder, np.eye(16, dtype=np.float32)[3])
    position = ids[0].tolist().index(id_token)
    torch.testing.assert_close(other[:, :position], plain[:, :position], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(other[:, position:], plain[:, position:], atol=1e-3)
