"""`faceme catalog`: check the catalog file or copy it while it is in use.

    faceme catalog check [--catalog DB]
    faceme catalog backup TARGET [--catalog DB]

`check` only reads (header, SQLite's integrity check, foreign keys, schema revision) and exits 5 when
something is wrong. `backup` makes a consistent copy with SQLite's online backup, even while a scan or
batch writes to the catalog; the copy is checked before it gets its name.
"""

from __future__ import annotations

from pathlib import Path

from engine.cli.options import add_command_group
from engine.cli.printable import printable
from engine.cli.progress_bar import ProgressBar
from engine.cli.scan import add_catalog_argument, catalog_url_from


def add_parser(subparsers) -> None:
    sub = add_command_group(subparsers, "catalog", "check the catalog file, or back it up while in use", __doc__)
    q = sub.add_parser("check", help="check the catalog without changing it")
    add_catalog_argument(q)
    q.set_defaults(handler=run_check)
    q = sub.add_parser("backup", help="copy the catalog (SQLite online backup)")
    q.add_argument("target", type=Path, metavar="TARGET", help="new file (or a folder) for the copy")
    add_catalog_argument(q)
    q.set_defaults(handler=run_backup)


def run_check(args) -> int:
    from engine.catalog.maintenance import check_catalog
    from engine.errors import CatalogError

    result = check_catalog(catalog_url_from(args))
    counts = ", ".join(f"{n} {table}" for table, n in result.counts.items())
    if result.ok:
        behind = "" if result.revision == result.head else f" (schema {result.revision}; this version "\
                                                           f"upgrades it to {result.head} when it opens it)"
        print(f"{printable(result.path)}: ok{behind}; {counts}")
        return 0
    for problem in result.problems:
        print(f"{printable(result.path)}: {problem}")
    return CatalogError.exit_code


def run_backup(args) -> int:
    from engine.catalog.maintenance import backup_catalog

    bar = ProgressBar("backing up", unit=" pages")
    try:
        target = backup_catalog(catalog_url_from(args), args.target, progress=bar)
    finally:
        bar.close()
    print(f"catalog backed up to {printable(target)}")
    return 0
