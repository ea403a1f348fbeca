"""`faceme models …`: list, download, import, verify and remove the parts of the model pack."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.cli.options import add_models_option
from engine.errors import LicenseNotAcceptedError
from engine.models.fetch import ServerUnreachable, cached_hub_file, human_bytes
from engine.models.install import (download_parts, import_part, list_parts, parts_to_fetch, remove_part,
                                   resolve_part_names)
from engine.models.layout import PARTS, RESTORATION_PARTS, verify_pack
from engine.models.licenses import license_text, missing_acceptances, record_acceptance
from engine.models.manifest import Manifest, PartManifest, load_manifest
from engine.settings import Settings
from engine.text import plural

_MANIFEST_HELP = "use this manifest instead of the packaged one (mirrors, tests)"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("models", help="the model pack: list, download, import, verify, remove parts")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")

    ls = sub.add_parser("list", help="what is installed: state, size, licence, how it got there")
    add_models_option(ls)
    ls.add_argument("--manifest", type=Path, help=_MANIFEST_HELP)
    ls.set_defaults(handler=list_command)

    d = sub.add_parser("download", help="download, verify and install parts (asks to accept their licences)")
    d.add_argument("parts", nargs="*", metavar="PART",
                   help=f"parts to download, or `all` (default: those restoration needs: {', '.join(RESTORATION_PARTS)})")
    d.add_argument("--accept-licenses", action="store_true",
                   help="accept the licences of the parts downloaded (for scripts; they are printed and recorded)")
    d.add_argument("--force", action="store_true", help="download again even if the part is installed and valid")
    add_models_option(d)
    d.add_argument("--manifest", type=Path, help=_MANIFEST_HELP)
    d.set_defaults(handler=download_command)

    im = sub.add_parser("import", help="adopt files you already have (hub-layout folder, HF cache, unpacked "
                                       "or zipped InsightFace pack): verify, then link them in")
    im.add_argument("part", choices=list(PARTS), metavar="PART", help=f"one of: {', '.join(PARTS)}")
    im.add_argument("path", type=Path,
                    help="the folder (or zip) holding the part's files; only regular files inside it are taken "
                         "(links are not followed, except an HF cache's own links to its blobs)")
    im.add_argument("--copy", action="store_true",
                    help="copy the files instead of linking them (copies are readable by others only where the "
                         "originals are)")
    add_models_option(im)
    im.add_argument("--manifest", type=Path, help=_MANIFEST_HELP)
    im.set_defaults(handler=import_command)

    v = sub.add_parser("verify", help="check each part of the model pack: present, missing or wrong")
    add_models_option(v)
    v.add_argument("--full", action="store_true",
                   help="re-hash every file against the installed record (slow for big files); without it, only "
                        "files whose size, inode or change time differ from the record are re-hashed")
    v.add_argument("parts", nargs="*", choices=[*PARTS, []], metavar="PART",
                   help=f"parts to check (default: those restoration needs: {', '.join(RESTORATION_PARTS)})")
    v.set_defaults(handler=verify)

    rm = sub.add_parser("remove", help="remove an installed part")
    rm.add_argument("part", choices=list(PARTS), metavar="PART", help=f"one of: {', '.join(PARTS)}")
    add_models_option(rm)
    rm.set_defaults(handler=remove_command)

    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def _models_dir(args: argparse.Namespace) -> Path:
    return Settings().with_overrides(models_dir=args.models).models_dir


def verify(args: argparse.Namespace) -> int:
    models_dir = _models_dir(args)
    names = tuple(args.parts) or RESTORATION_PARTS
    statuses = verify_pack(models_dir, names, full=getattr(args, "full", False))
    print(f"model pack: {models_dir}")
    for status in statuses:
        print(f"  {status.name:<18} {status.state:<8} {status.detail}")
        if not status.ok:
            print(f"  {'':<18} get it: {status.where_to_get}")
    bad = [s.name for s in statuses if not s.ok]
    if bad:
        print(f"{plural(len(bad), 'part')} missing or invalid: {', '.join(bad)}")
        return 4
    print("all parts present")
    return 0


def list_command(args: argparse.Namespace) -> int:
    models_dir = _models_dir(args)
    print(f"model pack: {models_dir}")
    for s in list_parts(models_dir, args.manifest):
        need = "required" if s.required else "optional"
        size = human_bytes(s.size_on_disk) if s.size_on_disk else "-"
        print(f"  {s.name:<18} {s.state:<8} {size:>9}  {need:<8} {s.installed_by}")
        flag = "  NON-COMMERCIAL" if s.non_commercial else ""
        accepted = "accepted" if s.license_accepted else "not accepted yet"
        print(f"  {'':<18} licence: {s.license}{flag} ({accepted}) {s.license_url}")
    return 0


class _MegabyteBar:
    """Shows byte progress in MB on the shared stderr progress bar. The downloader's message carries the
    time left, measured on the bytes really fetched (files found in the HF cache or resumed from an earlier
    run take no time), so the bar adds none of its own."""

    def __init__(self):
        from engine.cli.progress_bar import ProgressBar

        self.bar = ProgressBar("download", unit=" MB", eta=False)

    def __call__(self, done: int, total: int, message: str = "") -> None:
        self.bar(done // 1_000_000, total // 1_000_000, message)

    def close(self) -> None:
        self.bar.close()


def _ask_licences(models_dir: Path, args: argparse.Namespace) -> None:
    """Show the licences not accepted yet; on a TTY ask once, else explain --accept-licenses."""
    manifest = load_manifest(args.manifest)
    todo = parts_to_fetch(models_dir, resolve_part_names(args.parts, manifest), manifest, force=args.force)
    missing = missing_acceptances(models_dir, todo)
    if not missing:
        return
    print("The parts to download come under these licences:", file=sys.stderr)
    for part in missing:
        print(license_text(part), file=sys.stderr)
    if args.accept_licenses:
        return  # recorded by download_parts
    if not sys.stdin.isatty():
        raise LicenseNotAcceptedError("licences not accepted; nothing was downloaded. Read them above, then run "
                                      "again with --accept-licenses")
    answer = input("Accept these licences and download? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise LicenseNotAcceptedError("licences not accepted; nothing was downloaded")
    record_acceptance(models_dir, missing, how="interactive prompt")


def _files_downloaded(models_dir: Path, parts: list[PartManifest], manifest: Manifest) -> tuple[int, int]:
    """(files of `parts` a rerun need not fetch again, files of `parts`): a part installed counts whole, a
    hub file counts once it is complete in the HF cache, a zip only once its part is installed (its
    partial archive is resumed, but is not a file yet)."""
    still_to_fetch = {p.name for p in parts_to_fetch(models_dir, [p.name for p in parts], manifest)}
    have = want = 0
    for part in parts:
        count = len(part.files) if part.source.kind == "hub" else 1
        want += count
        if part.name not in still_to_fetch:
            have += count
        elif part.source.kind == "hub":
            have += sum(1 for f in part.files if any(
                cached_hub_file(part.source.repo, part.source.hub_filename(name), part.source.revision)
                for name in (f.path, *f.fallbacks)))
    return have, want


def download_command(args: argparse.Namespace) -> int:
    models_dir = _models_dir(args)
    _ask_licences(models_dir, args)
    manifest = load_manifest(args.manifest)
    todo = parts_to_fetch(models_dir, resolve_part_names(args.parts, manifest), manifest, force=args.force)
    bar = _MegabyteBar()
    try:
        results = download_parts(models_dir, args.parts, manifest=manifest,
                                 accept_licenses=args.accept_licenses, force=args.force, progress=bar)
    except ServerUnreachable as exc:
        have, want = _files_downloaded(models_dir, todo, manifest)
        # one sentence: what happened, how far it got, what to do (the technical detail is in the log)
        raise ServerUnreachable(f"{exc.message}; {have} of {plural(want, 'file')} downloaded, run the same "
                                "command again to resume") from exc
    finally:
        bar.close()
    recorded: list[str] = []
    for r in results:
        if not r.installed:
            print(f"  {r.part:<18} already installed ({r.folder})")
            continue
        print(f"  {r.part:<18} installed: {plural(r.files, 'file')}, {human_bytes(r.bytes)} "
              f"(fetched {human_bytes(r.fetched_bytes)}) in {r.folder}")
        recorded += r.recorded_hashes
    if recorded:
        print("note: the manifest has no SHA-256 for " + ", ".join(recorded) + "; the hashes of this first "
              "download were recorded and later downloads must match them")
    print(f"model pack: {models_dir}")
    return 0


def import_command(args: argparse.Namespace) -> int:
    models_dir = _models_dir(args)
    r = import_part(models_dir, args.part, args.path, manifest=args.manifest, mode="copy" if args.copy else "link")
    print(f"  {r.part:<18} imported: {plural(r.files, 'file')}, {human_bytes(r.bytes)} ({r.placed}) in {r.folder}")
    return 0


def remove_command(args: argparse.Namespace) -> int:
    models_dir = _models_dir(args)
    freed = remove_part(models_dir, args.part)
    print(f"  {args.part:<18} removed ({human_bytes(freed)} freed)")
    return 0
