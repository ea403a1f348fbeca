"""`faceme batch`: restore whole albums as the album says, resumable after a crash or kill.

    faceme batch DIR... --out OUTDIR [--catalog DB] [--unmatched blind|skip] [--models DIR]
                 [--steps N] [--guidance G] [--seed S] [--min-face-size PX] [--no-color-fix] [--device D]
                 [--memory M] [--tries N] [--no-identity-check] [--identity auto|references] [--verbose] [--json]

Folders are scanned first (unchanged photos cost nothing). Each face is restored as the album says:
with the references of the person it belongs to (confirmed, or grouped by the scan), never with the
identity of a person you said it is not; faces of nobody with references are restored blind
(--unmatched blind, default) or left alone (--unmatched skip). OUTDIR mirrors the album's folders.
Running the same command again after an interruption continues the job where it stopped, with the
options it was started with; no photo is restored twice and no half-written output is left. Ends with
a summary (each photo counted once) and the faces to review (the identity check says they may not look
like the person any more); --verbose adds each restored photo's faces: person, action, reason, seed
and the check's verdict; --json prints all of it as one JSON object. --tries N restores every face with
N seeds and keeps the one most like the person; a face still drifted after its N tries is not retried
further: it is listed to review (the Queue retries it with one click). An OUTDIR inside an album, or one
containing an album, is refused before anything runs (exit 2); a batch that another live process runs
is refused (exit 6; `faceme jobs list` shows who runs it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.cli.options import add_check_options, add_json_option, add_models_option, add_restoration_options
from engine.cli.printable import printable
from engine.cli.progress_bar import ProgressBar
from engine.cli.recipe_options import add_recipe_options, recipe_from_args
from engine.cli.scan import add_catalog_argument, open_catalog_from
from engine.errors import UsageError


def add_parser(subparsers) -> None:
    from engine.restore.options import DEFAULT_MIN_FACE_SIZE

    p = subparsers.add_parser("batch", help="restore whole albums (resumable)", description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path, metavar="DIR", help="album folders")
    p.add_argument("--out", type=Path, required=True, metavar="OUTDIR", help="output folder (mirrors the album)")
    add_catalog_argument(p)
    p.add_argument("--unmatched", choices=("blind", "skip"), default="blind",
                   help="faces of nobody with references: restore blind (default) or leave alone")
    p.add_argument("--min-face-size", type=float, default=DEFAULT_MIN_FACE_SIZE, metavar="PX",
                   help=f"leave faces smaller than this alone (default {DEFAULT_MIN_FACE_SIZE} px)")
    add_models_option(p)
    add_restoration_options(p)
    add_check_options(p)
    p.add_argument("--identity", choices=("auto", "references"), default="auto",
                   help="an album person's identity: what was learned of them where the held-out check kept it "
                        "(auto, default; `faceme people learn`), or their references alone")
    add_json_option(p)
    add_recipe_options(p)
    # its own dest: `faceme -v` (logging) is the main parser's "verbose"
    p.add_argument("--verbose", dest="show_faces", action="store_true",
                   help="print each restored photo's faces: person, action, reason, seed")
    p.set_defaults(handler=run)


def check_pack(models_dir: str | Path) -> None:
    """ModelPackError (exit 4) when the pack is incomplete: found in a second, before any scanning."""
    from engine.errors import ModelPackError
    from engine.models.layout import RESTORATION_PARTS, verify_pack

    broken = [s for s in verify_pack(models_dir, tuple(RESTORATION_PARTS)) if not s.ok]
    if broken:
        raise ModelPackError(f"the model pack is incomplete ({', '.join(s.name for s in broken)}); "
                             "see `faceme models verify`", models_dir)


def run_batch_job(catalog, job_id: int, models: Path | None = None, device: str | None = None,
                  show_faces: bool = False, as_json: bool = False) -> int:
    """Run a job's pending photos with the options it was recorded with (`models` / `device` override its
    model folder / device), print the summary; the exit code. `faceme batch` and `faceme jobs
    resume|retry` both end here. JobBusyError (exit 6) when another live process runs the job."""
    from engine.catalog.jobs import get_job_options
    from engine.catalog.leases import owner_of
    from engine.errors import JobBusyError
    from engine.restore.batch import ServiceRestorer, run_job
    from engine.restore.options import RestoreOptions
    from engine.restore.service import get_service
    from engine.settings import Settings

    recorded = RestoreOptions.from_dict(get_job_options(catalog, job_id))
    owner = owner_of(catalog, job_id)
    if owner is not None and owner.elsewhere:  # a word before the pack check; the lease guards the run
        raise JobBusyError(f"batch {job_id} is {owner.describe()}; it is not run here. Wait for it to finish, "
                           f"or stop it with `faceme jobs cancel {job_id}`", owner=owner.describe())
    settings = Settings().with_overrides(models_dir=models or recorded.models_dir, device=device or recorded.device)
    check_pack(settings.models_dir)
    service = get_service(settings.models_dir, settings.device, recorded.dtype or settings.dtype, recorded.memory)
    bar = ProgressBar("restoring", unit=" photos")
    try:
        summary = run_job(catalog, job_id, ServiceRestorer(service), progress=bar)
    finally:
        bar.close()
    if as_json:
        print(json.dumps(summary.as_dict(), indent=2))
        return 1 if summary.failed else 0
    for line in summary.lines(verbose=show_faces):
        print(printable(line))  # a newline in a file name must not split a line
    if show_faces:
        for line in _earlier_records(catalog, job_id, summary) + _references_used(catalog, summary):
            print(printable(line))
    if summary.total and summary.already_done == summary.total and not summary.reopened:
        print(f"batch {job_id} had finished already: nothing new to restore. Photos added to the album and outputs "
              "deleted since are restored when the same command runs again (with the options the batch was "
              "started with; choose another --out to restore anew)")
    return 1 if summary.failed else 0


def _earlier_records(catalog, job_id: int, summary) -> list[str]:
    """Each photo of the job restored in an earlier run, with its faces' records (--verbose)."""
    from engine.catalog.jobs import get_job

    this_run = {path for path, _ in summary.faces}
    lines = []
    for item in get_job(catalog, job_id).items:
        if item.status == "done" and str(item.photo) not in this_run:
            lines.append(f"restored in an earlier run: {item.photo} → {item.output}")
            lines += [f"  {face.describe()}" for face in item.faces]
    return lines


