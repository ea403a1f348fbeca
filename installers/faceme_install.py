"""Install FaceMe Studio into its own virtual environment in the platform's data folder.

    python3 installers/faceme_install.py [--prefix DIR] [--wheel WHEEL] [--gpu | --cpu] [--dry-run]

Called by install.sh and install.ps1 (which only find a suitable Python); runnable directly too.
Standard library only. Rerunning upgrades the installation in place. Nothing is downloaded but Python
packages from the package index: the model weights are fetched later, from inside the app, after their
licences are shown and accepted.

The pins come from the same places `scripts/dev.py` uses: `constraints.txt` (torch exactly) and
dev.py's NO_DEPS list (insightface installed without its declared requirements). `--gpu` installs
onnxruntime-gpu (face detection and ArcFace on CUDA) instead of the CPU onnxruntime, by dev.py's rule:
one build per environment, the other uninstalled first; without --gpu / --cpu a rerun keeps the
build the environment has.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_NAME = "FaceMeStudio"  # engine.settings.APP_NAME: env, models and catalog share one data folder
WINDOWS = os.name == "nt"
#: what a source build needs; everything else in a checkout (tests, docs, build outputs) stays out
SOURCE_ITEMS = ("pyproject.toml", "README.md", "MANIFEST.in", "engine", "app", "training", "resources",
                "installers/build_hooks.py")
MANIFEST_IN_PACKAGE = "engine/models/manifest.json"


@dataclass(frozen=True)
class Layout:
    """Where an installation lives."""

    data: Path  # the app's data folder: env/ here, and later models/ and the catalog
    bin: Path  # launchers
    applications: Path | None  # the .desktop entry (Linux only)

    @property
    def env(self) -> Path:
        return self.data / "env"

    def env_bin(self, name: str) -> Path:
        return self.env / ("Scripts" if WINDOWS else "bin") / (f"{name}.exe" if WINDOWS else name)


def default_layout(prefix: Path | None) -> Layout:
    """The platform's per-user folders (the ones platformdirs gives the engine), or all under PREFIX."""
    linux = sys.platform.startswith("linux")
    if prefix is not None:
        prefix = prefix.expanduser().resolve()
        return Layout(prefix, prefix / "bin", prefix / "applications" if linux else None)
    home = Path.home()
    if WINDOWS:
        local = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
        return Layout(local / APP_NAME, local / APP_NAME / "bin", None)
    if sys.platform == "darwin":
        return Layout(home / "Library" / "Application Support" / APP_NAME, home / ".local" / "bin", None)
    xdg_data = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return Layout(xdg_data / APP_NAME, home / ".local" / "bin", xdg_data / "applications" if linux else None)


def default_models_dir() -> Path:
    """Where the app keeps its weights (engine.settings.default_models_dir): the user's data folder,
    also when the environment itself went under --prefix."""
    return Path(os.environ.get("FACEME_MODELS") or default_layout(None).data / "models")


def dev_script(root: Path = ROOT):
    """scripts/dev.py as a module: the single source of the install rules both share."""
    dev = root / "scripts" / "dev.py"
    spec = importlib.util.spec_from_file_location("faceme_dev_script", dev)
    if spec is None or spec.loader is None or not dev.is_file():
        raise SystemExit(f"{dev}: missing; run the installer from a FaceMe Studio source folder")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def no_deps_requirements(root: Path = ROOT) -> list[str]:
    """dev.py's list of packages installed without their declared requirements (the single source)."""
    return list(dev_script(root).NO_DEPS["core"])


