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


# --- the layering docs/ARCHITECTURE.md documents (issue 10 item 5) -------------------------------------
import ast  # noqa: E402

#: the app's modules that ARCHITECTURE.md calls Qt-free: the work behind the pages
QT_FREE_APP_MODULES = ("app.restore_flow", "app.batch_flow", "app.people_actions", "app.catalog_views",
                       "app.model_pack", "app.model_service", "app.preferences")


def test_the_qt_free_app_modules_are_named_in_the_architecture_and_import_no_qt():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    for module in QT_FREE_APP_MODULES:
        assert f"`{module.split('.')[-1]}.py`" in doc, f"{module} is not in ARCHITECTURE.md's Qt-free list"
    code = (
        "import importlib, sys\n"
        f"for m in {QT_FREE_APP_MODULES!r}:\n"
        "    importlib.import_module(m)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def _imports(tree: ast.AST) -> list[tuple[str, list[str]]]:
    """(module, names) of every import statement, at any depth (imports inside functions count)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


#: what a page may not do itself: read or write files, decode images, scan albums, run models
PAGE_FORBIDDEN_MODULES = ("engine.imageio", "engine.catalog.scanner", "engine.faces", "engine.faceme", "PIL", "cv2",
                          "engine.restore", "sqlalchemy")
PAGE_FORBIDDEN_FUNCTIONS = ("open", "scan", "read_image", "write_image")
PAGE_FORBIDDEN_METHODS = ("read_text", "read_bytes", "write_text", "write_bytes")


def page_violations(source: str) -> list[str]:
    tree = ast.parse(source)
    bad = [module for module, _ in _imports(tree)
           if any(module == f or module.startswith(f + ".") for f in PAGE_FORBIDDEN_MODULES)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in PAGE_FORBIDDEN_FUNCTIONS or \
                    isinstance(node.func, ast.Attribute) and node.func.attr in PAGE_FORBIDDEN_METHODS:
                bad.append(f"{ast.unparse(node.func).split('.')[-1]}() at line {node.lineno}")
    return bad


def test_pages_do_not_read_files_or_run_scans():
    assert page_violations("from engine.imageio import read_image\n") == ["engine.imageio"]
    assert page_violations("def f(c, r):\n    from engine.catalog.scanner import scan\n    scan(c, r)\n") == \
        ["engine.catalog.scanner", "scan() at line 3"]
    assert page_violations("def f(p):\n    return p.read_bytes()\n") == ["read_bytes() at line 2"]
    offenders = {p.name: v for p in _sources("app/pages") if (v := page_violations(p.read_text()))}
    assert offenders == {}


def pil_writes(source: str) -> list[int]:
    """Lines that write a picture with PIL (`<image>.save(…)` in a module that uses PIL) or OpenCV."""
    tree = ast.parse(source)
    uses_pil = any(module == "PIL" or module.startswith("PIL.") for module, _ in _imports(tree))
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr == "imwrite":
            lines.append(node.lineno)
        elif node.func.attr == "save" and uses_pil:
            receiver = ast.unparse(node.func.value)
            if not receiver.split(".")[0] in ("torch", "painter", "self", "model", "pipeline", "state"):
                lines.append(node.lineno)
    return lines


def test_no_picture_is_written_outside_engine_imageio():
    assert pil_writes("from PIL import Image\nImage.fromarray(x).save(p)\n") == [2]
    assert pil_writes("import cv2\ncv2.imwrite(p, x)\n") == [2]
    assert pil_writes("import torch\ntorch.save(state, p)\n") == []
    imageio = ROOT / "engine" / "imageio.py"
    offenders = {str(p.relative_to(ROOT)): lines for package in ("engine", "app", "training")
                 for p in _sources(package) if p != imageio and (lines := pil_writes(p.read_text()))}
    assert offenders == {}


def private_catalog_names(source: str) -> list[str]:
    """Private names (`_x`) of engine.catalog modules that `source` imports or reaches into."""
    tree = ast.parse(source)
    bad = [f"{module}.{name}" for module, names in _imports(tree) if module.startswith("engine.catalog")
           for name in names if name.startswith("_")]
    catalog_aliases = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                       and node.module == "engine.catalog" for alias in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if isinstance(node.value, ast.Name) and node.value.id in catalog_aliases:
                bad.append(f"{node.value.id}.{node.attr}")
    return bad


def test_engine_people_uses_only_the_catalogs_public_names():
    assert private_catalog_names("from engine.catalog.scanner import _like_prefix\n") == \
        ["engine.catalog.scanner._like_prefix"]
    assert private_catalog_names("from engine.catalog import scanner\nscanner._store(1)\n") == ["scanner._store"]
    offenders = {p.name: v for p in _sources("engine/people") if (v := private_catalog_names(p.read_text()))}
    assert offenders == {}


def test_scanning_loads_no_torch():
    """A scan (the CLI with every command's options declared, the scanner and its worker preload) never
    imports torch: 1.3 s and ~200 MB per process that analyses photos with dlib or onnxruntime and has
    no use for it."""
    code = ("import sys, engine.cli, engine.catalog.scanner, engine.faces.dlib_preload, engine.faces.choice\n"
            "engine.cli.build_parser()\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
