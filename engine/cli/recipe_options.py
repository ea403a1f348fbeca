"""The whole-photo repair switches that `faceme restore` and `faceme batch` share (engine/repair)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _strength(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"the strength is between 0 and 1, not {value}")
    return value


def add_recipe_options(parser: argparse.ArgumentParser) -> None:
    """--repair [--mask FILE], --fade [STRENGTH] [--local-contrast C], --upscale 2|4 [--upscaler PART],
    --colourise: the steps run on the whole photo before its faces are found."""
    from engine.repair.models import UPSCALER_PARTS

    group = parser.add_argument_group("whole photo (run first, in this order; faces are then restored on the "
                                      "result, at its scale)")
    group.add_argument("--repair", action="store_true",
                       help="find scratches, creases and dust (the old-photo scratch detector) and inpaint them (LaMa)")
    group.add_argument("--mask", dest="mask_file", metavar="FILE",
                       help="with --repair: use this damage mask (white = damage, the photo's size; see "
                            "`faceme repair-mask`) instead of the detector's")
    group.add_argument("--fade", nargs="?", type=_strength, const=1.0, default=0.0, metavar="STRENGTH",
                       help="restore contrast and neutral balance of a faded print (strength 0–1, default 1 when "
                            "given)")
    group.add_argument("--local-contrast", type=float, default=0.0, metavar="C",
                       help="with --fade: also raise local contrast (CLAHE clip limit, e.g. 1.5; default off)")
    group.add_argument("--upscale", type=int, choices=(2, 4), default=1, metavar="2|4",
                       help="enlarge the whole photo 2 or 4 times (super-resolution, in tiles)")
    group.add_argument("--upscaler", choices=UPSCALER_PARTS, default=None,
                       help="the upscaling model part (default: realesrgan-x2 for 2, realesrgan-x4 for 4)")
    group.add_argument("--colourise", action="store_true",
                       help="colour a black-and-white photo with DDColor (off by default; the output's metadata "
                            "says it was colourised)")


def recipe_from_args(args: argparse.Namespace):
    """The Recipe the switches ask for, or None when they ask for nothing."""
    from engine.repair.recipe import Recipe

    recipe = Recipe(repair=args.repair, fade=args.fade, upscale=args.upscale, colourise=args.colourise,
                    upscaler=args.upscaler, local_contrast=args.local_contrast,
                    mask_file=str(Path(args.mask_file).resolve()) if args.mask_file else None)
    return recipe if recipe.active else None


def plan_repaired_ad_hoc(service, loaded, people, options, source):
    """`faceme restore` without a catalog: the photo repaired (with a progress bar), then its faces found
    and matched on the repaired photo. A photo without a face gets an empty plan (it is written
    repaired) instead of the NoFaceError a plain restoration stops at."""
    from engine.cli.progress_bar import ProgressBar
    from engine.errors import NoFaceError
    from engine.repair.restoring import repair_for_restoration
    from engine.restore.plan import RestorationPlan

    bar = ProgressBar("repairing")
    try:
        repaired, _result = repair_for_restoration(loaded, options, progress=bar)
    finally:
        bar.close()
    try:
        plan = service.plan_ad_hoc(repaired.pixels, people, options, source=source)
    except NoFaceError:
        plan = RestorationPlan(faces=[], source=str(source))
    return repaired, plan
