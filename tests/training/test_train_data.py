"""Training data: the FFHQ / FFHQRef and folder-per-identity layouts, reference draws, the dataset,
the embedding store (resumable precompute) on the engine's reference path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import UsageError
from training.data import (EpochSampler, FaceMeTrainDataset, build_index, draw_references, index_ffhq,
                           index_identity_folders, trim_references)
from training.embeddings import EmbeddingTable, precompute
from training.prepare import write_rgb


def _img(path: Path, value: int = 100, size: int = 32) -> Path:
    write_rgb(path, np.full((size, size, 3), value, np.uint8))
    return path


def test_ffhq_layout_pools_the_ground_truth_with_its_ffhqref_images(tmp_path):
    gt, ref = tmp_path / "ffhq", tmp_path / "FFHQRef"
    for name in ("00000", "00001", "00002"):
        _img(gt / f"{name}.png")
    _img(ref / "target_pose_0" / "target_pose_0_0" / "00000.png")
    _img(ref / "target_pose_0" / "target_pose_0_2" / "00000.png")
    _img(ref / "target_pose_2" / "target_pose_2_1" / "00000.png")
    _img(ref / "target_pose_2" / "target_pose_2_1" / "00001.png")
    _img(ref / "target_pose_1" / "target_pose_2_1" / "00002.png")  # a misplaced folder: ignored
    index = index_ffhq(gt, ref)
    pools = {s.name: s.pool for s in index.samples}
    assert pools["00000"] == ("gt/00000.png", "ref/target_pose_0/target_pose_0_0/00000.png",
                              "ref/target_pose_0/target_pose_0_2/00000.png",
                              "ref/target_pose_2/target_pose_2_1/00000.png")
    assert pools["00001"] == ("gt/00001.png", "ref/target_pose_2/target_pose_2_1/00001.png")
    assert pools["00002"] == ("gt/00002.png",)
    assert index.images["ref/target_pose_2/target_pose_2_1/00001.png"].is_file()
    without_gt = index_ffhq(gt, ref, include_gt=False)
    assert {s.name for s in without_gt.samples} == {"00000", "00001"}


def test_identity_folder_layout(tmp_path):
    for person, n in (("ann", 3), ("bob", 1)):
        for i in range(n):
            _img(tmp_path / person / f"{i}.jpg")
    index = index_identity_folders(tmp_path)
    assert [s.name for s in index.samples] == ["ann/0", "ann/1", "ann/2", "bob/0"]
    assert index.samples[1].pool == ("gt/ann/0.jpg", "gt/ann/1.jpg", "gt/ann/2.jpg")
    assert index.samples[3].pool == ("gt/bob/0.jpg",)
    assert len(index_identity_folders(tmp_path, include_gt=False).samples) == 3  # bob has no other photo
    with pytest.raises(UsageError):
        build_index("imagenet", tmp_path, None)
    with pytest.raises(UsageError):
        index_identity_folders(tmp_path / "missing")


def test_four_references_drawn_distinct_when_possible_with_repeats_otherwise():
    rng = np.random.default_rng(0)
    for pool in (1, 2, 3, 4, 9):
        for _ in range(50):
            picks = draw_references(pool, 4, rng)
            assert len(picks) == 4 and picks.min() >= 0 and picks.max() < pool
            if pool >= 4:
                assert len(set(picks.tolist())) == 4
            else:
                assert set(picks.tolist()) == set(range(pool))  # every pool entry is used


def test_batches_keep_a_prefix_of_the_drawn_references():
    batch = {"clip": torch.arange(2 * 4 * 3).view(2, 4, 3), "arcface": torch.zeros(2, 4, 5), "gt": torch.zeros(2)}
    kept = trim_references(batch, 2)
    assert kept["clip"].shape == (2, 2, 3) and kept["arcface"].shape == (2, 2, 5)
    assert torch.equal(kept["clip"], batch["clip"][:, :2])


def test_epoch_sampler_is_a_seeded_permutation_per_epoch():
    s = EpochSampler(10, seed=3)
    first = list(s)
    assert sorted(i for i, _ in first) == list(range(10)) and {e for _, e in first} == {0}
    assert list(s) == first
    s.set_epoch(1)
    second = list(s)
    assert [i for i, _ in second] != [i for i, _ in first] and {e for _, e in second} == {1}


def _table(keys, found=None, clip_dim=6, arc_dim=4):
    n = len(keys)
    return EmbeddingTable(rows={k: i for i, k in enumerate(keys)},
                          clip=torch.arange(n, dtype=torch.float16)[:, None].repeat(1, clip_dim),
                          arcface=torch.arange(n, dtype=torch.float16)[:, None].repeat(1, arc_dim),
                          found=torch.tensor(found if found is not None else [True] * n))


def test_dataset_items_are_degraded_pairs_with_pool_references(faces_64):
    index = build_index("identity_folders", faces_64, None)
    keys = sorted(index.images)
    found = [not k.endswith("img2.png") for k in keys]  # one image without a face: never a reference
    table = _table(keys, found)
    ds = FaceMeTrainDataset(index, table, resolution=64, refs_per_sample=4, seed=5)
    item = ds[(0, 0)]
    assert item["gt"].shape == item["lq"].shape == (3, 64, 64)
    assert item["gt"].min() >= -1 and item["gt"].max() <= 1
    assert not torch.equal(item["gt"], item["lq"])  # degraded
    assert item["clip"].shape == (4, 6) and item["arcface"].shape == (4, 4)
    # references come from the sample's own pool, faces only
    sample = ds.samples[0]
    allowed = {index_row for index_row, k in enumerate(keys) if k in sample.pool and found[index_row]}
    assert set(item["arcface"][:, 0].int().tolist()) <= allowed
    assert all("img2.png" not in k for s in ds.samples for k in s.pool)
    # the same (index, epoch) gives the same item; another epoch another degradation
    again = ds[(0, 0)]
    assert torch.equal(item["lq"], again["lq"]) and torch.equal(item["clip"], again["clip"])
    assert not torch.equal(ds[(0, 1)]["lq"], item["lq"])


def test_precompute_is_resumable_and_refuses_another_image_list(tmp_path, faces_64):
    index = build_index("identity_folders", faces_64, None)
    calls = []

    def embedder(path):
        calls.append(path)
        if path.name == "img17.png":
            return None  # no face
        v = float(len(calls))
        return np.full(6, v, np.float32), np.full(4, v, np.float32)

    embedder.clip_dim, embedder.arcface_dim = 6, 4
    out = tmp_path / "emb"
    assert precompute(index.images, out, embedder, shard_size=3) == 3
    assert len(calls) == 8
    table = EmbeddingTable.load(out)
    assert table.clip.shape == (8, 6) and table.arcface.shape == (8, 4)
    assert not table.has_face("gt/person_05/img17.png") and table.has_face("gt/person_05/img16.png")
    # an interrupted run: one shard missing → only its images are embedded again
    (out / "shard_00001.safetensors").unlink()
    calls.clear()
    assert precompute(index.images, out, embedder, shard_size=3) == 1
    assert len(calls) == 3
    assert precompute(index.images, out, embedder, shard_size=3) == 0
    with pytest.raises(UsageError):
        precompute(dict(list(index.images.items())[:5]), out, embedder, shard_size=3)
    # split over two workers: each writes its own shards, together all of them
    split = tmp_path / "split"
    assert precompute(index.images, split, embedder, shard_size=3, part=(1, 2)) == 1
    assert sorted(p.name for p in split.glob("shard_*")) == ["shard_00001.safetensors"]
    assert precompute(index.images, split, embedder, shard_size=3, part=(0, 2)) == 2
    assert EmbeddingTable.load(split).clip.shape == (8, 6)
    (out / "shard_00002.safetensors").unlink()
    with pytest.raises(UsageError, match="missing"):
        EmbeddingTable.load(out)


def test_engine_embedder_gives_clip_and_unit_arcface(embeddings_64):
    table = EmbeddingTable.load(embeddings_64)
    index = json.loads((embeddings_64 / "index.json").read_text())
    assert len(index["keys"]) == 8 and bool(table.found.all())
    # tiny pack: CLIP projections 16 + 16; ArcFace 512, L2-normalised by the engine
    assert table.clip.shape == (8, 32) and table.arcface.shape == (8, 512)
    np.testing.assert_allclose(table.arcface.float().norm(dim=1).numpy(), 1.0, atol=2e-3)
    # different photos, different embeddings
    assert not torch.equal(table.clip[0], table.clip[1])
