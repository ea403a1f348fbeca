"""`faceme info`: what is installed and how to restore."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine import __version__
from engine.models.layout import PARTS, verify_pack
from engine.settings import Settings


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("info", help="show the installation, the model pack and how to restore")
    p.add_argument("--models", type=Path, help="model pack folder (default: $FACEME_MODELS or the user data folder)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings().with_overrides(models_dir=args.models)
    print(f"FaceMe Studio {__version__}")
    print(f"model pack: {settings.models_dir}")
    statuses = verify_pack(settings.models_dir, tuple(PARTS))
    for status in statuses:
        print(f"  {status.name:<18} {status.state}")
    ready = all(s.ok for s in statuses if PARTS[s.name].required_for_restoration)
    print()
    if ready:
        print("Ready. Restore a face crop:   faceme restore-face LQ.png --ref REF.jpg -o OUT.png")
    else:
        print("The model pack is incomplete: `faceme models verify` says what is missing and where to get it.")
    print("All commands:                 faceme --help")
    return 0
