"""Import (link, don't copy), remove, list, the checks run before loading, and no network unless asked."""

from __future__ import annotations

import json
import shutil
import socket
import zipfile

import pytest

from engine.errors import ModelPackError
from engine.models.install import import_part
from engine.models.integrity import RECORD_NAME, check_model_file, read_record, verify_file_hash
from engine.models.layout import PARTS, RESTORATION_PARTS, part_dir


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_import_links_a_hub_layout_folder_without_copying(small_pack, copy_of, tmp_path, run_cli, no_network):
    models = tmp_path / "models"
    for name in RESTORATION_PARTS:
        src = copy_of(small_pack / PARTS[name].folder, f"user-{name}")
        code, out, err = run_cli("models", "import", name, src, "--models", models)
        assert code == 0, err
        assert "hardlink" in out
        for path in src.rglob("*"):
            if path.is_file():
                installed = part_dir(models, name) / path.relative_to(src)
                assert installed.stat().st_ino == path.stat().st_ino  # the same file, not a copy
    code, out, _ = run_cli("models", "verify", "--full", "--models", models)
    assert code == 0, out
    record = read_record(part_dir(models, "realvisxl"))
    assert record.method == "import" and record.placed == "hardlink"


def test_import_finds_the_part_in_a_repo_folder_an_hf_cache_and_a_nested_zip(small_pack, tmp_path, run_cli,
                                                                            no_network):
    models = tmp_path / "models"
    # the FaceMe repo as cloned from the hub: controlnet/ and mix/ side by side
    repo = tmp_path / "FaceMe"
    shutil.copytree(small_pack / "faceme", repo)
    assert run_cli("models", "import", "faceme-controlnet", repo, "--models", models)[0] == 0
    assert run_cli("models", "import", "faceme-mix", repo, "--models", models)[0] == 0

    # an HF cache: models--org--name/{refs,snapshots,blobs}, snapshot entries are symlinks to blobs
    cache = tmp_path / "hf-cache"
    snap = cache / "models--TencentARC--PhotoMaker" / "snapshots" / ("c" * 40)
    blobs = cache / "models--TencentARC--PhotoMaker" / "blobs"
    snap.mkdir(parents=True)
    blobs.mkdir()
    (cache / "models--TencentARC--PhotoMaker" / "refs").mkdir()
    (cache / "models--TencentARC--PhotoMaker" / "refs" / "main").write_text("c" * 40)
    blob = blobs / "abc123"
    shutil.copyfile(small_pack / "photomaker" / "photomaker-v1.bin", blob)
    (snap / "photomaker-v1.bin").symlink_to(blob)
    code, out, err = run_cli("models", "import", "photomaker", cache, "--models", models)
    assert code == 0, err
    installed = part_dir(models, "photomaker") / "photomaker-v1.bin"
    assert installed.stat().st_ino == blob.stat().st_ino and not installed.is_symlink()
    assert read_record(part_dir(models, "photomaker")).commit == "c" * 40

    # antelopev2 unpacked from the official zip: antelopev2/antelopev2/*.onnx, and the zip itself
    unpacked = tmp_path / "unpacked" / "antelopev2" / "antelopev2"
    shutil.copytree(small_pack / "insightface" / "antelopev2", unpacked)
    (unpacked / "genderage.onnx").write_bytes(b"not used")
    assert run_cli("models", "import", "antelopev2", tmp_path / "unpacked", "--models", models)[0] == 0
    assert sorted(p.name for p in part_dir(models, "antelopev2").iterdir()) == sorted(
        [RECORD_NAME, "glintr100.onnx", "scrfd_10g_bnkps.onnx"])
    archive = tmp_path / "buffalo_l.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in (small_pack / "insightface" / "buffalo_l").iterdir():
            zf.write(p, p.name)
    code, out, err = run_cli("models", "import", "buffalo_l", archive, "--models", models)
    assert code == 0, err
    from engine.models.layout import REPAIR_PARTS  # not imported here (tests/repair)

    assert run_cli("models", "verify", "--models", models,
                   *[p for p in PARTS if p != "realvisxl" and p not in REPAIR_PARTS])[0] == 0


def test_import_refuses_a_folder_that_is_not_the_part(small_pack, tmp_path, run_cli):
    models = tmp_path / "models"
    code, _, err = run_cli("models", "import", "realvisxl", small_pack / "photomaker", "--models", models)
    assert code == 4
    assert "model_index.json" in err and "not laid out like the realvisxl part" in err
    assert not part_dir(models, "realvisxl").exists()


