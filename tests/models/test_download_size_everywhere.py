"""The download size is one figure everywhere, the manifest's (issue 19, item 6c): `faceme info`, README
and the app's Models page all say what `faceme models download` fetches for restoration."""

from __future__ import annotations

import re
from pathlib import Path

from engine.models.fetch import human_bytes
from engine.models.layout import RESTORATION_PARTS
from engine.models.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[2]


def _manifest_total() -> str:
    """The restoration download as the manifest has it, rounded as every place shows it ("13.4 GB")."""
    manifest = load_manifest()
    return human_bytes(sum(manifest.part(name).download_size for name in RESTORATION_PARTS))


def test_readme_states_the_manifests_download_size():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"FaceMe needs about (\d+(?:\.\d+)? [KMGT]?B) of weights", readme)
    assert stated, "README's sentence on the size of the weights is gone"
    assert stated[1] == _manifest_total()


def test_faceme_info_states_the_manifests_download_size(run_cli, tmp_path):
    code, out, _ = run_cli("info", "--models", tmp_path / "empty-pack")
    assert code == 0
    assert f"Download it (about {_manifest_total()};" in out


def test_the_models_page_states_the_manifests_download_size():
    from app import model_pack

    assert f"about {_manifest_total()} of weights" in model_pack.WHY_TEXT
