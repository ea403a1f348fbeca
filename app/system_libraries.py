"""The system libraries Qt's X11 (xcb) platform plugin needs, checked before Qt starts.

Without them Qt aborts with "Could not load the Qt platform plugin xcb … reinstalling the application
may fix this problem", naming at best one library and never the package. This module checks each
library by loading it, and names the missing Debian/Ubuntu and Fedora packages with the line that
installs them. Standard library only: `scripts/dev.py` loads this file directly (before any virtual
environment exists) and `app/__main__.py` calls it before importing PySide6.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Mapping

#: library file -> (Debian/Ubuntu package, Fedora package): what Qt 6's libqxcb.so, libQt6XcbQpa and
#: libQt6Gui link to outside the wheel (libxcb-cursor is also loaded at run time by Qt >= 6.5). Only
#: these: a library Qt does not need must never stop the app (tests compare the list with `ldd`).
QT_XCB_LIBRARIES: dict[str, tuple[str, str]] = {
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
}


def _loadable(name: str) -> bool:
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


def uses_xcb(environ: Mapping[str, str] = os.environ, platform: str = sys.platform) -> bool:
    """Whether Qt will use its X11 plugin: Linux/BSD with an X display, unless another platform is
    asked for (QT_QPA_PLATFORM) or a Wayland session is there (Qt 6 prefers Wayland)."""
    if platform.startswith(("win", "darwin")):
        return False
    asked = environ.get("QT_QPA_PLATFORM", "")
    if asked:
        return asked.split(";")[0].startswith("xcb")
    return bool(environ.get("DISPLAY")) and not environ.get("WAYLAND_DISPLAY")


def missing_libraries(libraries: Mapping[str, tuple[str, str]] = QT_XCB_LIBRARIES,
                      loadable: Callable[[str], bool] = _loadable) -> list[str]:
    """The library files of `libraries` the dynamic loader cannot find."""
    return [name for name in libraries if not loadable(name)]


def install_advice(missing: list[str], libraries: Mapping[str, tuple[str, str]] = QT_XCB_LIBRARIES) -> str:
    """What to tell the user: the missing libraries and the apt / dnf line that installs them."""
    debian = sorted({libraries[name][0] for name in missing})
    fedora = sorted({libraries[name][1] for name in missing})
    return (f"FaceMe Studio's window needs system libraries that are not installed: {', '.join(missing)}.\n"
            f"Install them, then start again:\n"
            f"  Debian / Ubuntu:  sudo apt-get install {' '.join(debian)}\n"
            f"  Fedora:           sudo dnf install {' '.join(fedora)}\n"
            f"(Everything else also works without a window: `faceme --help`.)")


def check_before_qt(environ: Mapping[str, str] = os.environ, platform: str = sys.platform,
                    libraries: Mapping[str, tuple[str, str]] = QT_XCB_LIBRARIES,
                    loadable: Callable[[str], bool] = _loadable) -> str | None:
    """The advice when Qt would use xcb and libraries are missing; None when all is well."""
    if not uses_xcb(environ, platform):
        return None
    missing = missing_libraries(libraries, loadable)
    return install_advice(missing, libraries) if missing else None
