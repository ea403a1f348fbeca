"""The `faceme` command.

Exit codes, the same for every subcommand: 0 done; 1 other error; 2 usage error; 3 no face where one is
required; 4 model pack missing or invalid. Progress goes to stderr, results to stdout.

Each subcommand lives in its own module with `add_parser(subparsers)`; the handler it registers takes
the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from engine import __version__
from engine.cli import batch as batch_cmd
from engine.cli import info as info_cmd
from engine.cli import models as models_cmd
from engine.cli import people as people_cmd
from engine.cli import restore as restore_cmd
from engine.cli import restore_face as restore_face_cmd
from engine.cli import scan as scan_cmd
from engine.errors import FaceMeError

log = logging.getLogger("engine.cli")

#: Modules that each add one subcommand (or a group) to the parser, in help order.
SUBCOMMANDS = (info_cmd, restore_cmd, restore_face_cmd, models_cmd, scan_cmd, people_cmd, batch_cmd)


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
        return int(args.handler(args) or 0)
    except FaceMeError as exc:
        print(f"faceme: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("faceme: interrupted", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
