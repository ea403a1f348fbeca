"""`faceme restore-face` on real crops and references with the tiny pack (issue 2, "done means" 2)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def crops(crops_dir):
    return sorted(crops_dir.glob("*.png"))


def test_restores_real_crops_with_references(run_cli, tiny_pack, crops, ref_paths, tmp_path):
    small_lq = tmp_path / "small_lq.png"  # not 512: resized on the way in
    Image.open(crops[3]).convert("RGB").resize((300, 300)).save(small_lq)
    for i, lq in enumerate([crops[1], small_lq]):
        out = tmp_path / f"restored_{i}.png"
        code, stdout, stderr = run_cli("restore-face", lq, "--ref", ref_paths[0], "--ref", ref_paths[1],
                                       "-o", out, "--models", tiny_pack, "--steps", "2", "--seed", "3",
                                       "--device", "cpu")
        assert code == 0, stderr
        with Image.open(out) as image:
            assert image.size == (512, 512) and image.mode == "RGB"
        assert str(out) in stdout


def test_same_seed_same_bytes_and_blind_mode(run_cli, tiny_pack, crops, tmp_path):
    outputs = []
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        out = tmp_path / f"{name}.png"
        code, _, stderr = run_cli("restore-face", crops[0], "-o", out, "--models", tiny_pack,
                                  "--steps", "2", "--seed", seed)
        assert code == 0, stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]
    with Image.open(tmp_path / "a.png") as image:
        assert image.size == (512, 512)


def test_reference_without_a_face_exits_3_naming_it(run_cli, tiny_pack, crops, ref_paths, tmp_path):
    plain = tmp_path / "wall.png"
    pixels = np.zeros((300, 400, 3), np.uint8)
    pixels[:] = (180, 160, 140)
    Image.fromarray(pixels).save(plain)
    out = tmp_path / "out.png"
    code, _, stderr = run_cli("restore-face", crops[0], "--ref", ref_paths[0], "--ref", plain, "-o", out,
                              "--models", tiny_pack, "--steps", "2")
    assert code == 3
    assert str(plain) in stderr and "no face" in stderr
    assert not out.exists()


def test_missing_pack_exits_4_naming_the_part(run_cli, crops, tmp_path):
    code, _, stderr = run_cli("restore-face", crops[0], "-o", tmp_path / "out.png", "--models", tmp_path / "empty")
    assert code == 4
    assert "RealVisXL" in stderr and "get it" in stderr


def test_broken_part_exits_4_naming_it(run_cli, tiny_pack, crops, tmp_path):
    import shutil

    pack = tmp_path / "pack"
    shutil.copytree(tiny_pack, pack, ignore=shutil.ignore_patterns("text_encoder*", "unet", "vae"))
    for sub in ("text_encoder", "text_encoder_2", "unet", "vae"):
        (pack / "realvisxl_v3.0" / sub).symlink_to(tiny_pack / "realvisxl_v3.0" / sub)
    (pack / "faceme" / "mix" / "mix.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    code, _, stderr = run_cli("restore-face", crops[0], "-o", tmp_path / "out.png", "--models", pack,
                              "--steps", "1")
    assert code == 4
    assert "mix.safetensors" in stderr


def test_usage_errors(run_cli, tiny_pack, crops, tmp_path):
    code, _, _ = run_cli("restore-face", crops[0], "-o", tmp_path / "x.png", "--models", tiny_pack, "--steps", "0")
    assert code == 2
    code, _, stderr = run_cli("restore-face", tmp_path / "missing.png", "-o", tmp_path / "x.png",
                              "--models", tiny_pack)
    assert code == 1 and "missing.png" in stderr


def test_tries_keeps_the_best_scored_seed_and_reports_the_check(run_cli, tiny_pack, crops, ref_paths, tmp_path):
    import re

    out = tmp_path / "best.png"
    code, stdout, stderr = run_cli("restore-face", crops[0], "--ref", ref_paths[0], "-o", out, "--models", tiny_pack,
                                   "--steps", "1", "--seed", "4", "--tries", "2")
    assert code == 0, stderr
    tries = re.findall(r"try \d: seed (\d+), score ([\d.]+)( \(kept\))?", stdout)
    assert [int(s) for s, _, _ in tries] == [4, 1004]
    [(kept, score, _)] = [t for t in tries if t[2]]
    assert float(score) == max(float(v) for _, v, _ in tries)
    assert f"seed {kept}," in stdout and re.search(r"looks? like the references \(0\.\d{3}; before", stdout), stdout
    alone = tmp_path / "alone.png"
    code, _, stderr = run_cli("restore-face", crops[0], "--ref", ref_paths[0], "-o", alone, "--models", tiny_pack,
                              "--steps", "1", "--seed", str(kept), "--no-identity-check")
    assert code == 0, stderr
    assert np.array_equal(np.asarray(Image.open(alone)), np.asarray(Image.open(out)))
