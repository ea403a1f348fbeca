"""The design's one-way dependencies, checked: app → engine ← training; engine never imports Qt;
the app holds no SQL of its own."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_importing_every_engine_module_loads_no_qt():
    code = (
        "import importlib, pkgutil, sys, engine\n"
        "for m in pkgutil.walk_packages(engine.__path__, 'engine.'):\n"
        "    if '.migrations' not in m.name:  # alembic scripts run inside alembic, not imported\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_engine_and_training_never_import_the_app():
    pattern = re.compile(r"^\s*(from app[. ]|import app\b)", re.MULTILINE)
    offenders = [p for package in ("engine", "training") for p in _sources(package) if pattern.search(p.read_text())]
    assert offenders == []


def test_app_has_no_sql_of_its_own():
    pattern = re.compile(r"^\s*(from sqlalchemy|import sqlalchemy)", re.MULTILINE)
    offenders = [p for p in _sources("app") if pattern.search(p.read_text())]
    assert offenders == []
