"""bench/faceme_gpu.py at test size on the CPU: the same code the GPU run uses (models built on the
device, the real crop restored with prepared real references, every variant compared with the plain
path in the same process)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("faceme_gpu", ROOT / "bench" / "faceme_gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_gpu_benchmark_runs_at_tiny_scale_on_the_cpu(tmp_path, tiny_pack, shared, capsys):
    bench = _bench()
    assets = bench.prepare(tmp_path / "assets", antelope=tiny_pack / "insightface" / "antelopev2")
    assert len(list((assets / "references").glob("*.npz"))) == 2
    out = tmp_path / "result.json"
    code = bench.main(["run", "--assets", str(assets), "--scale", "tiny", "--device", "cpu", "--steps", "1",
                       "--faces", "1", "--variants", "plain,batch4,balanced,low,preview", "--preview-steps", "2",
                       "--threads", "1", "--json", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "s/face" in table and "peak VRAM GB" in table
    rows = {row["variant"]: row for row in json.loads(out.read_text())["rows"]}
    assert list(rows) == ["plain", "batch4", "preview", "balanced", "low"]
    assert rows["plain"]["max_diff_to_plain"] == 0
    assert rows["batch4"]["max_diff_to_plain"] <= 1 and rows["batch4"]["faces"] == 4
    assert rows["balanced"]["max_diff_to_plain"] == 0 and rows["low"]["max_diff_to_plain"] == 0
    assert rows["preview"]["max_diff_to_plain"] > 1  # a different sampler: named as trading output
    assert all(row["s_per_face"] > 0 for row in rows.values())
