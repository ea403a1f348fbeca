"""`faceme models …`: inspect the model pack."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.models.layout import PARTS, RESTORATION_PARTS, verify_pack
from engine.settings import Settings


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("models", help="the model pack: verify what is installed")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")
    v = sub.add_parser("verify", help="check each part of the model pack: present, missing or wrong")
    v.add_argument("--models", type=Path, help="model pack folder (default: $FACEME_MODELS or the user data folder)")
    v.add_argument("parts", nargs="*", choices=[*PARTS, []], metavar="PART",
                   help=f"parts to check (default: those restoration needs: {', '.join(RESTORATION_PARTS)})")
    v.set_defaults(handler=verify)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def verify(args: argparse.Namespace) -> int:
    settings = Settings().with_overrides(models_dir=args.models)
    names = tuple(args.parts) or RESTORATION_PARTS
    statuses = verify_pack(settings.models_dir, names)
    print(f"model pack: {settings.models_dir}")
    for status in statuses:
        print(f"  {status.name:<18} {status.state:<8} {status.detail}")
        if not status.ok:
            print(f"  {'':<18} get it: {status.where_to_get}")
    bad = [s.name for s in statuses if not s.ok]
    if bad:
        print(f"{len(bad)} part(s) missing or invalid: {', '.join(bad)}")
        return 4
    print("all parts present")
    return 0
