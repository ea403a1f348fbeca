"""One onnxruntime per environment, CPU or GPU build, as pyproject.toml's extras, scripts/dev.py and
the installer resolve it (the builds share the onnxruntime/ package folder: two break each other).
tests/test_environment.py checks the installed end state; this reads the requirement lists each
set-up resolves to, and the order of the pip commands when the build changes."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dev():
    return _load("faceme_dev_for_onnxruntime", ROOT / "scripts" / "dev.py")


def resolved_names(extras: list[str], platform: str) -> list[str]:
    """The top-level requirements pip is given for `.[extras]` on `platform`, markers evaluated."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    texts = project["dependencies"] + [r for extra in extras for r in project["optional-dependencies"][extra]]
    environment = {"sys_platform": platform, "platform_system": {"linux": "Linux", "win32": "Windows",
                                                                 "darwin": "Darwin"}[platform], "extra": ""}
    names = []
    for text in texts:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            names.append(requirement.name.lower().replace("_", "-"))
    return names


@pytest.mark.parametrize("verb", ["start", "test"])
@pytest.mark.parametrize("flavour", ["cpu", "gpu"])
def test_every_set_up_resolves_to_exactly_one_onnxruntime(dev, verb, flavour):
    for platform in ("linux", "win32", "darwin"):
        names = resolved_names(dev.with_flavour(dev.EXTRAS[verb], flavour), platform)
        builds = [n for n in names if n.startswith("onnxruntime")]
        expected = "onnxruntime-gpu" if flavour == "gpu" and platform != "darwin" else "onnxruntime"
        assert builds == [expected], (verb, flavour, platform)
    # packages installed with --no-deps (insightface asks for `onnxruntime`) never pull the CPU build in
    assert all("onnxruntime" not in r for r in dev.NO_DEPS["core"] + dev.NO_DEPS["test"])
    pins = {line.split("==")[0].lower() for line in (ROOT / "constraints.txt").read_text().splitlines()}
    assert {"onnxruntime", "onnxruntime-gpu"} <= pins


def test_switching_builds_uninstalls_the_other_first(dev, monkeypatch, tmp_path):
    venv = tmp_path / ".venv"
    python = venv / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    site = venv / "lib" / "python3.12" / "site-packages"
    (site / "onnxruntime-1.31.1.dist-info").mkdir(parents=True)
    calls = []
    monkeypatch.setattr(dev, "VENV", venv)
    monkeypatch.setattr(dev, "venv_python", lambda: python)
    monkeypatch.setattr(dev, "pip", lambda *args, verb="install": calls.append((verb, args)))

    dev.ensure_env(dev.EXTRAS["start"])  # a CPU environment stays CPU
    assert calls[0] == ("install", ("-c", str(dev.CONSTRAINTS), "-e", ".[app,cpu]"))
    calls.clear()
    dev.ensure_env(dev.EXTRAS["start"], "gpu")
    assert calls[0] == ("uninstall", ("-y", "onnxruntime"))  # before the GPU build lands in onnxruntime/
    assert calls[1] == ("install", ("-c", str(dev.CONSTRAINTS), "-e", ".[app,gpu]"))
    # once the GPU build is what the environment holds, a plain `test` keeps it
    shutil.rmtree(site / "onnxruntime-1.31.1.dist-info")
    (site / "onnxruntime_gpu-1.31.1.dist-info").mkdir()
    calls.clear()
    dev.ensure_env(dev.EXTRAS["test"])
    assert [verb for verb, _ in calls] == ["install", "install"]
    assert calls[0][1][-1] == ".[app,training,test,gpu]"


def test_installer_plans_the_gpu_build_in_place_of_the_cpu_one(tmp_path, capsys):
    installer = _load("faceme_install_for_onnxruntime", ROOT / "installers" / "faceme_install.py")
    layout = installer.Layout(tmp_path / "data", tmp_path / "bin", None)
    (layout.env / "lib" / f"python3.{sys.version_info.minor}" / "site-packages" / "onnxruntime-1.31.1.dist-info").mkdir(
        parents=True)
    installer.install(layout, ROOT, None, dry_run=True, flavour="gpu")
    plan = capsys.readouterr().out.splitlines()
    uninstall = next(i for i, line in enumerate(plan) if " uninstall " in line)
    install = next(i for i, line in enumerate(plan) if "[app,gpu]" in line)
    assert plan[uninstall].endswith(" -y onnxruntime") and uninstall < install
    assert not (tmp_path / "bin").exists()  # a dry run changes nothing
