"""Start FaceMe Studio: `python -m app` or the `faceme-studio` command."""

from __future__ import annotations

import argparse
import logging
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="faceme-studio", description="FaceMe Studio: restore faces in family photos.")
    parser.add_argument("paths", nargs="*", type=Path, help="photos to open in Restore, or folders to add as albums")
    parser.add_argument("--models", type=Path, help="model pack folder (saved in Settings)")
    parser.add_argument("--catalog", help="catalog file or database URL (saved in Settings)")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])

    from app.logs import setup_logging

    log_path = setup_logging()
    log.info("FaceMe Studio starting (log: %s)", log_path)
    try:
        from PySide6.QtWidgets import QApplication
    except ImportError:
        print("FaceMe Studio needs PySide6: install the app extra (python3 scripts/dev.py start)", file=sys.stderr)
        return 1
    from app import theme

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
    log.info("FaceMe Studio closed")
    return code


if __name__ == "__main__":
    sys.exit(main())
