"""bench/faceme_gpu.py at test size on the CPU: the same code the GPU turn runs (models built once on
the device, the real crop restored with prepared real references, every variant compared with the
plain path in the same process, a real group photo end to end), in a fresh process that imports only
what the GPU machine has; and the harness that keeps a failing variant from costing the others."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_gpu_benchmark_runs_at_tiny_scale_on_the_cpu(tmp_path, tiny_pack, shared):
    bench = _load("faceme_gpu")
    assets = bench.prepare(tmp_path / "assets", antelope=tiny_pack / "insightface" / "antelopev2",
                           photo=shared / "data" / "group_photos" / "images" / "deepface_couple.jpg",
                           photo_megapixels=1.0)
    assert len(list((assets / "references").glob("*.npz"))) == 2
    results = tmp_path / "results.jsonl"
    argv = ["faceme_gpu.py", "run", "--assets", str(assets), "--scale", "tiny", "--device", "cpu", "--steps", "1",
            "--faces", "1", "--photos", "1", "--preview-steps", "2", "--threads", "1",
            "--variants", "photo,low,plain", "--results", str(results)]
    # The GPU machine has torch, transformers, numpy, PIL, onnxruntime (diffusers and insightface as
    # carried wheels): the run must import neither Qt, SQLAlchemy nor platformdirs.
    script = (
        "import sys, runpy\n"
        f"sys.argv = {argv!r}\n"
        "try:\n"
        f"    runpy.run_path({str(ROOT / 'bench' / 'faceme_gpu.py')!r}, run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "bad = [m for m in ('PySide6', 'sqlalchemy', 'platformdirs', 'alembic') if m in sys.modules]\n"
        "print('IMPORTED', bad)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "IMPORTED []" in result.stdout, result.stdout[-2000:]
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert records[0]["variant"] == "info" and records[0]["build_s"] > 0
    rows = {r["variant"]: r for r in records[1:]}
    # run in issue 22's order whatever order they were asked in: plain first, the memory modes, the
    # photo (the batched, balanced and preview variants run the same harness and cost 25 s more here;
    # compile, last, is left out: tracing the models takes a minute on this CPU)
    assert bench.VARIANTS == ("plain", "batch4", "batch8", "balanced", "low", "preview", "photo", "compile")
    assert list(rows) == ["plain", "low", "photo"]
    assert all(r["status"] == "ok" for r in rows.values()), [(r["variant"], r.get("error")) for r in rows.values()]
    assert rows["plain"]["max_diff_to_plain"] == 0 and rows["plain"]["s_per_face_median"] > 0
    assert rows["low"]["max_diff_to_plain"] == 0
    photo = rows["photo"]
    assert photo["photo_pixels"] > 900_000 and photo["faces_per_photo"] == 2
    assert 0 < photo["gpu_busy"] <= 1 and photo["cpu_stages_s_median"] > 0
    assert photo["onnx_providers"] == ["CPUExecutionProvider"]

    summary = bench.format_records(bench.read_results(results))  # what `faceme_gpu.py summary` prints
    assert "s/face" in summary and "low" in summary
    assert "GPU-busy" in summary and "(target ≥ 90%)" in summary


def test_a_failing_or_late_variant_is_recorded_and_the_run_goes_on(tmp_path):
    bench = _load("faceme_gpu")
    bench.MIN_VARIANT_S = 0.1  # a fresh copy of the module: time boxes of a fraction of a second here
    results = tmp_path / "r.jsonl"
    cpu = torch.device("cpu")
    plenty = lambda: 100.0  # noqa: E731
    cleaned = []

    def fails(record):
        record.setdefault("face_times_s", []).append(0.5)
        torch.zeros(2, 3) @ torch.zeros(2, 3)  # a real shape error

    def runs_long(record):
        record.setdefault("face_times_s", []).append(0.25)
        while True:
            time.sleep(0.01)

    bench.run_variant("plain", fails, cpu, results, plenty, None, after=lambda: cleaned.append(1))
    bench.run_variant("low", runs_long, cpu, results, plenty, 0.3)
    bench.run_variant("compile", lambda r: None, cpu, results, lambda: 0.05, None)
    bench.run_variant("preview", lambda r: r.setdefault("face_times_s", []).extend([1.0, 3.0, 2.0]), cpu, results,
                      plenty, None)
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["variant"], r["status"]) for r in lines] == [("plain", "error"), ("low", "timeout"),
                                                             ("compile", "skipped"), ("preview", "ok")]
    assert "RuntimeError" in lines[0]["error"] and cleaned == [1]
    assert lines[0]["s_per_face_median"] == 0.5  # what was measured before the failure is kept
    assert "time box" in lines[1]["error"] and lines[1]["faces_timed"] == 1
    assert lines[3]["s_per_face_median"] == 2.0 and (lines[3]["s_per_face_min"], lines[3]["s_per_face_max"]) == (1, 3)


def test_preflight_names_what_to_carry():
    preflight = _load("gpu_preflight")
    entries = preflight.check_modules([("numpy", "numpy", "arrays"),
                                       ("faceme_no_such_module", "insightface", "pretend it is missing")])
    assert entries[0]["imports"] and entries[0]["version"]
    assert not entries[1]["imports"] and "ModuleNotFoundError" in entries[1]["error"]
    lines = preflight.report(entries, [], [], {"cuda_available": False})
    pins = preflight.pinned_versions()
    assert lines[-1].endswith(f"insightface=={pins['insightface']}")
    assert preflight.report(entries[:1], [], [], {})[-1] == "nothing missing"


@pytest.mark.skipif(sys.platform == "win32", reason="bash script")
def test_device_script_is_valid_bash_and_writes_under_out():
    script = ROOT / "bench" / "run_gpu_bench.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert 'OUT=${OUT:-' in text and "timeout" in text and "HF_HUB_OFFLINE=1" in text


def test_sdxl_scale_is_the_released_architectures():
    """Shapes only (meta device): the parameter counts of SDXL base / RealVisXL V3.0's UNet and VAE,
    CLIP-L and OpenCLIP-bigG text encoders, CLIP ViT-L/14 vision + 768 + 1280 projections, the released
    Mix; the ControlNet is made from the UNet."""
    models = _load("faceme_gpu").meta_models("sdxl")
    counts = {name: sum(p.numel() for p in getattr(models, name).parameters())
              for name in ("unet", "controlnet", "vae", "text_encoder", "text_encoder_2", "id_encoder", "mix")}
    assert counts == {"unet": 2_567_463_684, "controlnet": 1_251_014_160, "vae": 83_653_863,
                      "text_encoder": 123_060_480, "text_encoder_2": 694_659_840, "id_encoder": 305_276_928,
                      "mix": 39_367_680}
    assert models.controlnet.config.conditioning_embedding_out_channels == (16, 32, 96, 256)
