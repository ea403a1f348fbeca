"""Downloads from a real HTTP server on 127.0.0.1 in the hub's URL layout (issue 3, done-means 1 and 2)."""

from __future__ import annotations

import json
import shutil

import pytest

from engine.errors import CancelledError
from engine.models.install import download_parts
from engine.models.integrity import RECORD_NAME, check_model_file, read_record
from engine.models.layout import PARTS, RESTORATION_PARTS, part_dir


def _download(served, *parts, extra=()):
    return ("models", "download", *parts, "--models", served.models, "--manifest", served.manifest_path, *extra)


def test_full_download_installs_a_pack_that_verify_accepts(served, run_cli):
    code, out, err = run_cli(*_download(served, "all", extra=["--accept-licenses"]))
    assert code == 0, err
    for name in PARTS:
        assert f"{name}" in out and "installed:" in out
    code, out, _ = run_cli("models", "verify", "--full", "--models", served.models, *PARTS)
    assert code == 0, out
    assert out.count(" present ") == len(PARTS)

    # antelopev2.zip nests its files in antelopev2/antelopev2/: installed flat, only the files used
    ante = part_dir(served.models, "antelopev2")
    assert sorted(p.name for p in ante.iterdir()) == sorted([RECORD_NAME, "scrfd_10g_bnkps.onnx", "glintr100.onnx"])
    assert not (served.models / ".downloads" / "antelopev2.zip").exists()
    # hub files are hard links to the blobs in the user's HF cache: no second copy
    unet = part_dir(served.models, "realvisxl") / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    assert unet.stat().st_nlink == 2
    blobs = {p.stat().st_ino for p in served.hf_cache.rglob("blobs/*")}
    assert unet.stat().st_ino in blobs
    record = read_record(part_dir(served.models, "realvisxl"))
    assert record.method == "download" and record.placed == "hardlink" and record.commit
    assert all(f.checked_against == "manifest" for f in record.files.values())
    # the ONNX files pass the check run before an onnxruntime session is created
    assert check_model_file(ante / "glintr100.onnx").state == "verified"

    # licences recorded, one entry per part
    accepted = json.loads((served.models / "licenses.json").read_text())["accepted"]
    assert {a["part"] for a in accepted} == set(PARTS)
    assert all(a["accepted_at"] and a["license"] and a["how"] == "--accept-licenses" for a in accepted)

    # a second run fetches nothing
    before = len(served.server.requests)
    code, out, _ = run_cli(*_download(served, "all"))
    assert code == 0 and out.count("already installed") == len(PARTS)
    assert len(served.server.requests) == before

    code, out, _ = run_cli("models", "list", "--models", served.models, "--manifest", served.manifest_path)
    assert code == 0
    assert "NON-COMMERCIAL" in out and "Pi-Lab" in out and "download (hardlink)" in out


