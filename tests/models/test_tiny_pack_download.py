"""The engine's tiny pack, served in the hub's URL layout, downloaded, verified and used to restore (issue 3,
done-means 1: "a full download installs a pack that `faceme models verify` accepts and the engine restores
with")."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from engine.models.integrity import check_model_file
from engine.models.layout import RESTORATION_PARTS, part_dir


@pytest.mark.slow
def test_downloaded_tiny_pack_verifies_and_restores_a_face(tiny_pack, shared, tmp_path, put_on_server, run_cli):
    manifest = put_on_server(tiny_pack)
    assert set(RESTORATION_PARTS) <= set(manifest["parts"])
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(manifest))
    models = tmp_path / "models"

    code, out, err = run_cli("models", "download", "--accept-licenses", "--models", models,
                             "--manifest", manifest_path)
    assert code == 0, err
    code, out, _ = run_cli("models", "verify", "--full", "--models", models)
    assert code == 0, out
    for onnx in part_dir(models, "antelopev2").glob("*.onnx"):
        assert check_model_file(onnx).state == "verified"

    crops = sorted((shared / "data" / "realworld_degraded" / "crops").glob("*.png"))
    if not crops:
        pytest.skip("no degraded crops in ../shared/data/realworld_degraded/crops")
    out_png = tmp_path / "restored.png"
    code, out, err = run_cli("restore-face", crops[0], "-o", out_png, "--models", models, "--steps", "2",
                             "--seed", "1", "--device", "cpu")
    assert code == 0, err
    restored = np.asarray(Image.open(out_png))
    assert restored.shape == (512, 512, 3)
