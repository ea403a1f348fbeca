"""Set up the project's virtual environment and run the product or its tests.

    python3 scripts/dev.py [--gpu|--cpu] start [ARGS...]   set up (core + app) and start FaceMe Studio
    python3 scripts/dev.py [--gpu|--cpu] test  [PYTEST ARGS...]   set up (core + app + tests) and run the tests
                                                  (in parallel, one pytest-xdist worker per core up to 4)

`--gpu` installs onnxruntime-gpu (face detection and ArcFace on CUDA) instead of the CPU onnxruntime,
`--cpu` the CPU build; without either, the build already in `.venv/` stays (a new one gets the CPU
build). The environment holds one of the two, never both: switching uninstalls the other first.

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
    # spandrel (+ its extra architectures, for DDColor) declares torchvision, which it needs only for
    # architectures the engine does not run (engine/repair/spandrel_loading.py); einops is its real need.
    "core": ["insightface==2.1", "spandrel==0.4.2", "spandrel-extra-arches==0.2.0"],
    # open-clip-torch only carries the real CLIP BPE vocabulary that tiny test packs are built from.
    "test": ["open-clip-torch==3.3.0"],
}
EXTRAS = {"start": ["app"], "test": ["app", "training", "test"]}
#: pyproject.toml's extra per onnxruntime build -> the distribution it installs (one per environment:
#: both builds write the same onnxruntime/ package folder)
ONNXRUNTIME_FLAVOURS = {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu"}


def installed_onnxruntime(env: Path) -> set[str]:
    """The onnxruntime builds installed in the virtual environment `env`, from their dist-info folders
    (no interpreter started)."""
    found = set()
    for site in [*env.glob("lib/python3*/site-packages"), *env.glob("Lib/site-packages")]:
        for info in site.glob("onnxruntime*.dist-info"):
            name = info.name.removesuffix(".dist-info").rsplit("-", 1)[0].lower().replace("_", "-")
            if name in ONNXRUNTIME_FLAVOURS.values():
                found.add(name)
    return found


def onnxruntime_flavour(env: Path, asked: str | None = None) -> str:
    """The extra to install: `asked` ("cpu" / "gpu"), else the build already in `env`, else "cpu"."""
    if asked is not None:
        if asked not in ONNXRUNTIME_FLAVOURS:
            raise ValueError(f"unknown onnxruntime build {asked!r} (cpu or gpu)")
        return asked
    return "gpu" if ONNXRUNTIME_FLAVOURS["gpu"] in installed_onnxruntime(env) else "cpu"


def with_flavour(extras: list[str], flavour: str) -> list[str]:
    """`extras` with exactly one onnxruntime extra, `flavour`."""
    return [e for e in extras if e not in ONNXRUNTIME_FLAVOURS] + [flavour]


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


def pip(*args: str, verb: str = "install") -> None:
    cmd = [str(venv_python()), "-m", "pip", verb, "--disable-pip-version-check", "-q", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def ensure_env(extras: list[str], flavour: str | None = None) -> None:
    """Set up `.venv/` for `extras` plus one onnxruntime build (`flavour`: see onnxruntime_flavour)."""
    if sys.version_info < (3, 11):
        sys.exit(f"FaceMe Studio needs Python >= 3.11; this is {sys.version.split()[0]}")
    if not venv_python().exists():
        print(f"Creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    chosen = onnxruntime_flavour(VENV, flavour)
    extras = with_flavour(extras, chosen)
    stamp_file = VENV / ".faceme-setup"
    have = stamp_file.read_text().splitlines() if stamp_file.exists() else []
    if is_set_up_for(extras, have):
        return
    wanted = stamp_for(extras)
    present = installed_onnxruntime(VENV)
    if present - {ONNXRUNTIME_FLAVOURS[chosen]}:
        # every build goes before the wanted one is installed: they share onnxruntime/, and removing
        # one after the other is installed would delete the other's files
        pip("-y", *sorted(present), verb="uninstall")
        have = []
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


#: at most this many pytest-xdist workers: each imports torch and loads the tiny packs (~1 GB)
MAX_TEST_WORKERS = 4


def parallel_workers(pytest_args: list[str]) -> list[str]:
    """`-n N` for pytest-xdist, one worker per core up to MAX_TEST_WORKERS: most tests spend their time in
    one thread (Python, a child process starting, a file written), so two workers on two cores take
    about 40 % less time than one. Nothing when the caller chose (`-n`, `--numprocesses`, `-p no:xdist`)
    or there is one core."""
    chosen = any(a == "-n" or a.startswith(("-n", "--numprocesses")) or a == "no:xdist" for a in pytest_args)
    workers = min(MAX_TEST_WORKERS, os.cpu_count() or 1)
    return [] if chosen or workers < 2 else ["-n", str(workers)]


def main(argv: list[str]) -> int:
    flavour = None
    while argv and argv[0] in ("--gpu", "--cpu"):
        flavour, argv = argv[0][2:], argv[1:]
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    verb, rest = argv[0], argv[1:]
    if verb == "start":
        advice = system_libraries().check_before_qt()
        if advice:  # before minutes of pip, and before Qt aborts naming the wrong package
            print(advice, file=sys.stderr)
            return 1
    ensure_env(EXTRAS[verb], flavour)
    python = str(venv_python())
    if verb == "start":
        return subprocess.call([python, "-m", "app", *rest], cwd=ROOT)
    code = subprocess.call([python, "-m", "pytest", *parallel_workers(rest), *rest], cwd=ROOT)
    if code == 5:  # pytest: no tests collected; not a failure of the project
        print("pytest collected no tests", flush=True)
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