def test_without_accepting_licences_nothing_is_fetched(served, run_cli, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    code, out, err = run_cli(*_download(served))
    assert code == 2
    assert "--accept-licenses" in err and "NON-COMMERCIAL" in err and "Pi-Lab License 1.0" in err
    assert served.server.requests == []
    assert not (served.models / "licenses.json").exists()
    for name in RESTORATION_PARTS:
        assert not part_dir(served.models, name).exists()

    # the engine call (used by the GUI) refuses the same way, before any request
    with pytest.raises(Exception) as info:
        download_parts(served.models, ["faceme-mix"], manifest=served.manifest_path)
    assert info.value.__class__.__name__ == "LicenseNotAcceptedError"
    assert served.server.requests == []

    # accepted once, remembered
    code, _, err = run_cli(*_download(served, "faceme-mix", extra=["--accept-licenses"]))
    assert code == 0, err
    code, _, err = run_cli(*_download(served, "faceme-controlnet"))
    assert code == 2  # a different part: its licence is asked for (same text, separate consent)
    code, out, err = run_cli(*_download(served, "faceme-mix", extra=["--force"]))
    assert code == 0, err


def test_dropped_connection_mid_file_resumes_without_refetching(served, run_cli, monkeypatch):
    # huggingface_hub writes 10 MB chunks and resumes from the last one written; a small chunk lets a
    # small file show the same behaviour (the engine's own zip downloader reads 64 KiB chunks)
    import huggingface_hub.constants
    from engine.models import fetch

    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    unet_rel = "unet/diffusion_pytorch_model.fp16.safetensors"
    unet_url = served.hub_url_path("realvisxl", unet_rel)
    size = len(served.server.hub[("test-org/RealVisXL_V3.0", unet_rel)])
    served.server.drop_after[unet_url] = size // 2
    zip_url = "/releases/download/v0.7/antelopev2.zip"
    zip_size = len(served.server.urls[zip_url])
    served.server.drop_after[zip_url] = zip_size // 3

    code, out, err = run_cli(*_download(served, "realvisxl", "antelopev2", extra=["--accept-licenses"]))
    assert code == 0, err
    for url, total, chunk in ((unet_url, size, 1024), (zip_url, zip_size, fetch._CHUNK)):
        gets = served.server.gets(url)
        assert len(gets) == 2, gets
        written = gets[0].body_bytes // chunk * chunk  # what was on disk when the connection dropped
        assert written > 0
        assert gets[1].range == f"bytes={written}-" and gets[1].status == 206
        assert gets[1].body_bytes == total - written  # nothing on disk was fetched again
    assert run_cli("models", "verify", "--full", "--models", served.models, "realvisxl", "antelopev2")[0] == 0


def test_cancelled_zip_download_resumes_in_the_next_run(served):
    zip_url = "/releases/download/v0.7/antelopev2.zip"
    zip_size = len(served.server.urls[zip_url])
    calls = {"n": 0}

    def cancel_after_a_few_chunks() -> bool:  # asked once per 64 KiB chunk received
        calls["n"] += 1
        return calls["n"] > 5

    with pytest.raises(CancelledError):
        download_parts(served.models, ["antelopev2"], manifest=served.manifest_path, accept_licenses=True,
                       cancel=cancel_after_a_few_chunks)
    assert not part_dir(served.models, "antelopev2").exists()
    partial = next((served.models / ".downloads").glob("*.zip.part"))
    have = partial.stat().st_size
    assert 0 < have < zip_size

    progress = []
    results = download_parts(served.models, ["antelopev2"], manifest=served.manifest_path,
                             progress=lambda d, t, m: progress.append((d, t, m)))
    assert results[0].installed
    second = served.server.gets(zip_url)[-1]
    assert second.range == f"bytes={have}-" and second.status == 206
    assert results[0].fetched_bytes == zip_size - have
    assert progress[-1][0] == progress[-1][1] and "/s" in progress[-1][2]


def test_a_cancelled_hub_download_installs_nothing(served):
    calls = {"n": 0}

    def cancel_soon() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(CancelledError):
        download_parts(served.models, ["realvisxl"], manifest=served.manifest_path, accept_licenses=True,
                       cancel=cancel_soon)
    assert not part_dir(served.models, "realvisxl").exists()
    assert not list((served.models / ".staging").iterdir())
    assert not list(served.hf_cache.rglob("*.incomplete"))
    # cancelled inside the second file: the first one is complete in the HF cache and is not fetched again;
    # the second starts over (huggingface_hub keeps no partial files between calls)
    first = served.hub_url_path("realvisxl", "model_index.json")
    second = served.hub_url_path("realvisxl", "scheduler/scheduler_config.json")
    assert len(served.server.gets(first)) == 1 and len(served.server.gets(second)) == 1
    download_parts(served.models, ["realvisxl"], manifest=served.manifest_path)
    assert len(served.server.gets(first)) == 1 and len(served.server.gets(second)) == 2


def test_bytes_that_differ_from_the_manifest_are_rejected_removed_and_reported(served, run_cli):
    rel = "photomaker-v1.bin"
    url = served.hub_url_path("photomaker", rel)
    good = served.server.hub[("test-org/PhotoMaker", rel)]
    served.server.corrupt[url] = bytes(b ^ 0xFF for b in good)

    code, out, err = run_cli(*_download(served, "photomaker", extra=["--accept-licenses"]))
    assert code == 1
    assert "photomaker/photomaker-v1.bin" in err and "do not match the manifest" in err
    assert not part_dir(served.models, "photomaker").exists()
    assert not list(served.hf_cache.rglob("blobs/*")), "the bad blob must leave the HF cache"
    assert not [p for p in (served.models / ".staging").iterdir()]

    zip_url = "/releases/download/v0.7/antelopev2.zip"
    data = served.server.urls[zip_url]
    served.server.corrupt[zip_url] = data[:-10] + b"0123456789"
    code, out, err = run_cli(*_download(served, "antelopev2", extra=["--accept-licenses"]))
    assert code == 1 and "antelopev2 archive" in err and "do not match" in err
    assert not list((served.models / ".downloads").iterdir())

    # fixed on the server: the next run installs
    served.server.corrupt.clear()
    assert run_cli(*_download(served, "photomaker", "antelopev2"))[0] == 0


def test_a_failed_download_leaves_the_previous_install_intact(served, run_cli, monkeypatch):
    assert run_cli(*_download(served, "faceme-mix", "antelopev2", extra=["--accept-licenses"]))[0] == 0
    mix = part_dir(served.models, "faceme-mix") / "mix.safetensors"
    inode = mix.stat().st_ino
    requests_before = len(served.server.requests)

    real_usage = shutil.disk_usage
    with monkeypatch.context() as patch:
        patch.setattr(shutil, "disk_usage", lambda path: real_usage(path)._replace(free=10_000))  # nearly full
        code, out, err = run_cli(*_download(served, "faceme-mix", "antelopev2", extra=["--force"]))
    assert code == 1
    assert "not enough disk space" in err and "nothing was downloaded" in err
    assert len(served.server.requests) == requests_before

    # a hash failure during a forced re-download does not touch the installed part either
    served.server.corrupt[served.hub_url_path("faceme-mix", "mix.safetensors")] = b"x" * mix.stat().st_size
    with monkeypatch.context() as patch:
        patch.setenv("HF_HUB_CACHE", str(served.hf_cache.parent / "other-cache"))  # so it is fetched again
        code, _, err = run_cli(*_download(served, "faceme-mix", extra=["--force"]))
    assert code == 1 and "do not match" in err
    assert mix.stat().st_ino == inode
    assert run_cli("models", "verify", "--full", "--models", served.models, "faceme-mix", "antelopev2")[0] == 0


def test_unknown_hashes_are_recorded_at_first_download_and_enforced_after(served_unhashed, run_cli):
    served = served_unhashed
    code, out, err = run_cli(*_download(served, "antelopev2", "photomaker", extra=["--accept-licenses"]))
    assert code == 0, err
    assert "note: the manifest has no SHA-256" in out
    recorded = json.loads((served.models / ".faceme-hashes.json").read_text())["hashes"]
    zip_url = "/releases/download/v0.7/antelopev2.zip"
    assert served.server.base_url + zip_url in recorded
    assert any(k.startswith("hf://test-org/PhotoMaker@") for k in recorded)
    record = read_record(part_dir(served.models, "photomaker"))
    assert record.files["photomaker-v1.bin"].checked_against == "first-download"

    data = served.server.urls[zip_url]
    served.server.corrupt[zip_url] = data[:-10] + b"0123456789"
    code, _, err = run_cli(*_download(served, "antelopev2", extra=["--force"]))
    assert code == 1 and "differ from the first download" in err
    assert run_cli("models", "verify", "--models", served.models, "antelopev2")[0] == 0


def test_missing_fp16_variant_falls_back_to_the_plain_file(served, run_cli):
    # a repo that publishes only fp32 text_encoder weights: the manifest's fallback name is used
    man = served.manifest
    repo = "test-org/RealVisXL_V3.0"
    fp16 = next(f for f in man["parts"]["realvisxl"]["files"] if f["path"].startswith("text_encoder/model"))
    data = served.server.hub.pop((repo, fp16["path"]))
    served.server.hub[(repo, "text_encoder/model.safetensors")] = data
    fp16["fallbacks"] = ["text_encoder/model.safetensors"]
    fp16["sha256"] = None
    served.manifest_path.write_text(json.dumps(man))
    code, out, err = run_cli(*_download(served, "realvisxl", extra=["--accept-licenses"]))
    assert code == 0, err
    folder = part_dir(served.models, "realvisxl")
    assert (folder / "text_encoder/model.safetensors").is_file()
    assert not (folder / fp16["path"]).exists()


def test_on_a_terminal_the_licences_are_asked_for_once(served, run_cli, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    answers = iter(["n", "yes"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    code, _, err = run_cli(*_download(served, "faceme-mix"))
    assert code == 2 and "not accepted" in err
    assert served.server.requests == []
    code, _, err = run_cli(*_download(served, "faceme-mix"))
    assert code == 0, err
    accepted = json.loads((served.models / "licenses.json").read_text())["accepted"]
    assert [(a["part"], a["how"]) for a in accepted] == [("faceme-mix", "interactive prompt")]
