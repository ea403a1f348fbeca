"""Evaluation: PSNR / SSIM / LMD / IDS against hand-computed values, and the Table-1 style report on
CelebRef cases (learned metrics skipped with a message when pyiqa cannot run)."""

from __future__ import annotations

import csv
import math
import shutil

import numpy as np
import pytest

from training.evaluate import COLUMNS, PAPER_FACEME_ROW, evaluate_from_config, read_cases, restore_cases
from training.metrics import LearnedMetrics, cosine, landmark_distance, lmd, psnr, rgb_to_y, ssim
from training.prepare import read_rgb



def gray(value: int, size: int = 32) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def test_psnr_by_hand():
    # every value differs by 10 → MSE 100 → 10·log10(255² / 100)
    assert psnr(gray(110), gray(100)) == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-9)
    assert psnr(gray(100), gray(100)) == float("inf")
    a = gray(0, 2)
    b = a.copy()
    b[0, 0, 0] = 255  # one value of 12 off by 255 → MSE 255²/12
    assert psnr(a, b) == pytest.approx(10 * math.log10(12), abs=1e-9)


def test_ssim_by_hand_on_flat_images():
    # flat images: no variance, so SSIM = (2·μa·μb + C1) / (μa² + μb² + C1) on the luma
    ya = 16 + 219 * 100 / 255
    yb = 16 + 219 * 140 / 255
    c1 = (0.01 * 255) ** 2
    expected = (2 * ya * yb + c1) / (ya**2 + yb**2 + c1)
    assert ssim(gray(100), gray(140)) == pytest.approx(expected, abs=1e-9)
    assert rgb_to_y(gray(255, 1))[0, 0] == pytest.approx(235.0)


def test_ssim_of_a_real_face_and_its_noisy_copy(faces_256):
    face = read_rgb(faces_256 / "person_01" / "img1.png")
    noisy = np.clip(face + np.random.default_rng(0).normal(0, 20, face.shape), 0, 255).astype(np.uint8)
    assert ssim(face, face) == pytest.approx(1.0)
    assert 0.2 < ssim(noisy, face) < 0.9
    assert ssim(noisy, face) == pytest.approx(ssim(face, noisy))


def test_landmark_distance_by_hand_and_lmd_of_a_shifted_face(faces_256):
    a = np.zeros((68, 2))
    assert landmark_distance(a + (3, 4), a) == pytest.approx(5.0)
    b = a.copy()
    b[0] = (6, 8)  # one landmark 10 px off, 67 exact
    assert landmark_distance(a, b) == pytest.approx(10 / 68)
    face = read_rgb(faces_256 / "person_05" / "img16.png")
    shifted = np.concatenate([np.repeat(face[:, :1], 4, axis=1), face[:, :-4]], axis=1)  # 4 px to the right
    assert lmd(face, face) == 0.0
    assert lmd(shifted, face) == pytest.approx(4.0, abs=1.0)


def test_ids_by_hand_and_through_the_arcface_model(tiny_pack, faces_256):
    from engine.faces.insightface_backend import InsightFaceAnalyzer
    from training.metrics import IdentitySimilarity

    assert cosine([1, 0], [1, 1]) == pytest.approx(1 / math.sqrt(2))
    assert cosine([1, 2, 3], [-1, -2, -3]) == pytest.approx(-1.0)
    analyzer = InsightFaceAnalyzer(tiny_pack / "insightface" / "antelopev2", providers=["CPUExecutionProvider"])
    ids = IdentitySimilarity(analyzer)
    face = read_rgb(faces_256 / "person_01" / "img1.png")
    other = read_rgb(faces_256 / "person_10" / "img18.png")
    assert ids(face, face) == pytest.approx(1.0, abs=1e-5)
    expected = cosine(ids.largest_face(other).embedding, ids.largest_face(face).embedding)
    assert ids(other, face) == pytest.approx(expected, abs=1e-6) and expected < 0.999
    # a restoration the detector cannot see is embedded at the ground truth's landmarks
    blank = np.full_like(face, 128)
    assert ids(blank, face) is not None and ids.fallbacks == 1


def test_learned_metrics_say_why_they_are_skipped():
    learned = LearnedMetrics()
    if learned.metrics:
        pytest.skip("pyiqa runs here")
    assert set(learned.unavailable) == {"LPIPS", "MUSIQ", "FID"}
    assert all("pyiqa" in reason for reason in learned.unavailable.values())


def test_table_on_celebref_cases_scores_existing_restorations(shared, tiny_pack, tmp_path):
    from training.config import load_config


    cases = read_cases(shared / "data" / "celebref_refs" / "cases.csv")[:5]
    assert sum(c.gt is not None for c in cases) == 2
    restored = tmp_path / "restored"
    for case in cases:  # "restorations": the LQ inputs themselves
        restored.mkdir(exist_ok=True)
        shutil.copy(case.lq, restored / f"{case.case_id}.png")
    config = load_config(None, [f"models_dir={tiny_pack}"])
    table = evaluate_from_config(config, shared / "data" / "celebref_refs" / "cases.csv", tmp_path / "eval",
                                 restored_dir=str(restored), limit=5)
    assert table.counts["PSNR"] == table.counts["SSIM"] == table.counts["LMD"] == table.counts["IDS"] == 2
    gt_case = next(c for c in cases if c.gt is not None)
    per_case = {r["case_id"]: r for r in csv.DictReader((tmp_path / "eval" / "per_case.csv").open())}
    lq, gt = read_rgb(gt_case.lq), read_rgb(gt_case.gt)
    assert float(per_case[gt_case.case_id]["PSNR"]) == pytest.approx(psnr(lq, gt))
    assert float(per_case[gt_case.case_id]["SSIM"]) == pytest.approx(ssim(lq, gt))
    md = (tmp_path / "eval" / "metrics.md").read_text()
    header = md.splitlines()[0]
    assert [h.strip() for h in header.strip("|").split("|")][1:] == [n + a for n, a in COLUMNS]
    assert "FaceMe (paper, CelebRef-HQ) | 24.37 | 0.678 | 0.227 | 75.62 | 51.01 | 2.908 | 0.647" in md
    assert "| cases covered | 2/5 | 2/5 |" in md
    assert "3 of 5 cases have no ground truth" in md
    if not LearnedMetrics().metrics:
        assert "MUSIQ skipped" in md and "| 0/5 |" in md
    rows = list(csv.reader((tmp_path / "eval" / "metrics.csv").open()))
    assert rows[0] == ["method"] + [n for n, _ in COLUMNS]
    assert [float(v) for v in rows[2][1:]] == [PAPER_FACEME_ROW[n] for n, _ in COLUMNS]


def test_restore_cases_runs_the_engine_pipeline(shared, tiny_pack, tmp_path):
    from engine.faceme.pipeline import FaceMePipeline

    case = next(c for c in read_cases(shared / "data" / "celebref_refs" / "cases.csv") if c.gt is not None)
    pipeline = FaceMePipeline.from_pack(tiny_pack, device="cpu", dtype="float32")
    restore_cases(pipeline, [case], tmp_path, steps=1, guidance=5.0, max_refs=2, seed=0)
    out = read_rgb(tmp_path / f"{case.case_id}.png")
    assert out.shape == (512, 512, 3)
    stamp = (tmp_path / f"{case.case_id}.png").stat().st_mtime_ns
    restore_cases(pipeline, [case], tmp_path, steps=1, guidance=5.0, max_refs=2, seed=0)  # resumable: kept
    assert (tmp_path / f"{case.case_id}.png").stat().st_mtime_ns == stamp
