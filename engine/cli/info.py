"""`faceme info`: what is installed and how to restore. Reads local files only (no network)."""

from __future__ import annotations

import argparse

from engine import __version__
from engine.cli.options import add_models_option
from engine.errors import FaceMeError
from engine.models.layout import PARTS, verify_pack
from engine.settings import Settings
from engine.text import plural


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("info", help="show the installation, the model pack and how to restore")
    add_models_option(p)
    p.set_defaults(handler=run)


def _download_size(names: list[str]) -> str:
    try:
        from engine.models.fetch import human_bytes
        from engine.models.manifest import load_manifest

        manifest = load_manifest()
        return f"about {human_bytes(sum(manifest.part(n).download_size for n in names))}"
    except FaceMeError:
        return "size unknown"


def run(args: argparse.Namespace) -> int:
    settings = Settings().with_overrides(models_dir=args.models)
    print(f"FaceMe Studio {__version__}")
    print(f"model pack: {settings.models_dir}")
    _print_catalog(settings)
    statuses = verify_pack(settings.models_dir, tuple(PARTS))
    for status in statuses:
        part = PARTS[status.name]
        need = "" if part.required_for_restoration else " (optional)"
        licence = f"{part.license_name}{', non-commercial' if part.non_commercial else ''}"
        print(f"  {status.name:<18} {status.state:<8} {licence}{need}")
    missing = [s.name for s in statuses if not s.ok and PARTS[s.name].required_for_restoration]
    print()
    if not missing:
        print("Ready. Restore a face crop:   faceme restore-face LQ.png --ref REF.jpg -o OUT.png")
    else:
        print(f"The model pack is incomplete ({', '.join(missing)}).")
        print(f"Download it ({_download_size(missing)}; the licences are shown first):")
        print("                              faceme models download")
        print("Or adopt files you have:      faceme models import PART PATH")
        print("Details:                      faceme models verify")
    print("All commands:                 faceme --help")
    return 0


def _print_catalog(settings) -> None:
    """The catalog and its face model (one per catalog: every scan uses it)."""
    from engine.catalog.face_model import analyzer_name
    from engine.catalog.maintenance import face_model_of
    from engine.errors import CatalogError

    try:
        model, others = face_model_of(settings.catalog_url)
    except (CatalogError, OSError) as exc:
        print(f"catalog: {settings.catalog_url} ({exc})")
        return
    if model is None:
        print(f"catalog: {settings.catalog_url} (no faces yet: the first scan's face model becomes its own)")
        return
    from engine.catalog.face_model import unfinished_move_in_file

    move = unfinished_move_in_file(settings.catalog_url) if others else None
    if move is not None:
        print(f"catalog: {settings.catalog_url} (face model {analyzer_name(model)}, {model}; {move.text()}: a "
              f"re-analysis stopped part-way, `{move.command()}` finishes it)")
        return
    mixed = f"; {plural(others, 'face')} of another model: `faceme catalog check`" if others else ""
    print(f"catalog: {settings.catalog_url} (face model {analyzer_name(model)}, {model}{mixed}; "
          "`faceme catalog reanalyse --model M` changes it)")