def _references_used(catalog, summary) -> list[str]:
    """The references of each person restored in this run with their references as chosen (no time
    known; a face restored by age names its own references in its reason) (--verbose)."""
    from engine.catalog.models import Person
    from engine.restore.album import person_identity

    people = sorted({face.person_id for _, faces in summary.faces for face in faces
                     if face.action == "restored" and face.person_id is not None
                     and "references near" not in face.reason and "no reference of" not in face.reason})
    lines = []
    with catalog.session() as session:
        for person_id in people:
            person = session.get(Person, person_id)
            identity = person_identity(session, person) if person is not None else None
            if identity is not None:
                used = ", ".join(f"#{ref.face_id} {ref.photo_path}" for ref in identity.faces)
                lines.append(f"references of {identity.name} (person {person_id}): {used}")
    return lines


def run(args: argparse.Namespace) -> int:
    from engine.catalog.jobs import check_output_folder, start_or_resume
    from engine.restore.options import RestoreOptions
    from engine.settings import Settings

    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        raise UsageError(f"no such folder: {', '.join(missing)}")
    check_output_folder(args.folders, args.out)  # before the catalog is even opened: nothing is written
    settings = Settings().with_overrides(models_dir=args.models, device=args.device, memory=args.memory)
    check_pack(settings.models_dir)
    options = RestoreOptions(unmatched=args.unmatched, steps=args.steps, guidance_scale=args.guidance,
                             seed=args.seed, color_fix=args.color_fix, min_face_size=args.min_face_size,
                             models_dir=str(Path(settings.models_dir).resolve()), device=settings.device,
                             dtype=settings.dtype, memory=settings.memory, identity_check=args.identity_check,
                             tries=args.tries, identity=args.identity, recipe=recipe_from_args(args))
    if options.recipe is not None and options.recipe.mask_file:
        raise UsageError("--mask is one photo's damage mask; a batch finds each photo's own (leave --mask out)")
    with open_catalog_from(args) as catalog:
        from engine.catalog.face_model import analyzer_for_catalog

        scan_bar = ProgressBar("scanning", unit=" photos")
        # the pre-scan finds faces with the catalog's own model (a pack in --models if that is it)
        job_id = start_or_resume(catalog, args.folders, args.out, options, progress=scan_bar,
                                 analyzer=analyzer_for_catalog(catalog, settings.models_dir))
        scan_bar.close()
        # the job's recorded options (a resumed job keeps those it was started with)
        return run_batch_job(catalog, job_id, show_faces=args.show_faces, as_json=args.as_json)
