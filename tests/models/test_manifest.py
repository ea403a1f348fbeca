"""The packaged manifest: complete, consistent with the layout, honest about what it does not know."""

from __future__ import annotations

import errno

import pytest

from engine.errors import DownloadError, UsageError
from engine.models import install
from engine.models.layout import PARTS, RESTORATION_PARTS, part_dir
from engine.models.manifest import load_manifest


def test_every_layout_part_has_a_source_licence_and_the_files_the_layout_needs():
    manifest = load_manifest()
    assert set(manifest.parts) == set(PARTS)
    for name, layout in PARTS.items():
        part = manifest.part(name)
        assert part.required == layout.required_for_restoration
        assert part.license.name == layout.license_name and part.license.url == layout.license_url
        assert part.license.non_commercial == layout.non_commercial
        assert part.license.summary and part.provenance
        if part.license.non_commercial:
            assert "NON-COMMERCIAL" in part.license.summary
        names = {f.path for f in part.files} | {fb for f in part.files for fb in f.fallbacks}
        for spec in layout.files:  # each required file can come from the manifest
            assert names & set(spec), (name, spec)
        for f in part.files:  # sizes are known or estimated for the disk-space check
            assert f.expected_size > 0
            assert f.sha256 is None or len(f.sha256) == 64
        assert part.download_size > 0


def test_sources_point_at_the_public_releases():
    m = load_manifest()
    assert m.part("realvisxl").source.repo == "SG161222/RealVisXL_V3.0"
    assert m.part("photomaker").source.repo == "TencentARC/PhotoMaker"
    assert [f.path for f in m.part("photomaker").files] == ["photomaker-v1.bin"]
    for name, sub in (("faceme-controlnet", "controlnet"), ("faceme-mix", "mix")):
        assert m.part(name).source.repo == "thomas2modyu/FaceMe" and m.part(name).source.subfolder == sub
    assert m.part("faceme-mix").source.hub_filename("mix.safetensors") == "mix/mix.safetensors"
    release = "https://github.com/deepinsight/insightface/releases/download/v0.7/"
    assert m.part("antelopev2").source.url == release + "antelopev2.zip"
    assert m.part("buffalo_l").source.url == release + "buffalo_l.zip"
    # only fp16 weights of the base model are fetched (fp32 names only as fallbacks)
    weights = [f for f in m.part("realvisxl").files if f.path.endswith(".safetensors")]
    assert weights and all(".fp16." in f.path and f.fallbacks for f in weights)
    total = sum(m.part(n).download_size for n in RESTORATION_PARTS)
    assert 10e9 < total < 15e9  # "about 13.4 GB" of weights (README, faceme info, the Models page)


def test_manifest_errors_are_usage_errors(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError):
        load_manifest(bad)
    with pytest.raises(UsageError, match="unsupported manifest format"):
        load_manifest({"format": 99, "parts": {}})
    with pytest.raises(UsageError, match="unknown model part"):
        load_manifest().part("no-such-part")


def test_disk_full_during_install_is_reported_and_leaves_the_old_part(served, run_cli, monkeypatch):
    args = ("models", "download", "faceme-mix", "--models", served.models, "--manifest", served.manifest_path)
    assert run_cli(*args, "--accept-licenses")[0] == 0
    before = (part_dir(served.models, "faceme-mix") / "mix.safetensors").read_bytes()

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(install, "_place", no_space)
    code, _, err = run_cli(*args, "--force")
    assert code == 1 and "disk is full" in err and "previous install is unchanged" in err
    assert (part_dir(served.models, "faceme-mix") / "mix.safetensors").read_bytes() == before
    assert not list((served.models / ".staging").iterdir())


def test_import_across_file_systems_falls_back_to_a_symlink(small_pack, tmp_path, monkeypatch):
    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")
    monkeypatch.setattr(install.os, "link", cross_device)
    result = install.import_part(tmp_path / "models", "faceme-mix", small_pack / "faceme" / "mix")
    assert result.placed == "symlink"
    installed = part_dir(tmp_path / "models", "faceme-mix") / "mix.safetensors"
    assert installed.is_symlink() and installed.resolve() == (small_pack / "faceme/mix/mix.safetensors").resolve()
    copied = install.import_part(tmp_path / "models2", "faceme-mix", small_pack / "faceme" / "mix", mode="copy")
    assert copied.placed == "copy"


def test_a_file_missing_on_the_server_is_named(served):
    served.server.hub.pop(("test-org/FaceMe", "mix/mix.safetensors"))
    with pytest.raises(DownloadError, match=r"mix.safetensors not found in hf://test-org/FaceMe@main/mix"):
        install.download_parts(served.models, ["faceme-mix"], manifest=served.manifest_path, accept_licenses=True)
    assert not part_dir(served.models, "faceme-mix").exists()
