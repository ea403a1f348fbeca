"""Shared fixtures: the ../shared folder, a tiny model pack built once per session, an in-process CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FACEME_SHARED", ROOT.parent / "shared"))

# Qt must know it has no screen before any QApplication exists.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Caches the engine writes (the prompt embeddings per model pack) go to a folder of this test session,
# not the user's cache folder.
if "FACEME_CACHE" not in os.environ:
    import tempfile

    os.environ["FACEME_CACHE"] = tempfile.mkdtemp(prefix="faceme-test-cache-")


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not present (the shared data folder beside the project)")
    return SHARED


@pytest.fixture
def run_cli(capsys):
    """Run `faceme ARGS…` in-process; returns (exit code, stdout, stderr)."""
    from engine.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors and --help
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def _tiny_pack_cache_root() -> Path:
    import tempfile

    user = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(os.environ.get("FACEME_TINY_PACK_CACHE") or Path(tempfile.gettempdir()) / f"faceme-tiny-pack-{user}")


def _cached_pack(shared: Path, preset: str, keep_others_for: float) -> Path:
    """Build a pack of `engine.testing.tiny_pack` preset `preset` once into a shared cache folder.

    The folder is keyed by a hash of the builder and the model modules it builds with, so
    pytest-xdist workers and later sessions share one build; a lock file serialises the first build.
    Packs of the same preset built from other sources are removed `keep_others_for` seconds after
    they were built. Needs ../shared for the real SCRFD detector.
    """
    import hashlib
    import shutil
    import time

    from engine.testing import tiny_pack as tiny_pack_module

    sources = [Path(tiny_pack_module.__file__), ROOT / "engine" / "faceme" / "mix.py",
               ROOT / "engine" / "faceme" / "id_encoder.py"]
    key = f"{preset}-" + hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    root = _tiny_pack_cache_root()
    root.mkdir(parents=True, exist_ok=True)
    pack = root / key
    done = pack / ".complete"
    lock = root / f"{key}.lock"
    deadline = time.monotonic() + 600
    while not done.exists():
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                stale = time.time() - lock.stat().st_mtime > 600
            except FileNotFoundError:
                continue
            if stale or time.monotonic() > deadline:
                lock.unlink(missing_ok=True)  # a build that died long ago
            time.sleep(0.5)
            continue
        try:
            if not done.exists():
                building = root / f"{key}.building-{os.getpid()}"
                shutil.rmtree(building, ignore_errors=True)
                tiny_pack_module.write_tiny_pack(building, shared / "models" / "insightface_scrfd" / "det_500m.onnx",
                                                 preset)
                (building / ".complete").write_text("ok\n")
                shutil.rmtree(pack, ignore_errors=True)
                building.rename(pack)
                for old in root.glob(f"{preset}-*"):
                    marker = old / ".complete"
                    if old != pack and marker.exists() and time.time() - marker.stat().st_mtime > keep_others_for:
                        shutil.rmtree(old, ignore_errors=True)
        finally:
            os.close(fd)
            lock.unlink(missing_ok=True)
    return pack


def _recorded(pack: Path) -> Path:
    """The pack with its install records, as after its first load (FaceMePipeline.from_pack records a
    pack placed by hand). Done here, every session, so no test depends on whether another loaded the
    shared pack before it: a test that changes the files of a copy drops the records
    (`shutil.ignore_patterns(".faceme-part.json")`) or sees the change refused, as a user would."""
    from engine.models.layout import RESTORATION_PARTS, check_before_loading

    check_before_loading(pack, RESTORATION_PARTS)  # a stat per file once recorded
    return pack


@pytest.fixture(scope="session")
def tiny_pack(shared) -> Path:
    """A complete tiny model pack in the released formats (engine.testing.tiny_pack), built once."""
    return _recorded(_cached_pack(shared, "tiny", keep_others_for=86400))


@pytest.fixture(scope="session")
def interface_pack(shared) -> Path:
    """A pack at the released tensor interfaces with shallow layers (preset `interface`, about 500 MB),
    built once, and only when a test asks for it."""
    return _recorded(_cached_pack(shared, "interface", keep_others_for=3600))
