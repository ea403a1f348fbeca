"""`faceme catalog`: check the catalog file or copy it while it is in use.

    faceme catalog check [--catalog DB]
    faceme catalog backup TARGET [--catalog DB]
    faceme catalog reanalyse --model dlib|antelopev2|buffalo_l [DIR...] [--models DIR] [--catalog DB]

`check` only reads (header, SQLite's integrity check, foreign keys, schema revision) and exits 5 when
something is wrong; a re-analysis stopped part-way is not wrong: it says how many photos still use the
old face model and how to finish. `backup` makes a consistent copy with SQLite's online backup, even while a scan or
batch writes to the catalog; the copy is checked before it gets its name. `check` also names the
catalog's face model (one per catalog: every scan uses it). `reanalyse` moves the album (every photo of
the catalog, or those under DIR) to another face model, carrying every person, name, confirmation,
rejection and reference over to the face found at the same place, then makes it the catalog's model;
it can be stopped and run again to go on.
"""

from __future__ import annotations

from pathlib import Path

from engine.cli.options import add_command_group
from engine.cli.printable import printable
from engine.cli.progress_bar import ProgressBar
from engine.cli.scan import add_catalog_argument, catalog_url_from, open_catalog_from
from engine.faces.choice import FACE_MODEL_CHOICES
from engine.text import plural


def add_parser(subparsers) -> None:
    sub = add_command_group(subparsers, "catalog", "check the catalog file, or back it up while in use", __doc__)
    q = sub.add_parser("check", help="check the catalog without changing it")
    add_catalog_argument(q)
    q.set_defaults(handler=run_check)
    q = sub.add_parser("backup", help="copy the catalog (SQLite online backup)")
    q.add_argument("target", type=Path, metavar="TARGET", help="new file (or a folder) for the copy")
    add_catalog_argument(q)
    q.set_defaults(handler=run_backup)
    q = sub.add_parser("reanalyse", help="move the album to another face model, keeping people and corrections")
    q.add_argument("--model", required=True, choices=[c for c in FACE_MODEL_CHOICES if c != "auto"],
                   help="the face model to move to (an InsightFace pack must be installed)")
    q.add_argument("folders", nargs="*", type=Path, metavar="DIR",
                   help="only the photos under these folders (default: every photo of the catalog)")
    q.add_argument("--models", type=Path, help="model pack folder, for the InsightFace packs")
    q.add_argument("--workers", type=int, metavar="N", help="processes analysing photos (default: one per core)")
    add_catalog_argument(q)
    q.set_defaults(handler=run_reanalyse)


#: the catalog's tables as the rows they count ("1 person", "2 people")
_TABLE_NOUNS = {"photos": ("photo", "photos"), "faces": ("face", "faces"), "people": ("person", "people"),
                "batch_jobs": ("batch job", "batch jobs")}


def run_check(args) -> int:
    from engine.catalog.face_model import unfinished_move_in_file
    from engine.catalog.maintenance import check_catalog
    from engine.errors import CatalogError

    result = check_catalog(catalog_url_from(args))
    counts = ", ".join(plural(n, *_TABLE_NOUNS.get(table, (table, table))) for table, n in result.counts.items())
    move = unfinished_move_in_file(result.path) if result.other_model_faces else None
    problems = result.problems
    if move is not None:
        # the old model's faces of the photos a stopped re-analysis has not reached yet: the catalog is
        # sound, the re-analysis is to be finished (not a problem of the file)
        problems = [p for p in problems if not p.startswith(f"{plural(result.other_model_faces, 'face')} from "
                                                             "another face model")]
    if not problems:
        behind = "" if result.revision == result.head else f" (schema {result.revision}; this version "\
                                                           f"upgrades it to {result.head} when it opens it)"
        model = f"; face model {result.face_model}" if result.face_model else ""
        unfinished = (f"; {move.text()}: a re-analysis stopped part-way, `{move.command()}` finishes it"
                      if move is not None else "")
        print(f"{printable(result.path)}: ok{behind}; {counts}{model}{unfinished}")
        return 0
    for problem in problems:
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


def run_reanalyse(args) -> int:
    from engine.catalog.face_model import analyzer_name, recorded_model, unfinished_move
    from engine.catalog.scanner import album_roots, reanalyse_album
    from engine.faces.choice import make_face_analyzer
    from engine.settings import Settings

    models_dir = Path(Settings().with_overrides(models_dir=args.models).models_dir)
    analyzer = make_face_analyzer(args.model, models_dir)
    with open_catalog_from(args) as catalog:
        with catalog.session() as session:
            stopped = unfinished_move(session)  # an earlier run stopped part-way: the album was on its old model
            before = stopped.old_model if stopped is not None else recorded_model(session)
        roots = [str(f) for f in args.folders] or album_roots(catalog)
        if not roots:
            print("the catalog has no photos yet; scans will use " + args.model)
        bar = ProgressBar("re-analysing", unit=" photos")
        try:
            result = reanalyse_album(catalog, roots, analyzer, progress=bar, workers=args.workers)
        finally:
            bar.close()
    was = analyzer_name(before) if before else "nothing"
    print(f"re-analysed with {args.model} (was {was}): {result.summary()}")
    return 0