def stage_source(source: Path, into: Path) -> Path:
    """Copy just what a wheel build needs, so the build never writes into (or picks stale files from)
    the source folder's build/ and *.egg-info."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for item in SOURCE_ITEMS:
        src = source / item
        if not src.exists():
            if item == "MANIFEST.in":
                continue
            raise SystemExit(f"{src}: missing; not a complete FaceMe Studio source folder")
        dst = into / item
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=ignore)
        else:
            shutil.copy2(src, dst)
    return into


def build_wheel(python: Path | str, source: Path, out_dir: Path, *, isolated: bool = True) -> Path:
    """Build the app's wheel from a source folder into out_dir and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="faceme-src-") as tmp:
        staged = stage_source(source, Path(tmp))
        cmd = [str(python), "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q",
               "-w", str(out_dir), str(staged)]
        if not isolated:
            cmd.insert(cmd.index("--no-deps"), "--no-build-isolation")
        run(cmd)
    wheels = sorted(out_dir.glob("faceme_studio-*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        raise SystemExit(f"{out_dir}: the build produced no faceme_studio wheel")
    return wheels[-1]


def run(cmd: list[str], dry_run: bool = False) -> None:
    print("+", " ".join(shlex.quote(str(c)) for c in cmd), flush=True)
    if not dry_run:
        subprocess.run([str(c) for c in cmd], check=True)


def pip_install(layout: Layout, *args: str, dry_run: bool) -> None:
    run([str(layout.env_bin("python")), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args],
        dry_run)


def ensure_env(layout: Layout, dry_run: bool) -> None:
    python = layout.env_bin("python")
    if python.exists() and subprocess.run([str(python), "-c", "import pip"], capture_output=True).returncode == 0:
        print(f"Reusing the app's environment {layout.env}", flush=True)
        return
    # a half-made or broken env (interrupted first run, Python removed) is rebuilt from scratch
    print(f"Creating the app's environment {layout.env}", flush=True)
    if not dry_run:
        venv.EnvBuilder(with_pip=True, clear=True).create(layout.env)


def write_launchers(layout: Layout, dry_run: bool) -> list[Path]:
    """`faceme-studio` (the app) and `faceme` (the command line), calling into the app's environment."""
    written = []
    for name in ("faceme-studio", "faceme"):
        target = layout.env_bin(name)
        if WINDOWS:
            path = layout.bin / f"{name}.cmd"
            text = f'@echo off\r\n"{target}" %*\r\n'
        else:
            path = layout.bin / name
            text = f'#!/bin/sh\nexec {shlex.quote(str(target))} "$@"\n'
        print(f"Launcher {path}", flush=True)
        if not dry_run:
            layout.bin.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="")
            if not WINDOWS:
                path.chmod(0o755)
        written.append(path)
    return written


def installed_icon(layout: Layout) -> Path:
    """The logo inside the installed app package (no Qt import: find_spec only)."""
    code = ("import importlib.util, pathlib; "
            "print(pathlib.Path(importlib.util.find_spec('app').origin).parent / 'resources/icons/logo.svg')")
    # -I: never the working directory's `app` (the installer usually runs from a checkout)
    out = subprocess.run([str(layout.env_bin("python")), "-I", "-c", code], check=True, capture_output=True,
                         text=True)
    return Path(out.stdout.strip())


def _desktop_exec_arg(path: Path) -> str:
    """Quote an Exec= argument the Desktop Entry way (double quotes, backslash escapes), not the sh way."""
    text = str(path)
    if not any(c in text for c in ' \t\n"\'\\><~|&;$*?#()`'):
        return text
    quoted = "".join("\\" + c if c in '"`$\\' else c for c in text)
    # string values get their own backslash escaping on top of the quoting rule
    return '"' + quoted.replace("\\", "\\\\") + '"'


def desktop_entry(launcher: Path, icon: Path) -> str:
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Name=FaceMe Studio",
        "GenericName=Face restoration",
        "Comment=Restore the faces in family photos so that they still look like the person",
        f"Exec={_desktop_exec_arg(launcher)} %F",
        f"Icon={icon}",
        "Terminal=false",
        "Categories=Graphics;Photography;",
        "MimeType=image/jpeg;image/png;image/tiff;image/webp;image/heic;",
        "StartupWMClass=FaceMe Studio",
        "",
    ])


def write_desktop_entry(layout: Layout, launcher: Path, dry_run: bool) -> Path | None:
    if layout.applications is None:
        return None
    path = layout.applications / "faceme-studio.desktop"
    print(f"Desktop entry {path}", flush=True)
    if not dry_run:
        layout.applications.mkdir(parents=True, exist_ok=True)
        path.write_text(desktop_entry(launcher, installed_icon(layout)), encoding="utf-8")
    return path


def read_manifest(source: Path, wheel: Path | None) -> dict:
    if wheel is not None:
        with zipfile.ZipFile(wheel) as archive:
            return json.loads(archive.read(MANIFEST_IN_PACKAGE).decode("utf-8"))
    return json.loads((source / MANIFEST_IN_PACKAGE).read_text(encoding="utf-8"))


def licence_notice(manifest: dict, models_dir: Path) -> str:
    """The weights' licences, non-commercial ones first and loudest. Nothing is downloaded here."""
    parts = manifest["parts"]
    items = parts.items() if isinstance(parts, dict) else ((p.get("name", "?"), p) for p in parts)
    restricted, others = [], []
    for name, part in items:
        lic = part["license"]
        (restricted if lic.get("non_commercial") else others).append(f"  - {name}: {lic['name']}\n    {lic['url']}")
    lines = [
        "",
        "Model weights are NOT installed. FaceMe Studio asks before downloading them (about 13.4 GB) or",
        "imports files you already have (Models page, or `faceme models`). They will go to:",
        f"  {models_dir}",
        "",
        "NON-COMMERCIAL LICENCES: the FaceMe weights (Pi-Lab License 1.0) and the InsightFace model packs",
        "are for non-commercial research and personal use only. You are asked to accept each licence",
        "before its weights are downloaded or imported:",
        *restricted,
        "Other parts:",
        *others,
        "",
    ]
    return "\n".join(lines)


