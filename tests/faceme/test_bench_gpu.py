"""bench/faceme_gpu.py at test size on the CPU: the same code the GPU run uses (models built on the
device, the real crop restored with prepared real references, every variant compared with the plain
path in the same process), in a fresh process that imports only what the GPU machine has."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("faceme_gpu", ROOT / "bench" / "faceme_gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_gpu_benchmark_runs_at_tiny_scale_on_the_cpu(tmp_path, tiny_pack, shared):
    assets = _bench().prepare(tmp_path / "assets", antelope=tiny_pack / "insightface" / "antelopev2")
    assert len(list((assets / "references").glob("*.npz"))) == 2
    out = tmp_path / "result.json"
    argv = ["faceme_gpu.py", "run", "--assets", str(assets), "--scale", "tiny", "--device", "cpu", "--steps", "1",
            "--faces", "1", "--variants", "plain,batch4,balanced,low,preview", "--preview-steps", "2",
            "--threads", "1", "--json", str(out)]
    # The GPU machine has torch, transformers, numpy, PIL (diffusers as a carried wheel): the run must
    # import neither Qt, SQLAlchemy, insightface nor platformdirs.
    script = (
        "import sys, runpy\n"
        f"sys.argv = {argv!r}\n"
        "try:\n"
        f"    runpy.run_path({str(ROOT / 'bench' / 'faceme_gpu.py')!r}, run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "bad = [m for m in ('PySide6', 'sqlalchemy', 'insightface', 'platformdirs', 'alembic') if m in sys.modules]\n"
        "print('IMPORTED', bad)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "IMPORTED []" in result.stdout, result.stdout[-2000:]
    assert "s/face" in result.stdout and "peak VRAM GB" in result.stdout
    rows = {row["variant"]: row for row in json.loads(out.read_text())["rows"]}
    assert list(rows) == ["plain", "batch4", "preview", "balanced", "low"]
    assert rows["plain"]["max_diff_to_plain"] == 0
    assert rows["batch4"]["max_diff_to_plain"] <= 1 and rows["batch4"]["faces"] == 4
    assert rows["balanced"]["max_diff_to_plain"] == 0 and rows["low"]["max_diff_to_plain"] == 0
    assert rows["preview"]["max_diff_to_plain"] > 1  # a different sampler: named as trading output
    assert all(row["s_per_face"] > 0 for row in rows.values())


def test_sdxl_scale_is_the_released_architectures():
    """Shapes only (meta device): the parameter counts of SDXL base / RealVisXL V3.0's UNet and VAE,
    CLIP-L and OpenCLIP-bigG text encoders, CLIP ViT-L/14 vision + 768 + 1280 projections, the released
    Mix; the ControlNet is made from the UNet."""
    models = _bench().meta_models("sdxl")
    counts = {name: sum(p.numel() for p in getattr(models, name).parameters())
              for name in ("unet", "controlnet", "vae", "text_encoder", "text_encoder_2", "id_encoder", "mix")}
    assert counts == {"unet": 2_567_463_684, "controlnet": 1_251_014_160, "vae": 83_653_863,
                      "text_encoder": 123_060_480, "text_encoder_2": 694_659_840, "id_encoder": 305_276_928,
                      "mix": 39_367_680}
    assert models.controlnet.config.conditioning_embedding_out_channels == (16, 32, 96, 256)