def test_import_checks_known_hashes(small_pack, tmp_path):
    from engine.models.manifest import load_manifest

    data = load_manifest().data
    data = json.loads(json.dumps(data))
    data["parts"]["faceme-mix"]["files"][0]["sha256"] = "0" * 64  # not the file the user has
    with pytest.raises(ModelPackError, match="not the released file"):
        import_part(tmp_path / "models", "faceme-mix", small_pack / "faceme" / "mix", manifest=data)
    assert not part_dir(tmp_path / "models", "faceme-mix").exists()


def test_remove_deletes_the_part_but_not_the_files_it_was_imported_from(small_pack, copy_of, tmp_path, run_cli):
    models = tmp_path / "models"
    src = copy_of(small_pack / "faceme" / "mix", "mix-src")
    assert run_cli("models", "import", "faceme-mix", src, "--models", models)[0] == 0
    size = (src / "mix.safetensors").stat().st_size
    code, out, _ = run_cli("models", "remove", "faceme-mix", "--models", models)
    assert code == 0 and "removed" in out
    freed = int(out.split("(")[1].split(" B freed")[0])
    assert freed < size  # hard links: the weights still belong to the user's folder, only the record goes
    assert not part_dir(models, "faceme-mix").exists()
    assert (src / "mix.safetensors").is_file()
    assert "missing" in run_cli("models", "verify", "--models", models, "faceme-mix")[1]
    assert run_cli("models", "remove", "faceme-mix", "--models", models)[0] == 2


def test_list_and_verify_never_touch_the_network(small_pack, run_cli, no_network):
    code, out, _ = run_cli("models", "list", "--models", small_pack)
    assert code == 0
    assert "realvisxl" in out and "present" in out and "by hand" in out and "NON-COMMERCIAL" in out
    assert run_cli("models", "verify", "--models", small_pack)[0] == 0
    assert run_cli("info", "--models", small_pack)[0] == 0


def test_files_changed_after_install_are_caught_before_loading(small_pack, copy_of, tmp_path, run_cli):
    models = tmp_path / "models"
    src = copy_of(small_pack / "insightface" / "antelopev2", "ante")
    assert run_cli("models", "import", "antelopev2", src, "--models", models, "--copy")[0] == 0
    onnx = part_dir(models, "antelopev2") / "glintr100.onnx"
    assert check_model_file(onnx).state == "verified"
    verify_file_hash(onnx, read_record(onnx.parent).files["glintr100.onnx"].sha256)

    data = bytearray(onnx.read_bytes())
    data[10] ^= 0xFF  # same size: only the hash can tell
    onnx.write_bytes(bytes(data))
    with pytest.raises(ModelPackError, match="changed since it was installed"):
        check_model_file(onnx)
    with pytest.raises(ModelPackError, match="not the expected one"):
        verify_file_hash(onnx, "0" * 64)
    # same size, new modification time: the plain verify re-hashes it (issue 14: it used to say ready)
    code, out, _ = run_cli("models", "verify", "--models", models, "antelopev2")
    assert code == 4 and "content changed" in out
    code, out, _ = run_cli("models", "verify", "--full", "--models", models, "antelopev2")
    assert code == 4 and "content changed" in out

    onnx.write_bytes(b"short")
    code, out, _ = run_cli("models", "verify", "--models", models, "antelopev2")
    assert code == 4 and "differs from the installed" in out

    # a pack folder made by hand has no record: loadable, reported as unrecorded
    hand = small_pack / "insightface" / "antelopev2" / "glintr100.onnx"
    assert check_model_file(hand).state == "unrecorded"
    with pytest.raises(ModelPackError, match="no installed record"):
        check_model_file(hand, require_record=True)


def test_import_takes_the_photomaker_file_itself_although_a_torch_bin_is_a_zip(tiny_pack, tmp_path, run_cli,
                                                                               no_network):
    """`faceme models import photomaker …/photomaker-v1.bin`: the real torch format is a zip archive,
    which is the file itself, not an archive holding it."""
    source = tmp_path / "downloads" / "photomaker-v1.bin"
    source.parent.mkdir()
    shutil.copyfile(tiny_pack / "photomaker" / "photomaker-v1.bin", source)
    assert zipfile.is_zipfile(source)
    models = tmp_path / "models"
    code, out, err = run_cli("models", "import", "photomaker", source, "--models", models)
    assert code == 0, err
    installed = part_dir(models, "photomaker") / "photomaker-v1.bin"
    assert installed.stat().st_ino == source.stat().st_ino
    assert run_cli("models", "verify", "--full", "--models", models, "photomaker")[0] == 0
    from engine.faceme.id_encoder import load_id_encoder

    assert load_id_encoder(installed).output_dim > 0  # still the loadable checkpoint
