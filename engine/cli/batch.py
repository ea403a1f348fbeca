"""`faceme batch`: restore whole albums, resumable after a crash or kill.

    faceme batch DIR... --out OUTDIR [--catalog DB] [--unmatched blind|skip] [--models DIR]
                 [--steps N] [--guidance G] [--seed S] [--device D]

Folders are scanned first (unchanged photos cost nothing). Every photo with a face of a person who
has reference photos is restored with them; photos of nobody referenced are restored blind
(--unmatched blind, default) or skipped (--unmatched skip). OUTDIR mirrors the album's folders.
Running the same command again after an interruption continues the job where it stopped; no photo
is restored twice and no half-written output is left. Ends with a summary: restored, skipped with
reason, failed with reason.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.options import add_models_option, add_restoration_options
from engine.cli.progress_bar import ProgressBar
from engine.cli.scan import add_catalog_argument, open_catalog_from
from engine.errors import UsageError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("batch", help="restore whole albums (resumable)", description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path, metavar="DIR", help="album folders")
    p.add_argument("--out", type=Path, required=True, metavar="OUTDIR", help="output folder (mirrors the album)")
    add_catalog_argument(p)
    p.add_argument("--unmatched", choices=("blind", "skip"), default="blind",
                   help="photos/faces of nobody with references: restore blind (default) or skip")
    add_models_option(p)
    add_restoration_options(p, color_fix=False, memory=False)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from engine.catalog.batch import BatchOptions, FaceMeRestorer, run_job, start_or_resume
    from engine.models.layout import RESTORATION_PARTS, verify_pack
    from engine.errors import ModelPackError
    from engine.settings import Settings

    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        raise UsageError(f"no such folder: {', '.join(missing)}")
    settings = Settings().with_overrides(models_dir=args.models, device=args.device)
    broken = [s for s in verify_pack(settings.models_dir, tuple(RESTORATION_PARTS)) if not s.ok]
    if broken:  # before any scanning: a missing pack is found in a second, not after an hour
        raise ModelPackError(f"the model pack is incomplete ({', '.join(s.name for s in broken)}); "
                             "see `faceme models verify`", settings.models_dir)
    options = BatchOptions(unmatched=args.unmatched, steps=args.steps, guidance_scale=args.guidance,
                           seed=args.seed, models_dir=str(settings.models_dir))
    catalog = open_catalog_from(args)
    try:
        scan_bar = ProgressBar("scanning", unit=" photos")
        job_id = start_or_resume(catalog, args.folders, args.out, options, progress=scan_bar)
        scan_bar.close()
        restorer = FaceMeRestorer(Path(settings.models_dir), device=settings.device, dtype=settings.dtype)
        bar = ProgressBar("restoring", unit=" photos")
        summary = run_job(catalog, job_id, restorer, progress=bar)
        bar.close()
    finally:
        catalog.close()
    for line in summary.lines():
        print(line)
    return 1 if summary.failed else 0
