"""The installed environment's end state: the facts the setup script exists to guarantee."""

import os
import subprocess
import sys
from importlib import metadata

import pytest


def _installed(prefix: str) -> list[str]:
    names = {(dist.metadata["Name"] or "").lower() for dist in metadata.distributions()}
    return sorted(name for name in names if name.startswith(prefix))


def test_exactly_one_opencv_and_it_is_headless():
    # insightface declares the GUI build opencv-python; both share the cv2/ folder and the GUI one
    # sets QT_QPA_PLATFORM_PLUGIN_PATH, breaking PySide6. Only the headless build may be installed.
    assert _installed("opencv") == ["opencv-python-headless"]


def test_exactly_one_onnxruntime_flavour():
    flavours = _installed("onnxruntime")
    assert len(flavours) == 1, flavours
    assert flavours[0] in {"onnxruntime", "onnxruntime-gpu"}


def test_torch_is_the_pinned_build_and_torchvision_absent():
    assert metadata.version("torch").split("+")[0] == "2.13.0"
    assert _installed("torchvision") == []


def test_insightface_imports_without_qt_plugin_side_effects():
    # The GUI OpenCV sets QT_QPA_PLATFORM_PLUGIN_PATH on import; check in a clean process.
    code = ("import os, insightface, cv2; "
            "print(os.environ.get('QT_QPA_PLATFORM_PLUGIN_PATH', 'unset'))")
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM_PLUGIN_PATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "unset"
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("opencv-python")
