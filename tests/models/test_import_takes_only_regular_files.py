"""`faceme models import` takes only regular files inside the source (issue 18, finding 5).

A pack folder holding `photomaker-v1.bin -> <a private file>` used to get that file hard-linked into the
models folder (with `--copy`: its bytes written into a new world-readable file); a zip whose member is a
symlink was imported and `verify` said "present". Now links (to files or folders, even ones pointing
inside the source), FIFOs, sockets and devices are refused with one line naming the entry, exit 4, and
nothing is imported; only an HF cache's own snapshot → blobs links are followed. Real files, real links,
real zips, and the real `faceme` process where that is cheap.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from engine.models.import_sources import UnsafeSourceError
from engine.models.install import import_part
from engine.models.layout import PARTS, part_dir

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]


def faceme(*args) -> subprocess.CompletedProcess:
    """The real `faceme` in its own process; a FIFO opened by mistake would hang it, hence the timeout."""
    return subprocess.run([*CLI, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture
def secret(tmp_path) -> Path:
    """A private file outside every pack folder (standing in for /etc/shadow)."""
    path = tmp_path / "private" / "shadow"
    path.parent.mkdir()
    path.write_bytes(b"root:$6$not-a-model:19000:0:99999:7:::\n" * 100)
    path.chmod(0o600)
    return path


def _files_with_inode(folder: Path, inode: int) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.stat().st_ino == inode] if folder.exists() else []


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("copy", [False, True], ids=["link", "copy"])
def test_a_pack_folder_with_a_link_to_a_private_file_is_refused(tmp_path, secret, copy):
    pack = tmp_path / "PhotoMaker"
    pack.mkdir()
    (pack / "photomaker-v1.bin").symlink_to(secret)
    models = tmp_path / "models"

    done = faceme("models", "import", "photomaker", pack, "--models", models, *(["--copy"] if copy else []))

    assert done.returncode == 4, done.stderr
    line = _one_line_error(done.stderr)
    assert "photomaker-v1.bin" in line and "symbolic link" in line and str(secret) in line
    assert "Nothing was imported" in line
    assert not part_dir(models, "photomaker").exists()
    assert _files_with_inode(models, secret.stat().st_ino) == []
    assert not any(b"not-a-model" in p.read_bytes() for p in models.rglob("*") if p.is_file())
    assert "missing" in faceme("models", "verify", "photomaker", "--models", models).stdout


def test_a_linked_folder_inside_the_source_is_refused(small_pack, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(small_pack / PARTS["realvisxl"].folder / "unet", elsewhere / "unet")
    pack = tmp_path / "RealVisXL"
    shutil.copytree(small_pack / PARTS["realvisxl"].folder, pack, ignore=shutil.ignore_patterns("unet"))
    (pack / "unet").symlink_to(elsewhere / "unet", target_is_directory=True)
    models = tmp_path / "models"

    with pytest.raises(UnsafeSourceError) as refused:
        import_part(models, "realvisxl", pack)
    assert refused.value.path == pack / "unet" and refused.value.exit_code == 4
    assert "is a symbolic link" in str(refused.value)
    assert not part_dir(models, "realvisxl").exists()
    assert not [p for p in models.rglob("*") if p.is_file()]  # refused before anything was staged


def test_a_link_pointing_inside_the_source_is_refused_too(small_pack, tmp_path):
    """Chosen and documented (import_sources.py): no link is followed, even a harmless-looking one."""
    pack = tmp_path / "mix"
    (pack / "real").mkdir(parents=True)
    shutil.copyfile(small_pack / "faceme" / "mix" / "mix.safetensors", pack / "real" / "mix.safetensors")
    (pack / "mix.safetensors").symlink_to("real/mix.safetensors")
    with pytest.raises(UnsafeSourceError, match="symbolic link .*links are not followed"):
        import_part(tmp_path / "models", "faceme-mix", pack)


def test_the_file_named_directly_may_not_be_a_link_either(tmp_path, secret, run_cli):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "photomaker-v1.bin").symlink_to(secret)
    code, _, err = run_cli("models", "import", "photomaker", downloads / "photomaker-v1.bin",
                           "--models", tmp_path / "models")
    assert code == 4 and "symbolic link" in err and "photomaker-v1.bin" in err
    assert not part_dir(tmp_path / "models", "photomaker").exists()


def _make_fifo(path: Path) -> None:
    os.mkfifo(path)


def _make_socket(path: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the socket file stays


def _make_char_device(path: Path) -> None:
    try:
        os.mknod(path, 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # what /dev/zero is
    except PermissionError:
        pytest.skip("creating a device file needs CAP_MKNOD")


@pytest.mark.parametrize(("make", "said"), [(_make_fifo, "FIFO"), (_make_socket, "socket"),
                                            (_make_char_device, "character device")],
                         ids=["fifo", "socket", "device"])
def test_pipes_sockets_and_devices_are_refused_by_name_without_hanging(tmp_path, make, said):
    pack = tmp_path / "PhotoMaker"
    pack.mkdir()
    make(pack / "photomaker-v1.bin")
    models = tmp_path / "models"

    done = faceme("models", "import", "photomaker", pack, "--models", models, "--copy")

    assert done.returncode == 4, done.stderr
    line = _one_line_error(done.stderr)
    assert "photomaker-v1.bin" in line and said in line and "only regular files are imported" in line
    assert not part_dir(models, "photomaker").exists()


def _antelope_zip(small_pack: Path, path: Path, odd_member: zipfile.ZipInfo, odd_bytes: bytes) -> Path:
    """An antelopev2 zip nested like the official one, whose glintr100.onnx is `odd_member`."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(small_pack / "insightface" / "antelopev2" / "scrfd_10g_bnkps.onnx",
                 "antelopev2/scrfd_10g_bnkps.onnx")
        zf.writestr(odd_member, odd_bytes)
    return path


