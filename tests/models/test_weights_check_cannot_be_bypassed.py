"""The weights check cannot be bypassed (issue 18, finding 6), on a real tiny pack and its real loader.

(a) A byte flipped inside a tensor with the old modification time put back (`os.utime`) passed the
cheap check (only `verify --full` saw it): the check now compares each file's stamp (size, inode,
mtime and ctime; a user process cannot set ctime), so it re-hashes the file and refuses it.
(b) An extra, unrecorded `unet/diffusion_pytorch_model.fp16.safetensors` was loaded instead of the
recorded file (the loader picks the fp16 variant when one is present) and even `verify --full` passed:
a file the record does not list now makes the part invalid, named, "remove it".
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.errors import ModelPackError
from engine.models import integrity
from engine.models.integrity import RECORD_NAME, read_record
from engine.models.layout import RESTORATION_PARTS, check_before_loading, part_dir

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]
UNET = "unet/diffusion_pytorch_model.safetensors"


def faceme(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture
def pack(tiny_pack, tmp_path) -> Path:
    """A private copy of the tiny pack with its records made the way a first load makes them."""
    copy = tmp_path / "models"
    shutil.copytree(tiny_pack, copy, ignore=shutil.ignore_patterns(RECORD_NAME, ".complete"))
    check_before_loading(copy)
    return copy


def _largest_tensor_middle(path: Path) -> int:
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    start, end = max((v["data_offsets"] for k, v in header.items() if k != "__metadata__"),
                     key=lambda offsets: offsets[1] - offsets[0])
    return 8 + header_len + (start + end) // 2


def _flip_byte_keeping_the_times(path: Path) -> None:
    """Flip a byte inside the largest tensor, then put the old access and modification times back."""
    before = path.stat()
    offset = _largest_tensor_middle(path)
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x10]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    assert after.st_ctime_ns != before.st_ctime_ns  # the one thing a user process cannot put back


@pytest.mark.parametrize(("part", "rel"), [("realvisxl", UNET), ("faceme-mix", "mix.safetensors")])
def test_a_flipped_byte_with_the_old_mtime_put_back_is_caught_without_full(pack, part, rel):
    target = part_dir(pack, part) / rel
    _flip_byte_keeping_the_times(target)

    done = faceme("models", "verify", "--models", pack)  # the cheap check, in a fresh process
    assert done.returncode == 4 and f"{rel}: content changed since install" in done.stdout, done.stdout
    # in this process too, although it hashed the file before the change (the hash cache is keyed by stamp)
    with pytest.raises(ModelPackError, match="content changed since install") as caught:
        check_before_loading(pack)
    assert caught.value.path == target and caught.value.exit_code == 4


def test_the_loader_refuses_a_part_changed_under_its_old_mtime(pack):
    from engine.faceme.pipeline import FaceMePipeline

    target = part_dir(pack, "realvisxl") / UNET
    _flip_byte_keeping_the_times(target)
    with pytest.raises(ModelPackError) as caught:
        FaceMePipeline.from_pack(pack, device="cpu", dtype="float32", prompt_cache=False)
    assert caught.value.path == target and "content changed" in str(caught.value)


def _extra_fp16_unet(pack: Path) -> Path:
    """A valid weights file beside the recorded UNet, with one weight changed, under the fp16 name."""
    base = part_dir(pack, "realvisxl")
    extra = base / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    shutil.copyfile(base / UNET, extra)
    offset = _largest_tensor_middle(extra)
    with open(extra, "r+b") as f:
        f.seek(offset)
        f.write(b"\x7f")
    return extra


def test_an_unrecorded_fp16_weights_file_fails_verify_full_and_is_never_loaded(pack):
    from engine.faceme.pipeline import FaceMePipeline

    extra = _extra_fp16_unet(pack)

    done = faceme("models", "verify", "--full", "--models", pack)
    assert done.returncode == 4, done.stdout
    assert "unet/diffusion_pytorch_model.fp16.safetensors: not part of the installed pack" in done.stdout
    assert "remove it" in done.stdout
    with pytest.raises(ModelPackError, match="not part of the installed pack") as caught:
        FaceMePipeline.from_pack(pack, device="cpu", dtype="float32", prompt_cache=False)
    assert caught.value.path == extra and caught.value.exit_code == 4

    extra.unlink()  # what the message says to do
    assert faceme("models", "verify", "--full", "--models", pack).returncode == 0


def test_an_unrecorded_onnx_model_beside_the_recorded_ones_is_refused(pack, run_cli):
    """InsightFace loads every *.onnx of its folder; one placed later would be loaded unchecked."""
    folder = part_dir(pack, "antelopev2")
    shutil.copyfile(folder / "scrfd_10g_bnkps.onnx", folder / "a_detector.onnx")
    code, out, _ = run_cli("models", "verify", "--models", pack, "antelopev2")
    assert code == 4 and "a_detector.onnx: not part of the installed pack" in out
    with pytest.raises(ModelPackError) as caught:
        check_before_loading(pack)
    assert caught.value.path == folder / "a_detector.onnx"


def test_documentation_and_hidden_files_beside_the_weights_are_fine(pack, run_cli):
    base = part_dir(pack, "realvisxl")
    (base / "README.md").write_text("RealVisXL V3.0")
    (base / "unet" / "LICENSE").write_text("CreativeML Open RAIL++-M")
    (base / ".cache").mkdir()
    (base / ".cache" / "download.lock").write_text("")
    assert run_cli("models", "verify", "--full", "--models", pack)[0] == 0
    check_before_loading(pack)


def test_records_hold_each_files_stamp_and_a_chmod_costs_one_hash(pack, monkeypatch):
    base = part_dir(pack, "faceme-mix")
    entry = read_record(base).files["mix.safetensors"]
    st = (base / "mix.safetensors").stat()
    assert (entry.size, entry.inode, entry.mtime_ns, entry.ctime_ns) == (st.st_size, st.st_ino, st.st_mtime_ns,
                                                                         st.st_ctime_ns)
    hashed = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda path, *a, **k: hashed.append(path) or real(path, *a, **k))
    while (base / "mix.safetensors").stat().st_ctime_ns == st.st_ctime_ns:  # the clock ticks in jiffies
        os.chmod(base / "mix.safetensors", stat.S_IMODE(st.st_mode))  # same mode: only the change time moves
        time.sleep(0.005)
    check_before_loading(pack, RESTORATION_PARTS)
    assert hashed == [base / "mix.safetensors"]
    check_before_loading(pack, RESTORATION_PARTS)
    integrity._hash_cache.clear()
    check_before_loading(pack, RESTORATION_PARTS)
    assert hashed == [base / "mix.safetensors"]  # the new stamp was recorded: a stat per file again
