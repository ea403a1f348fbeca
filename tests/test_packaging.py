"""The built wheel carries everything the app reads at run time, and an installed copy finds it.

The wheel is built from a copy of the source (installers/faceme_install.py's build_wheel), without
build isolation, with the setuptools in this environment. The install test puts that wheel into a
fresh virtual environment under tmp_path whose only link to .venv is a .pth line for the dependencies
(so nothing is downloaded), and runs the installed app from outside the checkout.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALLERS = ROOT / "installers"


def _load_installer():
    spec = importlib.util.spec_from_file_location("faceme_install", INSTALLERS / "faceme_install.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


installer = _load_installer()


def _files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed in this environment; cannot build the wheel offline")
    return installer.build_wheel(sys.executable, ROOT, tmp_path_factory.mktemp("wheel"), isolated=False)


@pytest.fixture(scope="module")
def wheel_names(wheel) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_wheel_carries_every_resource_file_inside_the_app_package(wheel_names):
    resources = _files_under(ROOT / "resources")
    assert "styles/studio.qss" in resources and "icons/logo.svg" in resources
    missing = [name for name in resources if f"app/resources/{name}" not in wheel_names]
    assert missing == []
    # one copy, under the app package: no top-level `resources` folder in site-packages
    assert not any(name.startswith("resources/") for name in wheel_names)


def test_wheel_carries_migrations_and_model_manifest(wheel_names):
    migrations = ROOT / "engine" / "catalog" / "migrations"
    expected = [f"engine/catalog/migrations/{name}" for name in _files_under(migrations)]
    assert "engine/catalog/migrations/script.py.mako" in expected
    assert any(name.startswith("engine/catalog/migrations/versions/0") for name in expected)
    assert [name for name in expected if name not in wheel_names] == []
    assert "engine/models/manifest.json" in wheel_names


def test_wheel_has_only_the_three_packages_and_both_commands(wheel, wheel_names):
    top = {name.split("/")[0] for name in wheel_names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"engine", "app", "training"}
    with zipfile.ZipFile(wheel) as archive:
        entry_points = next(archive.read(n).decode() for n in wheel_names if n.endswith("entry_points.txt"))
    assert "faceme = engine.cli:main" in entry_points
    assert "faceme-studio = app.__main__:main" in entry_points


def _site_packages(env: Path) -> Path:
    scheme = "nt_venv" if os.name == "nt" else "posix_venv"
    return Path(sysconfig.get_path("purelib", scheme, vars={"base": str(env), "platbase": str(env)}))


@pytest.mark.slow
def test_installed_wheel_runs_outside_the_checkout(wheel, tmp_path):
    """Install the wheel (no dependencies) into a fresh venv, then use the installer's own launcher
    and desktop-entry steps on it, and run the app's code from a folder outside the checkout."""
    layout = installer.Layout(tmp_path / "data", tmp_path / "bin", tmp_path / "applications")
    venv.EnvBuilder(with_pip=False).create(layout.env)
    site = _site_packages(layout.env)
    assert site.is_dir(), site
    # the dependencies come from this environment; a plain path line adds the folder without running
    # its .pth files, so .venv's editable hook for the checkout stays out
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "zz_faceme_test_deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    python = layout.env_bin("python")
    clean_env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    clean_env["QT_QPA_PLATFORM"] = "offscreen"

    def run(*cmd) -> str:
        out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=tmp_path,
                             env=clean_env, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    # --ignore-installed: pip sees .venv's editable faceme-studio through the .pth and must leave it be
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
        "--disable-pip-version-check", "-q", wheel)

    probe = (
        "import json, app, app.theme as t, engine.models.manifest as m, engine.catalog.db as db\n"
        "catalog = db.open_catalog('catalog.sqlite3')\n"
        "print(json.dumps({'app': app.__file__, 'resources': str(t.RESOURCES),\n"
        "  'style': t.STYLE_SHEET.is_file(), 'logo': (t.ICONS / 'logo.svg').is_file(),\n"
        "  'parts': len(m.load_manifest().parts), 'revision': db.current_revision(catalog.engine),\n"
        "  'head': db.head_revision()}))\n"
    )
    import json

    facts = json.loads(run(python, "-c", probe).strip().splitlines()[-1])
    assert Path(facts["app"]).resolve().is_relative_to(site.resolve())
    assert Path(facts["resources"]) == (site / "app" / "resources").resolve()
    assert not Path(facts["resources"]).is_relative_to(ROOT)
    assert facts["style"] and facts["logo"]
    assert facts["parts"] >= 5
    assert facts["revision"] == facts["head"] is not None  # the shipped migrations ran

    # the installer's post-install steps against this real installation
    launchers = installer.write_launchers(layout, dry_run=False)
    assert run(launchers[1], "--version").strip() == run(layout.env_bin("faceme"), "--version").strip()
    assert "0.1.0" in run(launchers[1], "--version")
    if os.name != "nt":
        desktop = installer.write_desktop_entry(layout, launchers[0], dry_run=False)
        text = desktop.read_text()
        icon = Path(next(line for line in text.splitlines() if line.startswith("Icon="))[5:])
        assert icon.is_file() and icon.resolve().is_relative_to(site.resolve())
        assert f"Exec={launchers[0]} %F" in text


@pytest.mark.skipif(os.name == "nt", reason="POSIX shell installer")
def test_install_sh_dry_run_prints_the_plan_and_changes_nothing(tmp_path):
    prefix = tmp_path / "prefix"
    out = subprocess.run(["sh", str(INSTALLERS / "install.sh"), "--prefix", str(prefix), "--dry-run"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    plan = out.stdout
    assert not prefix.exists()
    assert f"-c {ROOT / 'constraints.txt'}" in plan
    # insightface without its declared requirements, exactly as dev.py installs it
    no_deps_line = next(line for line in plan.splitlines() if "insightface" in line)
    assert "--no-deps" in no_deps_line and "insightface==2.1" in no_deps_line
    assert str(prefix / "env") in plan
    assert str(prefix / "bin" / "faceme-studio") in plan
    if sys.platform.startswith("linux"):
        assert str(prefix / "applications" / "faceme-studio.desktop") in plan
    assert "Pi-Lab License 1.0" in plan and "NON-COMMERCIAL" in plan
    assert "insightface" in plan.lower() and "non-commercial research only" in plan


def test_installer_reads_no_deps_list_from_dev_script():
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "scripts" / "dev.py")
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    assert installer.no_deps_requirements() == dev.NO_DEPS["core"]


def test_install_sh_refuses_a_missing_wheel(tmp_path):
    if os.name == "nt":
        pytest.skip("POSIX shell installer")
    out = subprocess.run(["sh", str(INSTALLERS / "install.sh"), "--prefix", str(tmp_path / "p"),
                          "--wheel", str(tmp_path / "nope.whl")], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "nope.whl: no such wheel" in out.stderr
    assert not (tmp_path / "p").exists()
