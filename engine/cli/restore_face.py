"""`faceme restore-face`: restore one aligned face crop with FaceMe.

    faceme restore-face LQ_IMAGE [--ref IMAGE]... -o OUT [--models DIR] [--steps N] [--guidance G]
                        [--seed S] [--no-color-fix] [--device D] [--memory M] [--tries N]
                        [--no-identity-check]

The crop is resized to 512×512 if needed; the restored 512×512 crop is written to OUT. Without
`--ref` the restoration is blind (the same model, no identity tokens). The result is checked with an
independent recogniser against the references (blind: against the input crop); --tries N restores
with N seeds (seed, seed+1000, …) and keeps the one the check rates most like the person.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from engine.cli.options import add_check_options, add_models_option, add_restoration_options
from engine.cli.progress_bar import ProgressBar
from engine.errors import FaceMeError, UsageError
from engine.settings import Settings
from engine.text import plural

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
    add_check_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from engine.faceme.references import read_rgb
    from engine.imageio import write_image
    from engine.restore.service import get_service

    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1 (got {args.steps})")
    if args.tries < 1:
        raise UsageError(f"--tries must be at least 1 (got {args.tries})")
    if args.output.resolve() == args.lq.resolve():
        raise UsageError("the output would overwrite the input", args.output)
    settings = Settings().with_overrides(models_dir=args.models, device=args.device, memory=args.memory)
    lq = read_rgb(args.lq)
    started = time.monotonic()
    pipeline = get_service(settings.models_dir, settings.device, settings.dtype, settings.memory).pipeline
    log.info("model loaded in %.1f s", time.monotonic() - started)
    identity = pipeline.encode_identity(args.ref) if args.ref else None
    pipeline.release_reference_models()  # the tokens are made: CLIP and the face analyzer can go
    check = references = unrestored = None
    if args.identity_check or args.tries > 1:
        from engine.restore.identity_check import shared_check

        check = shared_check(settings.models_dir)
        unrestored = _square_512(lq)
        try:
            references = check.references("the references", args.ref) if args.ref else None
        except FaceMeError as exc:  # the check's recogniser missed a face FaceMe found: check blind
            log.warning("the identity check cannot use the references (%s); comparing with the input crop", exc)
            references = None
    bar = ProgressBar("restoring")
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(6), "little")

    def restore_once(try_seed: int):
        return pipeline(lq, steps=args.steps, guidance_scale=args.guidance, seed=try_seed,
                        color_fix=args.color_fix, progress=bar, identity=identity)

    try:
        if args.tries > 1:
            from engine.restore.identity_check import best_of_n
            from engine.restore.options import try_seeds

            kept, restored, tries = best_of_n(restore_once, try_seeds(seed, args.tries),
                                              check.scorer(unrestored, references))
            for n, attempt in enumerate(tries, start=1):
                print(f"try {n}: seed {attempt.seed}, score {attempt.score:.3f}{' (kept)' if n - 1 == kept else ''}")
            seed = tries[kept].seed
        else:
            restored = restore_once(seed)
    finally:
        bar.close()
    write_image(args.output, restored)
    print(f"{args.output} ({restored.shape[1]}×{restored.shape[0]}, {plural(len(args.ref), 'reference')}, "
          f"seed {seed}, {time.monotonic() - started:.1f} s)")
    if check is not None:
        from engine.restore.identity_check import describe_short

        print(describe_short(check.check(restored, unrestored, references)))
    return 0


def _square_512(crop):
    """The input crop as the pipeline sees it (512×512), for the check."""
    import cv2

    if crop.shape[:2] == (512, 512):
        return crop
    return cv2.resize(crop, (512, 512), interpolation=cv2.INTER_AREA if crop.shape[0] > 512 else cv2.INTER_CUBIC)
