"""`faceme scan`: scan album folders into the catalog and group their faces into people.

    faceme scan DIR... [--catalog DB] [--faces auto|dlib|buffalo_l|antelopev2] [--models DIR]
                       [--workers N] [--follow-links] [--no-thumbnails]

Incremental: unchanged photos cost nothing, moved ones keep their people, deleted ones are marked
missing. The catalog is SQLite at the user data folder unless `--catalog` / $FACEME_CATALOG names a
file or any SQLAlchemy URL (e.g. postgresql+psycopg://user@nas/faceme). A catalog keeps one face
model: its faces are found and embedded with the model of its first scan (an installed InsightFace
pack, antelopev2, else buffalo_l, from the model folder, or without one the embedded dlib models, no
download; `--faces` chooses for a new catalog), and every later scan uses that model; `--faces` naming
another is refused. `faceme catalog reanalyse --model M` moves the whole album to another model,
carrying every person, name, correction and reference over to the face found at the same place.
Photos are analysed by `--workers` processes (default: one per core). Symlinks leading outside the
album are not followed unless `--follow-links`.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from engine.cli.printable import printable
from engine.cli.progress_bar import ProgressBar
from engine.faces.choice import FACE_MODEL_CHOICES
from engine.text import plural

log = logging.getLogger(__name__)


def add_catalog_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalog", metavar="DB",
                        help="catalog file or SQLAlchemy URL (default: $FACEME_CATALOG or the user data folder)")


def open_catalog_from(args: argparse.Namespace):
    """The catalog the command names. The default catalog's folder (the user data folder) is created
    on first use; a --catalog in a folder that does not exist is refused (CatalogError), because a
    mistyped path would otherwise start a new, empty catalog silently. The file itself is created
    inside an existing folder: the first scan starts a catalog."""
    from engine.catalog.db import open_catalog

    return open_catalog(catalog_url_from(args), create_folder=not getattr(args, "catalog", None))


def catalog_url_from(args: argparse.Namespace) -> str:
    """The URL of the catalog the command names (--catalog, else the user's settings)."""
    from engine.catalog.db import normalise_url
    from engine.settings import Settings

    explicit = getattr(args, "catalog", None)
    return normalise_url(explicit) if explicit else Settings().catalog_url


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("scan", help="scan album folders into the catalog and group faces into people",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path, metavar="DIR", help="album folders (or single photos)")
    add_catalog_argument(p)
    p.add_argument("--faces", choices=FACE_MODEL_CHOICES, default="auto",
                   help="face analysis: auto (the catalog's model; for a new catalog an installed InsightFace "
                        "pack, else the embedded dlib), dlib, or a pack (only the catalog's own)")
    p.add_argument("--models", type=Path, help="model pack folder, for the InsightFace packs")
    p.add_argument("--workers", type=int, metavar="N",
                   help=f"processes analysing photos (default: one per core, {os.cpu_count() or 1} here)")
    p.add_argument("--follow-links", action="store_true",
                   help="also follow symlinks/junctions that lead outside the album folders")
    p.add_argument("--no-thumbnails", dest="thumbnails", action="store_false", help="don't cache thumbnails")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from engine.errors import UsageError
    from engine.faces.choice import resolve_face_model
    from engine.faces.photo_analysis import default_workers, start_worker_server
    from engine.settings import Settings

    missing = [str(f) for f in args.folders if not f.exists()]
    if missing:
        raise UsageError(f"no such folder: {', '.join(missing)}")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    models_dir = Path(Settings().with_overrides(models_dir=args.models).models_dir)
    if (args.workers or default_workers()) > 1:
        # the workers' process loads dlib's models (≈ 1 s) or imports InsightFace while this one imports
        # and opens the catalog (a guess from what is installed: the catalog's own model decides below)
        start_worker_server(dlib=resolve_face_model(args.faces, models_dir) == "dlib")
    from engine.catalog.face_model import analyzer_for_catalog
    from engine.catalog.scanner import scan

    catalog = open_catalog_from(args)
    bar = ProgressBar("scanning", unit=" photos")

    def waiting(message: str) -> None:
        print(f"\n{message} …", flush=True)

    try:
        analyzer = analyzer_for_catalog(catalog, models_dir, args.faces)
        result = scan(catalog, args.folders, analyzer=analyzer, progress=bar, thumbnails=args.thumbnails,
                      workers=args.workers, follow_links=args.follow_links, on_wait=waiting)
    finally:
        bar.close()
        catalog.close()
    print(f"scanned: {result.summary()}")
    if result.clustering is not None:
        c = result.clustering
        print(f"people: {plural(c.joined, 'face')} joined people, {plural(c.new_people, 'new person', 'new people')}, "
              f"{plural(c.unknown, 'face')} unknown")
    for path, reason in result.unreadable:
        print(f"unreadable: {printable(path)}: {printable(reason)}")
    for path, reason in result.skipped_folders:
        print(f"skipped: {printable(path)}: {printable(reason)}")
    if result.outside_links:
        print(f"not followed: {plural(len(result.outside_links), 'link')} leading outside the album, e.g. "
              f"{printable(result.outside_links[0])} (--follow-links to include them)")
    return 0
