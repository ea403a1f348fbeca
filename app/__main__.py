"""Start FaceMe Studio: `python -m app` or the `faceme-studio` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("app")


def build_window(preferences_path: Path | None = None, log_path: Path | None = None, **context_options):
    """The main window over a fresh context (a QApplication must exist). Used by main() and tests."""
    from app.context import AppContext
    from app.main_window import MainWindow
    from app.preferences import Preferences, default_config_path

    from app.model_service import freeze_long_lived_objects

    path = preferences_path or default_config_path()
    context = AppContext(Preferences.load(path), path, log_path, **context_options)
    window = MainWindow(context)
    freeze_long_lived_objects()  # start-up objects live all session: keep them out of GC pauses
    context.warm_up()
    return window


def has_display(environ=os.environ, platform: str = sys.platform) -> bool:
    """Whether Qt can open a window: always on Windows and macOS; on Linux/BSD a display server (X11
    or Wayland) or an explicit QT_QPA_PLATFORM (e.g. offscreen) is needed."""
    if platform.startswith(("win", "darwin")):
        return True
    return any(environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="faceme-studio", description="FaceMe Studio: restore faces in family photos.")
    parser.add_argument("paths", nargs="*", type=Path, help="photos to open in Restore, or folders to add as albums")
    parser.add_argument("--models", type=Path, help="model pack folder (saved in Settings)")
    parser.add_argument("--catalog", help="catalog file or database URL (saved in Settings)")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])

    from app.logs import setup_logging

    log_path = setup_logging()
    log.info("FaceMe Studio starting (log: %s)", log_path)
    from app.system_libraries import check_before_qt

    advice = check_before_qt()
    if advice:  # Qt would abort naming one library, not the packages
        print(advice, file=sys.stderr)
        log.error("missing system libraries for Qt's X11 plugin")
        return 1
    try:
        from PySide6.QtWidgets import QApplication
    except ImportError:
        print("FaceMe Studio needs PySide6: install the app extra (python3 scripts/dev.py start)", file=sys.stderr)
        return 1
    from app import theme

    if not QApplication.instance() and not has_display():
        # Qt would abort with a misleading "reinstall the application" message.
        print("FaceMe Studio needs a graphical desktop, and this session has none (no DISPLAY or "
              "WAYLAND_DISPLAY).\nEverything it does is also on the command line: run `faceme info` "
              "(in the project's .venv/bin/) to see what is installed and how to restore.", file=sys.stderr)
        return 1
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("FaceMe Studio")
    app.setOrganizationName("FaceMe Studio")
    theme.apply(app)
    window = build_window(log_path=log_path)
    prefs = window.context.preferences
    if args.models:
        prefs.models_dir = str(args.models.resolve())
    if args.catalog:
        from engine.catalog.db import normalise_url

        prefs.catalog_url = normalise_url(args.catalog)
    if args.models or args.catalog:
        window.context.save_preferences()
    window.show()
    window.queue.resume_unfinished()
    if args.paths:
        window.handle_dropped_paths([p.resolve() for p in args.paths])
    code = app.exec()
    window.stop_work()  # no thread may outlive the application (Qt aborts on a running QThread's destruction)
    log.info("FaceMe Studio closed")
    return code


if __name__ == "__main__":
    sys.exit(main())
