"""`faceme restore-face`: restore one aligned face crop with FaceMe.

    faceme restore-face LQ_IMAGE [--ref IMAGE]... -o OUT [--models DIR] [--steps N] [--guidance G]
                        [--seed S] [--no-color-fix] [--device D] [--memory M]

The crop is resized to 512×512 if needed; the restored 512×512 crop is written to OUT. Without
`--ref` the restoration is blind (the same model, no identity tokens).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from engine.cli.options import add_models_option, add_restoration_options
from engine.cli.progress_bar import ProgressBar
from engine.errors import UsageError
from engine.settings import Settings

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("restore-face", help="restore one aligned face crop with FaceMe",
                              description="Restore one aligned face crop (resized to 512×512 if needed) with "
                                          "FaceMe, guided by reference photos of the same person; without "
                                          "--ref the restoration is blind.")
    p.add_argument("lq", type=Path, metavar="LQ_IMAGE", help="the face crop to restore (resized to 512 if needed)")
    p.add_argument("--ref", type=Path, action="append", default=[], metavar="IMAGE",
                   help="a reference photo of the same person (repeat for several; none: blind restoration)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="where to write the result")
    add_models_option(p)
    add_restoration_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from engine.faceme.references import read_rgb
    from engine.imageio import write_image
    from engine.restore.service import get_service

    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1 (got {args.steps})")
    if args.output.resolve() == args.lq.resolve():
        raise UsageError("the output would overwrite the input", args.output)
    settings = Settings().with_overrides(models_dir=args.models, device=args.device, memory=args.memory)
    lq = read_rgb(args.lq)
    started = time.monotonic()
    pipeline = get_service(settings.models_dir, settings.device, settings.dtype, settings.memory).pipeline
    log.info("model loaded in %.1f s", time.monotonic() - started)
    identity = pipeline.encode_identity(args.ref) if args.ref else None
    pipeline.release_reference_models()  # the tokens are made: CLIP and the face analyzer can go
    bar = ProgressBar("restoring")
    try:
        restored = pipeline(lq, steps=args.steps, guidance_scale=args.guidance, seed=args.seed,
                            color_fix=args.color_fix, progress=bar, identity=identity)
    finally:
        bar.close()
    write_image(args.output, restored)
    print(f"{args.output} ({restored.shape[1]}×{restored.shape[0]}, {len(args.ref)} reference(s), "
          f"{time.monotonic() - started:.1f} s)")
    return 0