def install(layout: Layout, source: Path, wheel: Path | None, dry_run: bool, flavour: str | None = None) -> None:
    """Install into `layout`; `flavour`: the onnxruntime build, "gpu" or "cpu" (None: the one the
    environment has, else cpu)."""
    constraints = source / "constraints.txt"
    if not constraints.is_file():
        raise SystemExit(f"{constraints}: missing; the installer needs the project's constraints file")
    if wheel is not None and not wheel.is_file():
        raise SystemExit(f"{wheel}: no such wheel")
    if dry_run:
        print("Dry run: nothing is changed; this is the plan.", flush=True)
    dev = dev_script(source)
    no_deps = list(dev.NO_DEPS["core"])
    flavour = dev.onnxruntime_flavour(layout.env, flavour)
    extras = ",".join(dev.with_flavour(["app"], flavour))
    manifest = read_manifest(source, wheel)  # read first: a broken source fails before anything changes
    ensure_env(layout, dry_run)
    python = layout.env_bin("python")
    with tempfile.TemporaryDirectory(prefix="faceme-wheel-") as tmp:
        if wheel is None:
            print(f"Building the app from {source}", flush=True)
            if dry_run:
                wheel = Path(tmp) / "faceme_studio-VERSION-py3-none-any.whl"
                print(f"+ {python} -m pip wheel --no-deps -w {tmp} <copy of {source}>", flush=True)
            else:
                wheel = build_wheel(python, source, Path(tmp))
        present = dev.installed_onnxruntime(layout.env)
        if present - {dev.ONNXRUNTIME_FLAVOURS[flavour]}:
            # both builds share onnxruntime/: every one goes before the wanted one is installed
            run([str(python), "-m", "pip", "uninstall", "--disable-pip-version-check", "-q", "-y", *sorted(present)],
                dry_run)
        # dependencies first (upgraded in place when the constraints change), then the app itself
        # forced, so a rerun with the same version number still replaces the app's files
        pip_install(layout, "-c", str(constraints), f"{wheel}[{extras}]", dry_run=dry_run)
        pip_install(layout, "--no-deps", "--force-reinstall", str(wheel), dry_run=dry_run)
        pip_install(layout, "--no-deps", "-c", str(constraints), *no_deps, dry_run=dry_run)
    launchers = write_launchers(layout, dry_run)
    write_desktop_entry(layout, launchers[0], dry_run)
    if not dry_run:
        run([str(layout.env_bin("faceme")), "--version"])
    print(licence_notice(manifest, default_models_dir()), flush=True)
    verb = "Would install" if dry_run else "Installed"
    print(f"{verb} FaceMe Studio in {layout.env}; start it with {launchers[0]}", flush=True)
    if not dry_run and str(layout.bin) not in os.environ.get("PATH", "").split(os.pathsep):
        print(f"({layout.bin} is not on your PATH: add it, or use the full path above)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="install", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", type=Path,
                        help="install everything under DIR (env/, bin/, applications/) instead of the user's folders")
    parser.add_argument("--wheel", type=Path, help="install this built wheel instead of building the source folder")
    parser.add_argument("--source", type=Path, default=ROOT,
                        help="the FaceMe Studio source folder (default: the one this installer is in)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    build = parser.add_mutually_exclusive_group()
    build.add_argument("--gpu", dest="flavour", action="store_const", const="gpu",
                       help="onnxruntime-gpu: face detection and ArcFace on an NVIDIA GPU (CUDA)")
    build.add_argument("--cpu", dest="flavour", action="store_const", const="cpu",
                       help="the CPU onnxruntime (the default for a new installation)")
    args = parser.parse_args(argv)
    if sys.version_info < (3, 11):
        print(f"FaceMe Studio needs Python >= 3.11; this is {sys.version.split()[0]}", file=sys.stderr)
        return 2
    layout = default_layout(args.prefix)
    try:
        install(layout, args.source.resolve(), args.wheel.resolve() if args.wheel else None, args.dry_run,
                args.flavour)
    except subprocess.CalledProcessError as exc:
        print(f"install failed: {' '.join(map(str, exc.cmd))} exited with {exc.returncode}; "
              "rerun the installer to resume (it is safe to rerun)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
