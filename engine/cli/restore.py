"""`faceme restore`: restore every face of a photo, keeping each person's identity.

    faceme restore PHOTO [--person NAME=IMG[,IMG…]]… [--ref NAME=IMG]… -o OUT [--unmatched blind|skip]
                   [--catalog DB]
                   [--models DIR] [--steps N] [--guidance G] [--seed S] [--min-face-size PX] [--max-faces N]
                   [--match-threshold T] [--no-color-fix] [--device D] [--memory M] [--tries N]
                   [--no-identity-check] [--identity auto|references] [--json]

With `--catalog DB`, the photo is restored exactly as `faceme batch` would restore it: its faces, the
people the album says they are (with the user's corrections) and their references; a photo the album
does not know yet is scanned into it first (with the catalog's face model), and the restoration is
recorded in the catalog. Without it, for a photo outside any album, faces are
found with the pack's detector (inputs 640 → 256 px until one is found), and each is matched to one
of the people given with --person (ArcFace similarity to their reference photos; a reference photo
must show one face); a matched face is restored with that person's references, a face of nobody
known is restored blind (default) or left alone (--unmatched skip), and faces smaller than
--min-face-size are left alone. The output keeps the photo's size, format, EXIF and colour profile.
Each restored face is checked with a recogniser independent of FaceMe's (does it still look like the
person's references? blind: like the unrestored face?); --tries N restores each face with N seeds and
keeps the one the check rates most like the person. Prints one line per face: who it was matched to
(or not), why, the seed and the check's verdict with its figures (--json: one JSON object). Exit 3
(nothing written) when the photo has no face.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from engine.cli.options import add_check_options, add_json_option, add_models_option, add_restoration_options
from engine.cli.progress_bar import ProgressBar
from engine.cli.recipe_options import add_recipe_options, recipe_from_args
from engine.errors import UsageError
from engine.settings import Settings
from engine.text import plural

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    from engine.restore.options import DEFAULT_MIN_FACE_SIZE

    p = subparsers.add_parser("restore", help="restore every face of a photo (whole-photo restoration)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("photo", type=Path, metavar="PHOTO", help="the photo to restore (never modified)")
    p.add_argument("--person", action="append", default=[], metavar="NAME=IMG[,IMG…]",
                   help="a person and their reference photos (repeat for several people; each --person is "
                        "one person, even when two share a name). A value that names an existing file is "
                        "that one file, commas and all; otherwise it is split at commas")
    p.add_argument("--ref", action="append", default=[], metavar="NAME=IMG",
                   help="one more reference photo of NAME, taken as one file name whatever it contains "
                        "(for names with commas); adds to the last --person NAME, or makes a new person")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                   help="where to write the restored photo (must not be PHOTO)")
    p.add_argument("--unmatched", choices=("blind", "skip"), default="blind",
                   help="faces of nobody given: restore without identity (blind, default) or leave alone")
    add_models_option(p)
    p.add_argument("--min-face-size", type=float, default=DEFAULT_MIN_FACE_SIZE, metavar="PX",
                   help=f"leave faces smaller than this alone (default {DEFAULT_MIN_FACE_SIZE} px)")
    p.add_argument("--max-faces", type=int, default=None, metavar="N",
                   help="restore at most the N largest faces (default: all)")
    p.add_argument("--match-threshold", type=float, default=None, metavar="T",
                   help="similarity needed to match a person (default: the face model's documented value)")
    p.add_argument("--catalog", metavar="DB",
                   help="restore as the album says (its people, corrections and references) from this catalog "
                        "file or URL, scanning the photo into it first when it is new; no --person/--ref then")
    add_restoration_options(p)
    add_check_options(p)
    p.add_argument("--identity", choices=("auto", "references"), default="auto",
                   help="an album person's identity: what was learned of them where the held-out check kept it "
                        "(auto, default; `faceme people learn`), or their references alone")
    add_json_option(p)
    add_recipe_options(p)
    p.set_defaults(handler=run)


def _split_person(text: str, option: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise UsageError(f"{option} needs NAME={'IMG' if option == '--ref' else 'IMG[,IMG…]'}, got {text!r}")
    return name, value


def parse_person(text: str):
    """`NAME=IMG[,IMG…]` -> PersonReferences. A value naming an existing file is that file (its name may
    hold commas); otherwise it is split at commas and every piece must exist."""
    from engine.restore.plan import PersonReferences

    name, value = _split_person(text, "--person")
    if Path(value).is_file():
        return PersonReferences(name, [Path(value)])
    paths = [Path(p.strip()) for p in value.split(",") if p.strip()]
    for path in paths:
        if not path.is_file():
            hint = (" (a file name with a comma: give it with --ref NAME=FILE)" if "," in value else "")
            raise UsageError(f"reference photo of {name} not found{hint}", path)
    return PersonReferences(name, paths)


def parse_people(person_args: list[str], ref_args: list[str]) -> list:
    """Every --person (one person each), then each --ref added to the last person of that name."""
    from engine.restore.plan import PersonReferences

    people = [parse_person(text) for text in person_args]
    for text in ref_args:
        name, value = _split_person(text, "--ref")
        path = Path(value)
        if not path.is_file():
            raise UsageError(f"reference photo of {name} not found", path)
        same = [i for i, p in enumerate(people) if p.name == name]
        if same:
            person = people[same[-1]]
            people[same[-1]] = PersonReferences(name, [*person.images, path])
        else:
            people.append(PersonReferences(name, [path]))
    return people


def describe(index: int, outcome) -> str:
    """"face 1: (x1,y1)-(x2,y2) 120 px: restored as Ann — reason; seed 3; looks like Ann (0.930; before 0.910)"."""
    from engine.restore.identity_check import describe_short

    x1, y1, x2, y2 = (int(round(v)) for v in outcome.face.box)
    what = {"restored": f"restored as {outcome.person}", "blind": "restored blind",
            "skipped": "left alone"}[outcome.action]
    line = f"face {index}: ({x1},{y1})-({x2},{y2}) {outcome.face.size:.0f} px: {what} — {outcome.reason}"
    if outcome.seed is not None:
        line += f"; seed {outcome.seed}"
        if outcome.tries:
            line += f" (best of {len(outcome.tries)})"
    if outcome.identity_used:
        line += f"; identity: {outcome.identity_used}"
    if outcome.check is not None:
        line += f"; {describe_short(outcome.check)}"
    return line


def outcome_dict(index: int, outcome) -> dict:
    """One face of `--json` output."""
    return {"face": index, "box": [round(float(v), 1) for v in outcome.face.box], "action": outcome.action,
            "person": outcome.person, "reason": outcome.reason, "seed": outcome.seed,
            "tries": [{"seed": t.seed, "score": round(t.score, 6)} for t in outcome.tries],
            "identity_used": outcome.identity_used,
            "check": None if outcome.check is None else outcome.check.as_dict()}


def run(args: argparse.Namespace) -> int:
    from engine.imageio import read_image, write_image
    from engine.restore.options import RestoreOptions
    from engine.restore.photo import same_file
    from engine.restore.service import service_for

    people = parse_people(args.person, args.ref)
    if same_file(args.photo, args.output):
        raise UsageError("the output would overwrite the input photo; choose another output path", args.output)
    settings = Settings().with_overrides(models_dir=args.models, device=args.device, memory=args.memory)
    options = RestoreOptions(steps=args.steps, guidance_scale=args.guidance, seed=args.seed,
                             color_fix=args.color_fix, unmatched=args.unmatched,
                             min_face_size=args.min_face_size, match_threshold=args.match_threshold,
                             max_faces=args.max_faces, models_dir=str(settings.models_dir),
                             device=settings.device, dtype=settings.dtype, memory=settings.memory,
                             identity_check=args.identity_check, tries=args.tries, identity=args.identity,
                             recipe=recipe_from_args(args))
    if args.catalog:
        if people:
            raise UsageError("--catalog restores with the album's people; leave out --person and --ref (or "
                             "--catalog, to name the people here)")
        result = _restore_as_the_album_says(args, settings, options)
    else:
        from engine.restore.identity import read_references

        loaded = read_image(args.photo)  # bad photos fail here, before the model is loaded
        people = read_references(people)  # each read once: for matching, the tokens and the check
        service = service_for(options)  # the process's service (in-process callers reuse its pipeline)
        if options.recipe is not None:  # the whole print first; faces are found on the result (issue 24)
            from engine.cli.recipe_options import plan_repaired_ad_hoc

            loaded, plan = plan_repaired_ad_hoc(service, loaded, people, options, args.photo)
        else:
            plan = service.plan_ad_hoc(loaded.pixels, people, options, source=args.photo)
        bar = ProgressBar("restoring")
        try:
            result = service.restore(loaded, plan, options, progress=bar)
        finally:
            bar.close()
        write_image(args.output, result.pixels, like=loaded)
    if args.as_json:
        print(json.dumps({"photo": str(args.photo), "output": str(args.output), "restored": result.restored_count,
                          "faces": [outcome_dict(i, o) for i, o in enumerate(result.faces, start=1)]}, indent=2))
        return 0
    for i, outcome in enumerate(result.faces, start=1):
        print(describe(i, outcome))
    if not result.faces and options.recipe is not None:
        print("no face was found; the repaired photo was written")
    print(f"{result.restored_count} of {plural(len(result.faces), 'face')} restored → {args.output}")
    return 0


def _restore_as_the_album_says(args: argparse.Namespace, settings, options):
    """The batch's path for one photo: the album's plan (scanning the photo in when it is new), the
    output written, the restoration recorded with its faces."""
    from engine.catalog.face_model import analyzer_for_catalog
    from engine.catalog.jobs import record_restoration
    from engine.catalog.scanner import scan
    from engine.cli.scan import open_catalog_from
    from engine.errors import NoFaceError
    from engine.imageio import read_image
    from engine.restore.batch import face_records, nothing_restored
    from engine.restore.service import service_for

    read_image(args.photo)  # bad photos fail here, before the catalog or the model
    with open_catalog_from(args) as catalog:
        photo_id = _album_photo_id(catalog, args.photo)
        if photo_id is None:
            result = scan(catalog, [args.photo], analyzer=analyzer_for_catalog(catalog, settings.models_dir))
            photo_id = _album_photo_id(catalog, args.photo)
            if photo_id is None:
                raise UsageError(f"the photo could not be added to the album ({result.summary()})", args.photo)
            log.warning("%s was not in the album; it was scanned in and its faces grouped with the album's "
                        "people", args.photo)
        service = service_for(options)
        bar = ProgressBar("restoring")
        try:
            result = service.restore_album_photo(catalog, photo_id, args.photo, args.output, options, progress=bar)
        finally:
            bar.close()
        if not result.restored_count and options.recipe is None:  # a repaired photo is written anyway
            raise NoFaceError(nothing_restored(result), args.photo)
        record_restoration(catalog, photo_id, args.output, settings={**options.to_dict(), "source": "cli"},
                           faces=face_records(result.faces))
    log.info("restored %s as the album says → %s", os.path.basename(args.photo), args.output)
    return result


def _album_photo_id(catalog, photo: Path) -> int | None:
    """The catalog's photo at this path (as the scanner records paths), when it is there and readable."""
    from sqlalchemy import select

    from engine.catalog.models import Photo, PhotoStatus

    with catalog.session() as session:
        return session.scalar(select(Photo.id).where(Photo.path == os.path.abspath(photo),
                                                     Photo.status == PhotoStatus.ok))
