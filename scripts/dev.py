"""Set up the project's virtual environment and run the product or its tests.

    python3 scripts/dev.py start [ARGS...]   set up (core + app) and start FaceMe Studio
    python3 scripts/dev.py test  [PYTEST ARGS...]   set up (core + app + tests) and run the test suite

Both are idempotent: the environment in `.venv/` is reused while pyproject.toml, constraints.txt and
this file are unchanged, and an environment set up for `test` (a superset: core + app + training +
tests) serves `start` as it is. On Linux with an X display, `start` first checks the system libraries
Qt's window needs and names the missing packages (apt / dnf) instead of letting Qt abort. Only the
standard library is used here, so any Python >= 3.11 can run it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
CONSTRAINTS = ROOT / "constraints.txt"

# Installed with --no-deps: their declared requirements would add a second OpenCV (insightface
# requires the GUI build `opencv-python`) or torchvision (open-clip-torch), which breaks beside the
# pinned CPU torch. Their real runtime needs are in pyproject.toml's dependencies.
NO_DEPS = {
    "core": ["insightface==2.1"],
    # open-clip-torch only carries the real CLIP BPE vocabulary that tiny test packs are built from.
    "test": ["open-clip-torch==3.3.0"],
}
EXTRAS = {"start": ["app"], "test": ["app", "training", "test"]}


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def files_digest() -> str:
    digest = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", CONSTRAINTS, Path(__file__)):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def stamp_for(extras: list[str]) -> str:
    """One line of `.venv/.faceme-setup`: the digest of the files the setup depends on and the extras
    installed with them."""
    return f"{files_digest()} {','.join(sorted(extras))}"


def is_set_up_for(extras: list[str], stamp_lines: list[str]) -> bool:
    """Whether an earlier setup of the same files installed at least `extras` (test ⊇ start)."""
    digest = files_digest()
    for line in stamp_lines:
        parts = line.split()
        if len(parts) == 2 and parts[0] == digest and set(extras) <= set(parts[1].split(",")):
            return True
    return False


def pip(*args: str) -> None:
    cmd = [str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def ensure_env(extras: list[str]) -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"FaceMe Studio needs Python >= 3.11; this is {sys.version.split()[0]}")
    if not venv_python().exists():
        print(f"Creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp_file = VENV / ".faceme-setup"
    have = stamp_file.read_text().splitlines() if stamp_file.exists() else []
    if is_set_up_for(extras, have):
        return
    wanted = stamp_for(extras)
    spec = f".[{','.join(extras)}]" if extras else "."
    pip("-c", str(CONSTRAINTS), "-e", spec)
    no_deps = NO_DEPS["core"] + (NO_DEPS["test"] if "test" in extras else [])
    pip("--no-deps", "-c", str(CONSTRAINTS), *no_deps)
    stamp_file.write_text("\n".join([*have, wanted]) + "\n")


def system_libraries():
    """app/system_libraries.py, loaded from its file: no virtual environment (or Qt) is needed yet."""
    spec = importlib.util.spec_from_file_location("faceme_system_libraries", ROOT / "app" / "system_libraries.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    verb, rest = argv[0], argv[1:]
    if verb == "start":
        advice = system_libraries().check_before_qt()
        if advice:  # before minutes of pip, and before Qt aborts naming the wrong package
            print(advice, file=sys.stderr)
            return 1
    ensure_env(EXTRAS[verb])
    python = str(venv_python())
    if verb == "start":
        return subprocess.call([python, "-m", "app", *rest], cwd=ROOT)
    code = subprocess.call([python, "-m", "pytest", *rest], cwd=ROOT)
    if code == 5:  # pytest: no tests collected; not a failure of the project
        print("pytest collected no tests", flush=True)
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
