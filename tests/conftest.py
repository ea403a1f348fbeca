"""Shared fixtures: the ../shared folder, a tiny model pack built once per session, an in-process CLI."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FACEME_SHARED", ROOT.parent / "shared"))

# Qt must know it has no screen before any QApplication exists.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not present (the shared data folder beside the project)")
    return SHARED


@pytest.fixture
def run_cli(capsys):
    """Run `faceme ARGS…` in-process; returns (exit code, stdout, stderr)."""
    from engine.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors and --help
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
