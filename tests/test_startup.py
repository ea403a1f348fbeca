"""Start-up (issue 14, item 14): missing X11 libraries for Qt are named with the apt / dnf line before Qt
starts, and `scripts/dev.py start` after `test` reuses the (superset) environment without pip."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app import system_libraries
from app.system_libraries import QT_XCB_LIBRARIES, check_before_qt, missing_libraries, uses_xcb

ROOT = Path(__file__).resolve().parent.parent
FAKE = "libfaceme-not-installed-anywhere.so.7"


@pytest.fixture
def dev(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("faceme_dev_script", ROOT / "scripts" / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_x11_plugin_is_expected_only_where_qt_would_use_it():
    assert uses_xcb({"DISPLAY": ":0"}, "linux")
    assert not uses_xcb({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert not uses_xcb({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert not uses_xcb({"DISPLAY": ":0"}, "win32") and not uses_xcb({}, "linux")


def test_a_missing_library_is_named_with_the_packages_that_install_it(monkeypatch):
    monkeypatch.setitem(QT_XCB_LIBRARIES, FAKE, ("libfaceme-fake7", "faceme-fake"))
    advice = check_before_qt({"DISPLAY": ":0"}, "linux")
    assert FAKE in advice
    apt = next(line for line in advice.splitlines() if "apt-get install" in line)
    dnf = next(line for line in advice.splitlines() if "dnf install" in line)
    assert "libfaceme-fake7" in apt and "faceme-fake" in dnf
    assert check_before_qt({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None


def test_the_list_is_what_qts_xcb_plugin_links_to_on_this_machine():
    """Every library the dynamic loader reports missing for the installed Qt xcb plugin is in the list,
    the check finds it missing too, and the list names nothing Qt does not link to."""
    pyside = importlib.util.find_spec("PySide6")
    ldd = shutil.which("ldd")
    if pyside is None or ldd is None or not sys.platform.startswith("linux"):
        pytest.skip("needs PySide6 and ldd on Linux")
    qt = Path(pyside.origin).parent / "Qt"
    binaries = [qt / "plugins" / "platforms" / "libqxcb.so", *sorted((qt / "lib").glob("libQt6XcbQpa.so.*"))[:1],
                *sorted((qt / "lib").glob("libQt6Gui.so.*"))[:1], *sorted((qt / "lib").glob("libQt6DBus.so.*"))[:1]]
    named, not_found = set(), set()
    for binary in binaries:
        out = subprocess.run([ldd, str(binary)], capture_output=True, text=True).stdout
        named |= {line.split()[0] for line in out.splitlines() if "=>" in line}
        not_found |= {line.split()[0] for line in out.splitlines() if "not found" in line}
    assert not_found <= set(QT_XCB_LIBRARIES), not_found - set(QT_XCB_LIBRARIES)
    assert not_found <= set(missing_libraries())
    assert set(QT_XCB_LIBRARIES) <= named, set(QT_XCB_LIBRARIES) - named  # nothing Qt does not need


def test_dev_start_names_missing_packages_before_any_setup(dev, monkeypatch, capsys):
    monkeypatch.setitem(QT_XCB_LIBRARIES, FAKE, ("libfaceme-fake7", "faceme-fake"))
    monkeypatch.setattr(dev, "system_libraries", lambda: system_libraries)
    monkeypatch.setattr(dev, "ensure_env", lambda extras: pytest.fail("set-up ran before the library check"))
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    assert dev.main(["start"]) == 1
    err = capsys.readouterr().err
    assert FAKE in err and "sudo apt-get install" in err and "sudo dnf install" in err


def test_dev_start_for_real_on_a_machine_missing_qts_libraries(tmp_path):
    if not sys.platform.startswith("linux") or not missing_libraries():
        pytest.skip("this machine has every library Qt's X11 plugin needs (start would set up and run the app)")
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["DISPLAY"] = ":99"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "dev.py"), "start"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "sudo apt-get install" in done.stderr and "Traceback" not in done.stderr
    for name in missing_libraries():
        assert QT_XCB_LIBRARIES[name][0] in done.stderr
    assert "pip" not in done.stdout


def test_start_after_test_does_not_run_pip_again(dev, monkeypatch, tmp_path):
    venv = tmp_path / ".venv"
    python = venv / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    calls = []
    monkeypatch.setattr(dev, "VENV", venv)
    monkeypatch.setattr(dev, "venv_python", lambda: python)
    monkeypatch.setattr(dev, "pip", lambda *args: calls.append(args))

    dev.ensure_env(dev.EXTRAS["test"])
    assert len(calls) == 2  # the project with its extras, then the --no-deps packages
    dev.ensure_env(dev.EXTRAS["start"])
    dev.ensure_env(dev.EXTRAS["test"])
    assert len(calls) == 2

    # the other way round: start's environment is not enough for the tests
    (venv / ".faceme-setup").unlink()
    dev.ensure_env(dev.EXTRAS["start"])
    assert len(calls) == 4
    dev.ensure_env(dev.EXTRAS["test"])
    assert len(calls) == 6
    # a changed pyproject/constraints means a new setup, whatever was there
    monkeypatch.setattr(dev, "files_digest", lambda: "0" * 64)
    dev.ensure_env(dev.EXTRAS["start"])
    assert len(calls) == 8
