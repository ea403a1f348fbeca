"""Command-line options that several `faceme` commands share, declared once so they read the same."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.faceme.memory import MEMORY_MODES

MODELS_HELP = "model pack folder (default: $FACEME_MODELS or the user data folder)"
DEVICE_HELP = "auto (default), cpu, cuda, cuda:1, mps, …"


def add_models_option(parser: argparse.ArgumentParser, help: str = MODELS_HELP) -> None:
    parser.add_argument("--models", type=Path, help=help)


def add_restoration_options(parser: argparse.ArgumentParser) -> None:
    """--steps, --guidance, --seed, --no-color-fix, --device, --memory: how FaceMe restores each face."""
    parser.add_argument("--steps", type=int, default=50, help="denoising steps (default 50, as released)")
    parser.add_argument("--guidance", type=float, default=5.0, help="identity guidance scale (default 5.0)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (same seed → same result)")
    parser.add_argument("--no-color-fix", dest="color_fix", action="store_false",
                        help="skip the wavelet colour correction against the input")
    parser.add_argument("--device", default=None, help=DEVICE_HELP)
    parser.add_argument("--memory", choices=MEMORY_MODES, default=None,
                        help="GPU memory use: full (all models resident, fastest), balanced (ControlNet "
                             "streamed), low (layers streamed, for 6–8 GB cards), auto (default: chosen "
                             "from free GPU memory at load; $FACEME_MEMORY)")


def add_check_options(parser: argparse.ArgumentParser) -> None:
    """--tries N, --no-identity-check: best of N by identity and the identity check of each face."""
    parser.add_argument("--tries", type=int, default=1, metavar="N",
                        help="restore each face with N seeds (seed, seed+1000, …) and keep the one the identity "
                             "check rates most like the person (ties: the first; default 1)")
    parser.add_argument("--no-identity-check", dest="identity_check", action="store_false",
                        help="do not check whether each restored face still looks like the person "
                             "(--tries above 1 checks anyway)")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true",
                        help="print the result as JSON (one object) instead of lines of text")


def add_command_group(subparsers, name: str, help: str, doc: str):
    """A subcommand with actions of its own (`faceme NAME ACTION …`), its module docstring as help:
    the first paragraph as description, the rest as epilog. Returns the actions' subparsers."""
    parser = subparsers.add_parser(name, help=help, description=doc.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=doc.split("\n\n", 1)[1])
    return parser.add_subparsers(dest="action", metavar="ACTION", required=True)
