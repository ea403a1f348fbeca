"""Weights are checked before use (issue 14, item 12): bytes flipped inside a tensor of the tiny pack are
caught by `models verify`, `info` and the pipeline's load (exit 4 naming the file), a pack placed by hand
gets its records on first use and says so, and an unchanged pack costs only a stat per file."""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
from pathlib import Path

import pytest

from engine.errors import ModelPackError
from engine.models import integrity
from engine.models.integrity import RECORD_NAME, read_record
from engine.models.layout import RESTORATION_PARTS, check_before_loading, part_dir

TAMPERED = {  # part -> a weights file of the tiny pack holding real tensors
    "faceme-mix": "mix.safetensors",
    "realvisxl": "unet/diffusion_pytorch_model.safetensors",
}


@pytest.fixture
def pack(tiny_pack, tmp_path) -> Path:
    """A private copy of the tiny pack (its files are changed here), without records, as if placed by hand."""
    copy = tmp_path / "models"
    shutil.copytree(tiny_pack, copy, ignore=shutil.ignore_patterns(RECORD_NAME, ".complete"))
    return copy


def _flip_inside_a_tensor(path: Path) -> str:
    """Flip one byte in the middle of the largest tensor's data; the size stays the same."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    name, info = max(((k, v) for k, v in header.items() if k != "__metadata__"),
                     key=lambda kv: kv[1]["data_offsets"][1] - kv[1]["data_offsets"][0])
    start, end = info["data_offsets"]
    offset = 8 + header_len + (start + end) // 2
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x10]))
    return name


def test_a_hand_placed_pack_gets_records_on_first_use_and_says_so(pack, caplog):
    with caplog.at_level(logging.WARNING, logger="engine.models.integrity"):
        check_before_loading(pack)
    for name in RESTORATION_PARTS:
        record = read_record(part_dir(pack, name))
        assert record is not None and record.method == "by hand" and record.placed == "recorded on first use"
        assert all(f.mtime_ns is not None for f in record.files.values())
    said = [r.getMessage() for r in caplog.records if "had no install record" in r.getMessage()]
    assert len(said) == len(RESTORATION_PARTS)


def test_an_unchanged_pack_is_checked_by_size_and_time_only(pack, monkeypatch):
    check_before_loading(pack)
    hashed = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda path, *a, **k: hashed.append(path) or real(path, *a, **k))
    integrity._hash_cache.clear()
    check_before_loading(pack)
    assert hashed == []

    # touched only (a copy tool, a backup restore): re-hashed once, found equal, the new time recorded
    unet = part_dir(pack, "realvisxl") / TAMPERED["realvisxl"]
    os.utime(unet, ns=(unet.stat().st_atime_ns, unet.stat().st_mtime_ns + 5_000_000_000))
    check_before_loading(pack)
    assert hashed == [unet]
    assert read_record(part_dir(pack, "realvisxl")).files[TAMPERED["realvisxl"]].mtime_ns == unet.stat().st_mtime_ns
    integrity._hash_cache.clear()
    check_before_loading(pack)
    assert hashed == [unet]


@pytest.mark.parametrize("part", sorted(TAMPERED))
def test_bytes_flipped_inside_a_tensor_are_caught_everywhere(pack, part, run_cli):
    check_before_loading(pack)  # records made on first use
    target = part_dir(pack, part) / TAMPERED[part]
    size = target.stat().st_size
    _flip_inside_a_tensor(target)
    assert target.stat().st_size == size

    code, out, _ = run_cli("models", "verify", "--models", pack)
    assert code == 4 and f"{TAMPERED[part]}: content changed since install" in out, out
    code, out, _ = run_cli("info", "--models", pack)
    assert "Ready." not in out and "incomplete" in out and part in out

    with pytest.raises(ModelPackError) as caught:
        check_before_loading(pack)
    assert caught.value.path == target and caught.value.exit_code == 4
    assert "content changed since install" in str(caught.value)


def test_the_pipeline_refuses_a_damaged_part_before_loading_it(pack, run_cli, tmp_path):
    from engine.faceme.pipeline import FaceMePipeline

    check_before_loading(pack)
    target = part_dir(pack, "faceme-mix") / TAMPERED["faceme-mix"]
    _flip_inside_a_tensor(target)
    with pytest.raises(ModelPackError) as caught:
        FaceMePipeline.from_pack(pack, device="cpu", dtype="float32")
    assert caught.value.path == target
    photo = next((Path(__file__).resolve().parents[2].parent / "shared" / "data" / "deepface_ids").rglob("*.jpg"))
    code, _, err = run_cli("restore", photo, "-o", tmp_path / "out.jpg", "--models", pack)
    assert code == 4 and str(target) in err, err
    assert not (tmp_path / "out.jpg").exists()


def test_a_record_of_an_older_version_without_times_is_completed_by_one_hash(pack):
    check_before_loading(pack)
    base = part_dir(pack, "faceme-mix")
    data = json.loads((base / RECORD_NAME).read_text())
    for entry in data["files"].values():
        entry.pop("mtime_ns")
    (base / RECORD_NAME).write_text(json.dumps(data))
    check_before_loading(pack)
    assert all(f.mtime_ns is not None for f in read_record(base).files.values())
    _flip_inside_a_tensor(base / "mix.safetensors")
    with pytest.raises(ModelPackError, match="content changed"):
        check_before_loading(pack)
