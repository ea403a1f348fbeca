"""`faceme repair-mask`: the damage mask of a photo (scratches, creases, dust), to look at or edit.

    faceme repair-mask PHOTO -o MASK.png [--models DIR] [--device D]

Writes a grey PNG of the photo's size (upright, as the photo is shown): white where the old-photo
scratch detector finds damage. Paint on it (white adds damage, black removes it) and give it back with
`faceme restore PHOTO --repair --mask MASK.png …`. Prints the share of the photo marked.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.options import DEVICE_HELP, add_models_option
from engine.errors import UsageError
from engine.settings import Settings


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("repair-mask", help="write the damage mask of a photo (to look at or edit)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("photo", type=Path, metavar="PHOTO", help="the photo (never modified)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="MASK",
                   help="where to write the mask (PNG; must not be PHOTO)")
    add_models_option(p)
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from engine.imageio import read_image, write_image
    from engine.repair.damage_mask import detect_damage
    from engine.repair.models import repair_models_for
    from engine.restore.photo import same_file

    if same_file(args.photo, args.output):
        raise UsageError("the mask would overwrite the photo; choose another output path", args.output)
    if args.output.suffix.lower() != ".png":
        raise UsageError("the mask is written as PNG (lossless, so it can be edited and given back): name it "
                         "….png", args.output)
    loaded = read_image(args.photo)  # bad photos fail here, before the model is loaded
    settings = Settings().with_overrides(models_dir=args.models, device=args.device)
    models = repair_models_for(settings.models_dir, settings.device)
    mask = detect_damage(loaded.pixels, models.scratch_detector())
    write_image(args.output, mask, format="PNG")
    print(f"{100.0 * (mask > 0).mean():.2f}% of the photo marked as damage → {args.output}")
    return 0
