"""The `faceme` command.

Exit codes, the same for every subcommand: 0 done; 1 other error; 2 usage error; 3 no face where one is
required; 4 model pack missing or invalid; 5 catalog unusable (full disk, damaged, locked too long);
130 interrupted (Ctrl-C); 141 output pipe closed early (`faceme people list | head`). Progress goes
to stderr, results to stdout.

Each subcommand lives in its own module with `add_parser(subparsers)`; the handler it registers takes
the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from engine import __version__
from engine.cli import batch as batch_cmd
from engine.cli import catalog as catalog_cmd
from engine.cli import info as info_cmd
from engine.cli import jobs as jobs_cmd
from engine.cli import models as models_cmd
from engine.cli import people as people_cmd
from engine.cli import photos as photos_cmd
from engine.cli import repair_mask as repair_mask_cmd
from engine.cli import restore as restore_cmd
from engine.cli import restore_face as restore_face_cmd
from engine.cli import scan as scan_cmd
from engine.cli.progress_bar import ProgressBar
from engine.errors import FaceMeError

log = logging.getLogger("engine.cli")

#: Modules that each add one subcommand (or a group) to the parser, in help order.
SUBCOMMANDS = (info_cmd, restore_cmd, restore_face_cmd, repair_mask_cmd, models_cmd, scan_cmd, people_cmd, photos_cmd,
               batch_cmd, jobs_cmd, catalog_cmd)

#: exit codes of the shell conventions: killed by SIGINT, by SIGPIPE
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2 on usage errors already; keep its wording
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="faceme", description="FaceMe Studio: restore faces in photos, keeping identity.")
    parser.add_argument("--version", action="version", version=f"faceme {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging on stderr (-v info, -vv debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at exit
        return code
    except FaceMeError as exc:
        _end_progress_line()
        print(f"faceme: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # the reader went away (`| head`): stop quietly, and keep Python's exit-time flush of the
        # dead stdout from printing its own traceback
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        _end_progress_line()
        print("faceme: interrupted. Finished work is kept; run the same command again to continue "
              "where it stopped.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        from engine.catalog.db import catalog_error_from, conflict_error_from

        where = getattr(args, "catalog", None) or "the catalog"
        error = catalog_error_from(exc, where) or conflict_error_from(exc, where)  # never a driver traceback
        if error is None:
            raise
        _end_progress_line()
        print(f"faceme: error: {error}", file=sys.stderr)
        return error.exit_code


def _end_progress_line() -> None:
    if ProgressBar.line_open:
        sys.stderr.write("\n")
        ProgressBar.line_open = False


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (tests capture it)
        pass


if __name__ == "__main__":
    sys.exit(main())
