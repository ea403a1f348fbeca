"""Start FaceMe Studio. Until the desktop window lands this shows the installation through the CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from engine.cli import main as cli_main

    return cli_main(["info", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
