"""`faceme scan`: scan album folders into the catalog and group their faces into people.

    faceme scan DIR... [--catalog DB] [--faces dlib|buffalo_l|antelopev2] [--models DIR] [--no-thumbnails]

Incremental: unchanged photos cost nothing, moved ones keep their people, deleted ones are marked
missing. The catalog is SQLite at the user data folder unless `--catalog` / $FACEME_CATALOG names a
file or any SQLAlchemy URL (e.g. postgresql+psycopg://user@nas/faceme). Faces are analysed with the
embedded dlib models by default (no download); `--faces buffalo_l` or `antelopev2` uses that
InsightFace pack from the model folder instead. People are per face model: scanning with another
model adds its faces and people beside the existing ones.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from engine.cli.progress_bar import ProgressBar

log = logging.getLogger(__name__)


def add_catalog_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalog", metavar="DB",
                        help="catalog file or SQLAlchemy URL (default: $FACEME_CATALOG or the user data folder)")


def open_catalog_from(args: argparse.Namespace):
    """The catalog the command names. The default catalog's folder (the user data folder) is created
    on first use; a --catalog in a folder that does not exist is refused (CatalogError), because a
    mistyped path would otherwise start a new, empty catalog silently. The file itself is created
    inside an existing folder: the first scan starts a catalog."""
    from engine.catalog.db import normalise_url, open_catalog
    from engine.settings import Settings

    explicit = getattr(args, "catalog", None)
    url = normalise_url(explicit) if explicit else Settings().catalog_url
    return open_catalog(url, create_folder=not explicit)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("scan", help="scan album folders into the catalog and group faces into people",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path, metavar="DIR", help="album folders (or single photos)")
    add_catalog_argument(p)
    p.add_argument("--faces", choices=("dlib", "buffalo_l", "antelopev2"), default="dlib",
                   help="face analysis: embedded dlib (default) or an installed InsightFace pack")
    p.add_argument("--models", type=Path, help="model pack folder, for --faces buffalo_l/antelopev2")
    p.add_argument("--no-thumbnails", dest="thumbnails", action="store_false", help="don't cache thumbnails")
    p.set_defaults(handler=run)


def make_analyzer(name: str, models_dir: Path | None):
    """The face analyser a scan uses: dlib (embedded) or an InsightFace pack from the model folder."""
    if name == "dlib":
        from engine.faces.dlib_backend import DlibFaceAnalyzer

        return DlibFaceAnalyzer()
    from engine.faces.insightface_backend import InsightFaceAnalyzer
    from engine.models.layout import part_dir
    from engine.settings import Settings

    settings = Settings().with_overrides(models_dir=models_dir)
    return InsightFaceAnalyzer(part_dir(Path(settings.models_dir), name))


def run(args: argparse.Namespace) -> int:
    from engine.catalog.scanner import scan
    from engine.errors import UsageError

    missing = [str(f) for f in args.folders if not f.exists()]
    if missing:
        raise UsageError(f"no such folder: {', '.join(missing)}")
    catalog = open_catalog_from(args)
    bar = ProgressBar("scanning", unit=" photos")
    try:
        result = scan(catalog, args.folders, analyzer=make_analyzer(args.faces, args.models), progress=bar,
                      thumbnails=args.thumbnails)
    finally:
        bar.close()
        catalog.close()
    print(f"scanned: {result.summary()}")
    if result.clustering is not None:
        c = result.clustering
        print(f"people: {c.joined} faces joined people, {c.new_people} new people, {c.unknown} faces unknown")
    for path, reason in result.unreadable:
        print(f"unreadable: {path}: {reason}")
    for path, reason in result.skipped_folders:
        print(f"skipped: {path}: {reason}")
    return 0
