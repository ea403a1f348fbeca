"""The tiny repair models (engine.testing.tiny_repair_pack), built once per machine and cached like the
tiny pack, and a models folder holding them beside the session's tiny FaceMe pack."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WHOLE = "data/realworld_degraded/whole"


def _cached_repair_parts() -> Path:
    import tempfile

    from engine.testing import tiny_repair_pack

    sources = [Path(tiny_repair_pack.__file__), ROOT / "engine" / "repair" / "scratch_detector.py"]
    key = "repair-" + hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    user = os.getuid() if hasattr(os, "getuid") else "user"  # the tiny pack's cache folder (tests/conftest.py)
    root = Path(os.environ.get("FACEME_TINY_PACK_CACHE") or Path(tempfile.gettempdir()) / f"faceme-tiny-pack-{user}")
    root.mkdir(parents=True, exist_ok=True)
    pack, lock = root / key, root / f"{key}.lock"
    deadline = time.monotonic() + 600
    while not (pack / ".complete").exists():
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if time.monotonic() > deadline:
                lock.unlink(missing_ok=True)
            time.sleep(0.5)
            continue
        try:
            if not (pack / ".complete").exists():
                building = root / f"{key}.building-{os.getpid()}"
                shutil.rmtree(building, ignore_errors=True)
                tiny_repair_pack.write_repair_parts(building)
                (building / ".complete").write_text("ok\n")
                shutil.rmtree(pack, ignore_errors=True)
                building.rename(pack)
        finally:
            os.close(fd)
            lock.unlink(missing_ok=True)
    return pack


@pytest.fixture(scope="session")
def repair_parts() -> Path:
    """A models folder holding only the tiny repair parts."""
    return _cached_repair_parts()


@pytest.fixture(scope="session")
def repair_pack(tiny_pack, repair_parts, tmp_path_factory) -> Path:
    """A models folder with the tiny FaceMe pack and the tiny repair parts (their folders linked)."""
    pack = tmp_path_factory.mktemp("repair-pack")
    for source in (tiny_pack, repair_parts):
        for entry in source.iterdir():
            if entry.is_dir() and not entry.name.startswith("."):
                if entry.name == "repair":
                    (pack / "repair").mkdir(exist_ok=True)
                    for part in entry.iterdir():
                        (pack / "repair" / part.name).symlink_to(part)
                elif not (pack / entry.name).exists():
                    (pack / entry.name).symlink_to(entry)
    return pack


@pytest.fixture(scope="session")
def repair_models(repair_pack):
    """The process's repair models of `repair_pack`: the CLI's restorations find them loaded."""
    from engine.repair.models import repair_models_for

    return repair_models_for(repair_pack, "cpu")


@pytest.fixture(scope="session")
def whole(shared) -> Path:
    return shared / WHOLE