@pytest.mark.parametrize(("mode", "said"), [(stat.S_IFLNK | 0o777, "symbolic link"), (stat.S_IFIFO | 0o644, "FIFO")],
                         ids=["symlink", "fifo"])
def test_zip_members_that_are_not_regular_files_are_refused(small_pack, tmp_path, mode, said):
    member = zipfile.ZipInfo("antelopev2/glintr100.onnx")
    member.create_system = 3  # Unix: the high 16 bits of external_attr are the file's mode
    member.external_attr = mode << 16
    archive = _antelope_zip(small_pack, tmp_path / "antelopev2.zip", member, b"/etc/passwd")
    with zipfile.ZipFile(archive) as zf:  # the real thing: zipfile reads it back as a link/FIFO
        assert stat.S_IFMT(zf.getinfo("antelopev2/glintr100.onnx").external_attr >> 16) == stat.S_IFMT(mode)
    models = tmp_path / "models"

    done = faceme("models", "import", "antelopev2", archive, "--models", models)

    assert done.returncode == 4, done.stderr
    line = _one_line_error(done.stderr)
    assert "antelopev2/glintr100.onnx" in line and said in line and str(archive) in line
    verify = faceme("models", "verify", "antelopev2", "--models", models)
    assert verify.returncode == 4 and "missing" in verify.stdout and "present" not in verify.stdout


def test_a_zip_of_regular_files_still_imports(small_pack, tmp_path, run_cli):
    regular = zipfile.ZipInfo.from_file(small_pack / "insightface" / "antelopev2" / "glintr100.onnx",
                                        "antelopev2/glintr100.onnx")
    data = (small_pack / "insightface" / "antelopev2" / "glintr100.onnx").read_bytes()
    archive = _antelope_zip(small_pack, tmp_path / "antelopev2.zip", regular, data)
    models = tmp_path / "models"
    code, _, err = run_cli("models", "import", "antelopev2", archive, "--models", models)
    assert code == 0, err
    assert (part_dir(models, "antelopev2") / "glintr100.onnx").read_bytes() == data
    assert run_cli("models", "verify", "--full", "antelopev2", "--models", models)[0] == 0


