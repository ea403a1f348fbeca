"""`faceme restore-face`: restore one face crop (owned by the FaceMe engine work, in progress)."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("restore-face", help="restore one aligned face crop with FaceMe")
    p.set_defaults(handler=lambda args: 1)
