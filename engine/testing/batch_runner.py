"""A real process running a batch job over a real catalog, with a light stand-in for FaceMe, for tests
that make races happen on purpose (issue 18):

    python -m engine.testing.batch_runner CATALOG --roots DIR [DIR ...] --out OUT [options]
    python -m engine.testing.batch_runner CATALOG --job N [options]

The job is created (or resumed) with engine.catalog.jobs.start_or_resume and run with
engine.restore.batch.run_job, so the claims, leases, records and writes are the product's own; only
the denoising is replaced: each photo's pixels are inverted, with a cancel check per "step" as the
pipeline makes. Options that stop the process at a chosen moment, each after writing a marker file
`MARKERS/<stage>-<photo name>` (so the test knows it is there):

    --suspend-before-write   SIGSTOP itself after "denoising", before the output is written (the test
                             lets another process take over, then sends SIGCONT)
    --hang-before-write      the main thread blocks forever there (its heartbeat thread runs on)
    --sleep-after-rename     sleep forever right after the output's rename, before its commit (the
                             test kills it with SIGKILL)
    --stale S / --stall S / --heartbeat S   leases.STALE_SECONDS, run_job's stall_seconds and
                             heartbeat interval, small so that a test needs no minutes

Prints "job N" once the job exists and "done N" at the end; exit codes as the CLI's (6: the job is
another process's, or was taken over).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path


def _restorer(args):
    import numpy as np

    from engine.faces.types import Face
    from engine.imageio import read_image
    from engine.progress import check_cancelled
    from engine.restore.photo import PhotoRestoration
    from engine.restore.plan import PlannedFace

    class InvertingRestorer:
        def restore(self, catalog, photo_id, input_path, output_path, options, cancel, write):
            loaded = read_image(input_path)
            for _ in range(3):  # the denoising steps' cancel checks
                check_cancelled(cancel, "restoration")
            face = Face((0.0, 0.0, 10.0, 10.0), 1.0, np.zeros((5, 2), np.float32))
            result = PhotoRestoration(255 - loaded.pixels, [PlannedFace(face, "blind", "inverted", seed=7)])
            _stop_here(args, "before-write", input_path.name)
            write(result, loaded)
            return result

    return InvertingRestorer()


def _marker(args, stage: str, name: str) -> None:
    if args.markers is not None:
        Path(args.markers).mkdir(parents=True, exist_ok=True)
        (Path(args.markers) / f"{stage}-{name}").write_text(str(os.getpid()))


def _stop_here(args, stage: str, name: str) -> None:
    if stage == "before-write" and args.suspend_before_write:
        _marker(args, stage, name)
        os.kill(os.getpid(), signal.SIGSTOP)
    elif stage == "before-write" and args.hang_before_write:
        _marker(args, stage, name)
        while True:
            time.sleep(1)
    elif stage == "after-rename" and args.sleep_after_rename:
        _marker(args, stage, name)
        while True:
            time.sleep(1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="batch_runner")
    parser.add_argument("catalog")
    parser.add_argument("--roots", nargs="+")
    parser.add_argument("--out")
    parser.add_argument("--job", type=int)
    parser.add_argument("--markers")
    parser.add_argument("--suspend-before-write", action="store_true")
    parser.add_argument("--hang-before-write", action="store_true")
    parser.add_argument("--sleep-after-rename", action="store_true")
    parser.add_argument("--stale", type=float)
    parser.add_argument("--stall", type=float)
    parser.add_argument("--heartbeat", type=float, default=0.2)
    args = parser.parse_args(argv)

    from engine.catalog import leases
    from engine.catalog.db import open_catalog
    from engine.catalog.jobs import start_or_resume
    from engine.errors import FaceMeError
    from engine.restore.batch import _OutputWriter, run_job
    from engine.restore.options import RestoreOptions

    if args.stale is not None:
        leases.STALE_SECONDS = args.stale
    if args.sleep_after_rename:
        rename = _OutputWriter._commit

        def rename_then_sleep(self, *a, **kw):
            written = rename(self, *a, **kw)
            _stop_here(args, "after-rename", written.name)
            return written

        _OutputWriter._commit = rename_then_sleep
    catalog = open_catalog(args.catalog)
    try:
        job_id = args.job
        if job_id is None:
            job_id = start_or_resume(catalog, args.roots, args.out, RestoreOptions(steps=3))
        print(f"job {job_id}", flush=True)
        summary = run_job(catalog, job_id, _restorer(args), heartbeat_seconds=args.heartbeat,
                          stall_seconds=args.stall)
    except FaceMeError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    finally:
        catalog.close()
    for line in summary.lines(verbose=True):
        print(line, flush=True)
    print(f"done {job_id}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