def _hub_cache_with(tmp_path: Path, weights: Path, link_to_blob: bool) -> tuple[Path, Path]:
    """An HF cache holding PhotoMaker as huggingface_hub lays it out: a relative link into blobs/ (or,
    with `link_to_blob=False`, a link leading out of the cache to `weights`)."""
    repo = tmp_path / "hf-cache" / "models--TencentARC--PhotoMaker"
    snapshot = repo / "snapshots" / ("d" * 40)
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("d" * 40)
    if link_to_blob:
        shutil.copyfile(weights, repo / "blobs" / "0123abcd")
        (snapshot / "photomaker-v1.bin").symlink_to(Path("..", "..", "blobs", "0123abcd"))
    else:
        (snapshot / "photomaker-v1.bin").symlink_to(weights)
    return tmp_path / "hf-cache", snapshot / "photomaker-v1.bin"


def test_an_hf_cache_is_still_imported_through_its_own_links_and_only_those(small_pack, tmp_path, secret, run_cli):
    weights = small_pack / "photomaker" / "photomaker-v1.bin"
    cache, entry = _hub_cache_with(tmp_path / "good", weights, link_to_blob=True)
    blob = entry.resolve()
    for n, named in enumerate((cache, entry)):  # the cache, or the snapshot file itself
        models = tmp_path / f"models{n}"
        code, out, err = run_cli("models", "import", "photomaker", named, "--models", models)
        assert code == 0, err
        installed = part_dir(models, "photomaker") / "photomaker-v1.bin"
        assert installed.stat().st_ino == blob.stat().st_ino

    cache, entry = _hub_cache_with(tmp_path / "bad", secret, link_to_blob=False)
    for named in (cache, entry):
        code, _, err = run_cli("models", "import", "photomaker", named, "--models", tmp_path / "models-bad")
        assert code == 4 and "symbolic link" in err and str(secret) in err, err
    assert _files_with_inode(tmp_path / "models-bad", secret.stat().st_ino) == []


def test_an_hf_cache_ref_naming_a_path_cannot_lead_out_of_the_cache(small_pack, tmp_path, secret):
    cache, entry = _hub_cache_with(tmp_path, small_pack / "photomaker" / "photomaker-v1.bin", link_to_blob=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "photomaker-v1.bin").write_bytes(secret.read_bytes())
    (cache / "models--TencentARC--PhotoMaker" / "refs" / "main").write_text("../../../outside")
    result = import_part(tmp_path / "models", "photomaker", cache)
    installed = part_dir(tmp_path / "models", "photomaker") / "photomaker-v1.bin"
    assert installed.stat().st_ino == entry.resolve().stat().st_ino  # the snapshot's blob, not ../outside
    assert result.folder == part_dir(tmp_path / "models", "photomaker")


def test_a_copy_is_never_more_readable_than_its_source_nor_than_a_plain_weights_file(small_pack, tmp_path):
    for name, source_mode, copy_mode in (("private", 0o600, 0o600), ("open", 0o777, 0o644),
                                         ("group", 0o640, 0o640)):
        pack = tmp_path / f"mix-{name}"
        shutil.copytree(small_pack / "faceme" / "mix", pack)
        (pack / "mix.safetensors").chmod(source_mode)
        import_part(tmp_path / f"models-{name}", "faceme-mix", pack, mode="copy")
        installed = part_dir(tmp_path / f"models-{name}", "faceme-mix") / "mix.safetensors"
        assert installed.stat().st_ino != (pack / "mix.safetensors").stat().st_ino
        umask = os.umask(0)
        os.umask(umask)
        assert stat.S_IMODE(installed.stat().st_mode) == copy_mode & ~umask, name
