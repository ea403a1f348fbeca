"""Installing, importing, listing and removing model parts, atomically.

Every install builds the part in a staging folder inside the models folder
(`<models>/.staging/<part>-<random>`), verifies it (hashes, then the layout check), writes the
installed record last, and only then renames it into place. The previous install is moved aside by a
rename and deleted after the new one is in place, or renamed back if that fails. Nothing half-written
is ever at a part's path, and a failed download leaves the previous install as it was.

Downloads ask for licence consent first (nothing touches the network before), then check the disk
space against the manifest's sizes. Hub files land in the user's HF cache and are hard-linked into the
part (copied when the cache is on another file system); zip parts are fetched to
`<models>/.downloads/` (resumable) and only the files the engine uses are extracted, flattened (the
official antelopev2.zip nests its files in `antelopev2/antelopev2/`).

Imports take only regular files inside the folder or archive given (`import_sources.py`: no links
followed but an HF cache's own, no devices, FIFOs or sockets, no archive members that are links).
Files this module writes (copies, extracted members) are new files of the user running it, readable by
others only where the source was (never more than 0o644, and the umask applies).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from engine.errors import DownloadError, FaceMeError, ModelPackError, UsageError
from engine.models import fetch
from engine.models.import_sources import (SourceFile, UnsafeSourceError, checked_archive_member,
                                          checked_source_file, kind_of_path)
from engine.models.integrity import (FileRecord, FileStamp, PartRecord, hash_with_stamp, now_iso, read_record,
                                     record_hash, recorded_hash, sha256_file, stamp_of, write_record)
from engine.models.layout import PARTS, check_part, check_part_folder, part_dir
from engine.models.licenses import is_accepted, record_acceptance, require_acceptance
from engine.models.manifest import Manifest, ManifestFile, PartManifest, load_manifest
from engine.progress import CancelCheck, ProgressCallback, check_cancelled

log = logging.getLogger(__name__)

STAGING_DIR = ".staging"
DOWNLOADS_DIR = ".downloads"
#: kept free on top of what a download needs (file-system metadata, the installed records, logs)
DISK_MARGIN = 64 * 1024 * 1024
_STALE_STAGING_S = 6 * 3600
#: the most a weights file written here grants: read for all, write for its owner (the umask applies too)
_WEIGHTS_MODE = 0o644
#: a Hugging Face commit, as a cache's refs/ files name it
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")


@dataclass
class InstallResult:
    part: str
    folder: Path
    installed: bool  # False when the part was already installed and nothing was done
    files: int = 0
    bytes: int = 0
    fetched_bytes: int = 0
    placed: str = ""
    #: files whose SHA-256 was not known in advance and was recorded now (trust on first use)
    recorded_hashes: list[str] = field(default_factory=list)


# --- helpers shared by download and import ------------------------------------------------------------

def _staging_root(models_dir: Path) -> Path:
    root = Path(models_dir) / STAGING_DIR
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for entry in root.iterdir():  # leftovers of runs that crashed: never visible as installed, just space
        try:
            if now - entry.stat().st_mtime > _STALE_STAGING_S:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
        except OSError:
            pass
    return root


def _new_staging(models_dir: Path, name: str) -> Path:
    folder = _staging_root(models_dir) / f"{name}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    return folder


def _swap_into_place(staging: Path, target: Path) -> None:
    """Rename the staged part into place; the old install is renamed aside first and dropped after."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists() or target.is_symlink():
        old = staging.parent / f"old-{target.name}-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _place(src: Path, dst: Path, mode: str) -> str:
    """Put `src` at `dst` without copying when possible: hardlink, else symlink (if allowed), else copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    real = Path(os.path.realpath(src))
    if mode in ("link", "hardlink", "hardlink-or-copy"):
        try:
            os.link(real, dst)
            return "hardlink"
        except OSError:
            pass
    if mode == "link":
        try:
            os.symlink(real, dst)
            return "symlink"
        except OSError:
            pass
    with open(real, "rb") as data:
        _copy_into_new_file(data, dst, _WEIGHTS_MODE)
    return "copy"


def _new_weights_file(path: Path, mode: int = _WEIGHTS_MODE):
    """A new file opened for writing with at most `mode` (and the umask): never the source's mode, so
    a copy is never more readable or executable than a plain weights file."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode), "wb")


def _copy_into_new_file(data, dst: Path, mode: int, cancel: CancelCheck | None = None) -> str:
    """Copy the open file `data` into a new file `dst`; returns the SHA-256 of the bytes written."""
    digest = hashlib.sha256()
    with _new_weights_file(dst, mode) as out:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
            check_cancelled(cancel, "import")
    return digest.hexdigest()


def _summary_of(methods: set[str]) -> str:
    return methods.pop() if len(methods) == 1 else ("mixed" if methods else "")


def _free_space(path: Path) -> tuple[Path, int]:
    probe = Path(path).absolute()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return probe, shutil.disk_usage(probe).free


def _device(path: Path) -> int:
    probe = Path(path).absolute()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return probe.stat().st_dev


def _fail_checked(staging: Path, exc: BaseException) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:  # ENOSPC
        raise DownloadError(f"the disk is full ({exc}); nothing was installed and the previous install "
                            "is unchanged. Free some space and run again") from exc


# --- download ---------------------------------------------------------------------------------------------

def resolve_part_names(names: list[str] | tuple[str, ...] | None, manifest: Manifest) -> list[str]:
    """`None`/[] → the parts restoration needs; "all" → every part; else the names given, checked."""
    if not names:
        return [n for n, p in manifest.parts.items() if p.required]
    if "all" in names:
        return list(manifest.parts)
    for name in names:
        manifest.part(name)
        if name not in PARTS:
            raise UsageError(f"the manifest's part {name!r} has no place in the model pack layout")
    return list(dict.fromkeys(names))


def parts_to_fetch(models_dir: Path, names: list[str], manifest: Manifest, force: bool = False) -> list[PartManifest]:
    """Parts among `names` that are not installed and valid (all of them with `force`)."""
    return [manifest.part(n) for n in names if force or not check_part(models_dir, n).ok]


def check_disk_space(models_dir: Path, parts: list[PartManifest], cache_dir: str | None = None) -> None:
    """Raise DownloadError if the models folder (and the HF cache) cannot hold what `parts` need."""
    models_dir = Path(models_dir)
    hub_bytes = 0
    for part in parts:
        if part.source.kind != "hub":
            continue
        for f in part.files:
            if fetch.cached_hub_file(part.source.repo, part.source.hub_filename(f.path), part.source.revision,
                                     cache_dir) is None:
                hub_bytes += f.expected_size
    zip_bytes = 0
    for part in parts:
        if part.source.kind in ("zip", "url"):
            partial = _zip_path(models_dir, part).with_name(_zip_path(models_dir, part).name + ".part")
            have = partial.stat().st_size if partial.exists() else 0
            zip_bytes += max(part.download_size - have, 0) + part.installed_size
    cache = Path(cache_dir or fetch.hub_cache_dir() or _default_hub_cache())
    needs: dict[int, tuple[Path, int]] = {}

    def need(path: Path, amount: int) -> None:
        dev = _device(path)
        prev = needs.get(dev, (path, 0))
        needs[dev] = (prev[0], prev[1] + amount)

    need(models_dir, zip_bytes)
    if hub_bytes:
        need(cache, hub_bytes)
        if _device(cache) != _device(models_dir):  # hub files are copied, not linked, across file systems
            need(models_dir, hub_bytes)
    for dev, (path, amount) in needs.items():
        if amount == 0:
            continue
        where, free = _free_space(path)
        if free < amount + DISK_MARGIN:
            raise DownloadError(
                f"not enough disk space in {where}: this download needs about {fetch.human_bytes(amount)} "
                f"and {fetch.human_bytes(free)} is free. Free some space or choose another models folder "
                "(--models); nothing was downloaded")


def _default_hub_cache() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def download_parts(models_dir: Path, names: list[str] | tuple[str, ...] | None = None, *,
                   manifest: str | Path | Manifest | dict | None = None, accept_licenses: bool = False,
                   force: bool = False, progress: ProgressCallback | None = None,
                   cancel: CancelCheck | None = None, endpoint: str | None = None,
                   cache_dir: str | None = None, how_accepted: str = "--accept-licenses") -> list[InstallResult]:
    """Download, verify and install parts (default: those restoration needs; "all": every part).

    Licences: parts whose licence has not been accepted raise LicenseNotAcceptedError before any network
    access, unless `accept_licenses` (then the acceptance is recorded, with `how_accepted`). Parts
    already installed and valid are skipped without network access unless `force`.
    """
    models_dir = Path(models_dir)
    manifest = load_manifest(manifest)
    wanted = resolve_part_names(names, manifest)
    todo = parts_to_fetch(models_dir, wanted, manifest, force=force)
    results = [InstallResult(n, part_dir(models_dir, n), installed=False)
               for n in wanted if n not in {p.name for p in todo}]
    if not todo:
        return results
    if accept_licenses:
        record_acceptance(models_dir, [p for p in todo if not is_accepted(models_dir, p)], how_accepted)
    require_acceptance(models_dir, todo)
    models_dir.mkdir(parents=True, exist_ok=True)
    check_disk_space(models_dir, todo, cache_dir)
    meter = fetch.ByteMeter(progress, sum(p.download_size for p in todo), cancel)
    for part in todo:
        check_cancelled(cancel, "download")
        if part.source.kind == "hub":
            results.append(_install_hub_part(models_dir, part, meter, cache_dir=cache_dir, endpoint=endpoint))
        elif part.source.kind == "url":
            results.append(_install_url_part(models_dir, part, meter))
        else:
            results.append(_install_zip_part(models_dir, part, meter))
    meter.emit(force=True)
    return results


def _check_hash(models_dir: Path, key: str, expected: str | None, digest: str, size: int, label: str,
                recorded: list[str]) -> str:
    """Compare with the manifest hash, else the hash recorded at first download; else record it."""
    if expected:
        if digest != expected:
            raise DownloadError(f"{label}: the downloaded bytes do not match the manifest (SHA-256 {digest}, "
                                f"expected {expected}); the file was removed, run again to retry")
        return "manifest"
    known = recorded_hash(models_dir, key)
    if known:
        if digest != known:
            raise DownloadError(f"{label}: the downloaded bytes differ from the first download of the same "
                                f"source (SHA-256 {digest}, recorded {known}); the file was removed")
        return "recorded"
    record_hash(models_dir, key, digest, size)
    recorded.append(label)
    log.info("%s: no SHA-256 in the manifest; recorded %s at this first download", label, digest)
    return "first-download"


def _install_hub_part(models_dir: Path, part: PartManifest, meter: fetch.ByteMeter, *, cache_dir: str | None,
                      endpoint: str | None) -> InstallResult:
    src = part.source
    staging = _new_staging(models_dir, part.name)
    result = InstallResult(part.name, part_dir(models_dir, part.name), installed=True)
    files: dict[str, FileRecord] = {}
    placed: set[str] = set()
    commit = None
    fetched_before = meter.fetched
    try:
        for f in part.files:
            found, used = _fetch_with_fallbacks(part, f, meter, cache_dir=cache_dir, endpoint=endpoint)
            commit = commit or found.commit
            meter.start(f"verifying {used}")
            digest = sha256_file(found.blob, cancel=meter.cancel)
            size = found.blob.stat().st_size
            key = f"hf://{src.repo}@{found.commit}/{src.hub_filename(used)}"
            try:
                checked = _check_hash(models_dir, key, f.sha256 if used == f.path else None, digest, size,
                                      f"{part.name}/{used}", result.recorded_hashes)
            except DownloadError:
                fetch.forget_hub_file(found)
                raise
            placed.add(_place(found.blob, staging / used, "hardlink-or-copy"))
            files[used] = FileRecord(digest, size, checked)
            result.bytes += size
        _finish(staging, part, files, placed, "download", commit, result)
    except BaseException as exc:
        _fail_checked(staging, exc)
        raise
    result.files = len(files)
    result.fetched_bytes = meter.fetched - fetched_before
    return result


def _fetch_with_fallbacks(part: PartManifest, f: ManifestFile, meter: fetch.ByteMeter, *, cache_dir, endpoint):
    src = part.source
    for candidate in (f.path, *f.fallbacks):
        meter.start(f"{part.name}/{candidate}")
        try:
            return fetch.fetch_hub_file(src.repo, src.hub_filename(candidate), src.revision, meter,
                                        cache_dir=cache_dir, endpoint=endpoint), candidate
        except fetch.NotOnServer:
            log.info("%s: %s is not on the server; trying the next name", part.name, candidate)
    raise DownloadError(f"{part.name}: {' or '.join((f.path, *f.fallbacks))} not found in {src.describe()}")


def _finish(staging: Path, part: PartManifest, files: dict[str, FileRecord], placed: set[str], method: str,
            commit: str | None, result: InstallResult, source: str | None = None) -> None:
    status = check_part_folder(staging, part.name)
    if not status.ok:
        raise ModelPackError(f"the {method}ed files do not form a valid {part.name} part: "
                             f"{status.detail.replace(str(staging), '(staged)')}", part=part.name,
                             hint=status.where_to_get)
    result.placed = _summary_of(set(placed))
    write_record(staging, PartRecord(part=part.name, source=source or part.source.describe(), method=method,
                                     placed=result.placed, files=files, installed_at=now_iso(), commit=commit,
                                     license=part.license.name).with_stamps_from(staging))
    _swap_into_place(staging, result.folder)


def _zip_path(models_dir: Path, part: PartManifest) -> Path:
    tag = hashlib.sha1(str(part.source.url).encode()).hexdigest()[:10]
    return Path(models_dir) / DOWNLOADS_DIR / f"{part.name}-{tag}.zip"


def _install_zip_part(models_dir: Path, part: PartManifest, meter: fetch.ByteMeter) -> InstallResult:
    src = part.source
    zip_path = _zip_path(models_dir, part)
    result = InstallResult(part.name, part_dir(models_dir, part.name), installed=True)
    fetched_before = meter.fetched
    meter.start(f"{part.name}: {PurePosixPath(str(src.url)).name}")
    try:
        if not zip_path.exists():
            fetch.download_url(str(src.url), zip_path, meter, expected_size=src.size)
    except OSError as exc:
        raise DownloadError(f"cannot write {zip_path}: {exc}") from exc
    meter.start(f"verifying {zip_path.name}")
    digest = sha256_file(zip_path, cancel=meter.cancel)
    try:
        archive_checked = _check_hash(models_dir, str(src.url), src.sha256, digest, zip_path.stat().st_size,
                                      f"{part.name} archive", result.recorded_hashes)
    except DownloadError:
        zip_path.unlink(missing_ok=True)
        raise
    staging = _new_staging(models_dir, part.name)
    try:
        files = _extract_wanted(zip_path, part, staging, result, archive_checked)
        _finish(staging, part, files, {"extract"}, "download", None, result)
    except zipfile.BadZipFile as exc:
        shutil.rmtree(staging, ignore_errors=True)
        zip_path.unlink(missing_ok=True)
        raise DownloadError(f"{part.name}: the downloaded archive is not a valid zip ({exc}); it was removed",
                            zip_path) from exc
    except BaseException as exc:
        _fail_checked(staging, exc)
        raise
    zip_path.unlink(missing_ok=True)  # extracted and verified: the archive is no longer needed
    result.files = len(files)
    result.fetched_bytes = meter.fetched - fetched_before
    return result


def _install_url_part(models_dir: Path, part: PartManifest, meter: fetch.ByteMeter) -> InstallResult:
    """A part that is one file at a URL (a GitHub release asset): fetched to `.downloads/` (resumable),
    verified, then moved into the staged part."""
    src = part.source
    (wanted,) = part.files
    download = _zip_path(models_dir, part)  # the same resumable place as an archive's
    result = InstallResult(part.name, part_dir(models_dir, part.name), installed=True)
    fetched_before = meter.fetched
    meter.start(f"{part.name}: {wanted.path}")
    try:
        if not download.exists():
            fetch.download_url(str(src.url), download, meter, expected_size=src.size or wanted.size)
    except OSError as exc:
        raise DownloadError(f"cannot write {download}: {exc}") from exc
    meter.start(f"verifying {wanted.path}")
    digest = sha256_file(download, cancel=meter.cancel)
    size = download.stat().st_size
    try:
        checked = _check_hash(models_dir, str(src.url), src.sha256 or wanted.sha256, digest, size,
                              f"{part.name}/{wanted.path}", result.recorded_hashes)
    except DownloadError:
        download.unlink(missing_ok=True)
        raise
    staging = _new_staging(models_dir, part.name)
    try:
        os.replace(download, staging / wanted.path)
        _finish(staging, part, {wanted.path: FileRecord(digest, size, checked)}, {"download"}, "download", None,
                result)
    except BaseException as exc:
        _fail_checked(staging, exc)
        raise
    result.files, result.bytes = 1, size
    result.fetched_bytes = meter.fetched - fetched_before
    return result


def _member_for(names: list[zipfile.ZipInfo], wanted: str) -> zipfile.ZipInfo | None:
    """The shallowest member whose base name is `wanted` (zips nest their files differently)."""
    matches = [m for m in names if not m.is_dir() and PurePosixPath(m.filename).name == wanted
               and "__MACOSX" not in m.filename]
    return min(matches, key=lambda m: m.filename.count("/")) if matches else None


def _extract_wanted(zip_path: Path, part: PartManifest, staging: Path, result: InstallResult,
                    archive_checked: str) -> dict[str, FileRecord]:
    """Extract the part's files from the archive, flattened; `archive_checked` says how the archive
    itself was verified (recorded for files the manifest has no hash of)."""
    files: dict[str, FileRecord] = {}
    with zipfile.ZipFile(zip_path) as archive:
        members = archive.infolist()
        for f in part.files:
            member = _member_for(members, f.path)
            if member is None:
                raise DownloadError(f"{part.name}: the archive has no {f.path}", zip_path)
            checked_archive_member(member, zip_path, part.name)
            dest = staging / f.path  # written under its base name only: member paths are never trusted
            with archive.open(member) as data:
                sha = _copy_into_new_file(data, dest, _WEIGHTS_MODE)
            size = dest.stat().st_size
            checked = f"archive:{archive_checked}"
            if f.sha256:
                if sha != f.sha256:
                    raise DownloadError(f"{part.name}/{f.path}: the extracted file does not match the manifest "
                                        f"(SHA-256 {sha}, expected {f.sha256})")
                checked = "manifest"
            files[f.path] = FileRecord(sha, size, checked)
            result.bytes += size
    return files


# --- import -----------------------------------------------------------------------------------------------

def _hub_cache_snapshot(root: Path, part: PartManifest) -> tuple[Path, str | None] | None:
    """If `root` is an HF cache (or one repo's folder in it), the snapshot folder to read and its commit."""
    repo_folder = None
    if part.source.kind == "hub":
        name = "models--" + str(part.source.repo).replace("/", "--")
        if (root / name / "snapshots").is_dir():
            repo_folder = root / name
    if repo_folder is None and root.name.startswith("models--") and (root / "snapshots").is_dir():
        repo_folder = root
    if repo_folder is None:
        return None
    ref = repo_folder / "refs" / part.source.revision
    if ref.is_file() and not ref.is_symlink():
        commit = ref.read_text().strip()
        # a commit is a folder name: anything else (a path with `..`) would lead out of the cache
        if _COMMIT_RE.fullmatch(commit) and (repo_folder / "snapshots" / commit).is_dir():
            return repo_folder / "snapshots" / commit, commit
    snapshots = sorted((p for p in (repo_folder / "snapshots").iterdir() if p.is_dir()),
                       key=lambda p: p.stat().st_mtime, reverse=True)
    return (snapshots[0], snapshots[0].name) if snapshots else None


def _import_root(source: Path, part: PartManifest) -> tuple[Path, str | None]:
    """The folder inside `source` that is laid out like the part (hub repo, HF cache, unpacked zip)."""
    commit = None
    root = source
    snap = _hub_cache_snapshot(source, part)
    if snap is not None:
        root, commit = snap
    layout = PARTS[part.name]
    candidates = [root]
    sub = part.source.subfolder
    if sub:
        candidates.insert(0, root / sub)
    # unpacked zips: antelopev2/ or antelopev2/antelopev2/
    leaf = Path(layout.folder).name
    candidates += [root / leaf, root / leaf / leaf]
    for candidate in candidates:
        if candidate.is_dir() and all(any(_present(candidate / alt) for alt in spec) for spec in layout.files):
            return candidate, commit
    needed = ", ".join(" or ".join(spec) for spec in layout.files)
    raise ModelPackError(f"this folder is not laid out like the {part.name} part: it needs {needed}"
                         + (f" (looked in {', '.join(str(c) for c in candidates if c.is_dir())})"), source,
                         part=part.name, hint=PARTS[part.name].where_to_get)


def import_part(models_dir: Path, name: str, source: str | Path, *,
                manifest: str | Path | Manifest | dict | None = None, mode: str = "link",
                progress: ProgressCallback | None = None, cancel: CancelCheck | None = None) -> InstallResult:
    """Adopt files the user already has (a folder laid out like the hub repo, an HF cache, an unpacked
    or zipped InsightFace pack): verify, then hard-link them into the pack (symlink across file systems,
    copy as a last resort, or always copy with mode="copy"). Only regular files inside the source are
    taken (`import_sources.py`); anything else raises UnsafeSourceError naming it. No network access."""
    models_dir = Path(models_dir)
    manifest = load_manifest(manifest)
    part = manifest.part(name)
    if name not in PARTS:
        raise UsageError(f"the manifest's part {name!r} has no place in the model pack layout")
    source = Path(source).expanduser()
    if not os.path.lexists(source):
        raise UsageError("no such file or folder", source)
    target = part_dir(models_dir, name)
    if source.resolve() == target.resolve():
        raise UsageError("this is already the installed part's folder", source)
    models_dir.mkdir(parents=True, exist_ok=True)
    result = InstallResult(name, target, installed=True)
    if source.is_dir():
        top = Path(os.path.realpath(source))  # the folder named may be a link; nothing inside it is followed
        root, commit = _import_root(top, part)
        return _import_files(models_dir, part, top, root, _files_to_import(root, part), commit, mode, result,
                             progress, cancel)
    if _is_the_parts_only_file(source, name):
        # The part's one file itself (photomaker-v1.bin, a torch zip archive, is not an archive of it),
        # checked as an entry of its folder: a link there is refused like one inside a pack folder.
        top = Path(os.path.realpath(source.parent))
        return _import_files(models_dir, part, top, top, [source.name], None, mode, result, progress, cancel)
    if not source.is_file():
        raise UnsafeSourceError(f"is {kind_of_path(source)}; only a folder, a zip archive or the "
                                "part's file can be imported. Nothing was imported", source, part=name)
    if not zipfile.is_zipfile(source):
        raise UsageError("expected a folder, a zip archive or the part's file "
                         f"({' or '.join(PARTS[name].files[0])})", source)
    return _import_archive(models_dir, part, Path(os.path.realpath(source)), result, cancel)


def _import_archive(models_dir: Path, part: PartManifest, archive: Path, result: InstallResult,
                    cancel: CancelCheck | None) -> InstallResult:
    staging = _new_staging(models_dir, part.name)
    try:
        sha = sha256_file(archive, cancel=cancel)
        if part.source.sha256 and sha != part.source.sha256:
            raise ModelPackError(f"this archive is not the released one (SHA-256 {sha}, expected "
                                 f"{part.source.sha256})", archive, part=part.name, hint=PARTS[part.name].where_to_get)
        files = _extract_wanted(archive, part, staging, result, "manifest" if part.source.sha256 else "unknown")
        _finish(staging, part, files, {"extract"}, "import", None, result, source=str(archive))
    except BaseException as exc:
        _fail_checked(staging, exc)
        raise
    result.files = len(files)
    return result


def _import_files(models_dir: Path, part: PartManifest, top: Path, root: Path, chosen: list[str],
                  commit: str | None, mode: str, result: InstallResult, progress: ProgressCallback | None,
                  cancel: CancelCheck | None) -> InstallResult:
    """Import the files `chosen` (relative to `root`, inside the source folder `top`): every one is
    checked before anything is placed, then placed, hashed where it now lies and compared with what is
    known of it."""
    sources = {rel: checked_source_file(top, root / rel, part.name) for rel in chosen}
    meter = fetch.ByteMeter(progress, sum(src.size for src in sources.values()), cancel)
    staging = _new_staging(models_dir, part.name)
    files: dict[str, FileRecord] = {}
    placed: set[str] = set()
    try:
        for rel, src in sources.items():
            meter.start(f"checking {rel}")
            method, digest, stamp = _place_source_file(src, staging / rel, mode, part.name, cancel)
            meter.add(src.size, fetched=False)
            checked = _imported_file_checked(models_dir, part, rel, digest, commit, src.path)
            placed.add(method)
            files[rel] = FileRecord(digest, stamp.size, checked).with_stamp(stamp)
            result.bytes += stamp.size
        _finish(staging, part, files, placed, "import", commit, result, source=str(root))
    except BaseException as exc:
        _fail_checked(staging, exc)
        raise
    result.files = len(files)
    return result


def _imported_file_checked(models_dir: Path, part: PartManifest, rel: str, digest: str, commit: str | None,
                           path: Path) -> str:
    """What an imported file's hash was checked against ("manifest", "recorded", "unknown"); raises
    ModelPackError when it differs from a known hash."""
    entry = part.file(rel)
    expected = entry.sha256 if entry is not None and entry.path == rel else None
    if expected:
        if digest != expected:
            raise ModelPackError(f"{rel} is not the released file (SHA-256 {digest}, expected {expected})",
                                 path, part=part.name, hint=PARTS[part.name].where_to_get)
        return "manifest"
    if commit and part.source.kind == "hub":
        known = recorded_hash(models_dir, f"hf://{part.source.repo}@{commit}/{part.source.hub_filename(rel)}")
        if known and known != digest:
            raise ModelPackError(f"{rel} differs from the file first downloaded from the same commit",
                                 path, part=part.name, hint=PARTS[part.name].where_to_get)
        return "recorded" if known else "unknown"
    return "unknown"


def _place_source_file(src: SourceFile, dst: Path, mode: str, part: str,
                       cancel: CancelCheck | None) -> tuple[str, str, FileStamp]:
    """Place a checked source file at `dst` (hardlink, else symlink with mode "link", else copy; always
    a copy with mode "copy") and hash it there. Returns (how, SHA-256, the stamp the hash belongs to).
    The placed file must be the very file that was checked: a file swapped for another (or for a
    link) in between is refused."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "copy":
        return "copy", *_copy_source_file(src, dst, part, cancel)
    method = _link_source_file(src, dst, allow_symlink=mode == "link")
    if method == "copy":
        return method, *_copy_source_file(src, dst, part, cancel)
    if not src.is_still(os.stat(dst)):
        raise UnsafeSourceError("was replaced while it was being imported; nothing was imported, run the "
                                "import again", src.path, part=part)
    digest, stamp = hash_with_stamp(dst, cancel=cancel)
    if stamp is None:
        raise ModelPackError("changed while it was being imported; nothing was imported, run the import again",
                             src.path, part=part)
    return method, digest, stamp


def _link_source_file(src: SourceFile, dst: Path, allow_symlink: bool) -> str:
    """Hard-link `src.real` at `dst`, else symlink it when allowed; "copy" when neither worked. (A file
    swapped for a link meanwhile is caught after: the placed file's inode is compared with the checked one.)"""
    try:
        os.link(src.real, dst)
        return "hardlink"
    except (OSError, NotImplementedError):
        pass
    if allow_symlink:
        try:
            os.symlink(src.real, dst)
            return "symlink"
        except OSError:
            pass
    return "copy"


def _copy_source_file(src: SourceFile, dst: Path, part: str, cancel: CancelCheck | None) -> tuple[str, FileStamp]:
    """Copy a checked source file into a new file of ours, hashing the bytes as they are written. The
    copy is readable by others only where the source is (a root-only file stays private)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(src.real, flags)  # no link followed, and a FIFO put there meanwhile cannot block us
    except OSError as exc:
        raise UnsafeSourceError(f"cannot be read ({exc.strerror or exc}); nothing was imported", src.path,
                                part=part) from exc
    with os.fdopen(fd, "rb") as data:
        st = os.fstat(data.fileno())
        if not stat.S_ISREG(st.st_mode) or not src.is_still(st):
            raise UnsafeSourceError("was replaced while it was being imported; nothing was imported, run the "
                                    "import again", src.path, part=part)
        digest = _copy_into_new_file(data, dst, 0o600 | (st.st_mode & 0o044), cancel)
    return digest, stamp_of(dst)


def _present(path: Path) -> bool:
    """Whether something other than a folder is at `path`: a file, or a link, pipe or device that the
    import then refuses by name (rather than saying the file is missing)."""
    return os.path.lexists(path) and not path.is_dir()


def _is_the_parts_only_file(source: Path, name: str) -> bool:
    """Whether `source` is, by its name, the one file a single-file part consists of."""
    specs = PARTS[name].files
    return len(specs) == 1 and source.name in specs[0]


def _files_to_import(root: Path, part: PartManifest) -> list[str]:
    """One file per layout requirement (first alternative present), plus the manifest's other files
    (tokenizer configs and the like) when the folder has them."""
    specs = PARTS[part.name].files
    chosen = [next(a for a in spec if _present(root / a)) for spec in specs]
    covered = {alt for spec in specs for alt in spec}
    chosen += [f.path for f in part.files if f.path not in covered and _present(root / f.path)]
    return chosen


# --- remove and list ---------------------------------------------------------------------------------------

def remove_part(models_dir: Path, name: str) -> int:
    """Remove an installed part (renamed away first, so it disappears at once). Returns the bytes freed
    (files also linked elsewhere, e.g. from the HF cache or an imported folder, free nothing)."""
    if name not in PARTS:
        raise UsageError(f"unknown model part {name!r}; known parts: {', '.join(PARTS)}")
    target = part_dir(models_dir, name)
    if not target.exists():
        raise UsageError(f"{name} is not installed", target)
    freed = 0
    for path in target.rglob("*"):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            if st.st_nlink == 1:
                freed += st.st_size
    trash = _staging_root(Path(models_dir)) / f"removing-{name}-{uuid.uuid4().hex[:8]}"
    os.replace(target, trash)
    shutil.rmtree(trash, ignore_errors=True)
    return freed


@dataclass(frozen=True)
class PartSummary:
    name: str
    title: str
    state: str
    required: bool
    size_on_disk: int
    license: str
    license_url: str
    non_commercial: bool
    license_accepted: bool
    installed_by: str  # "download (hardlink)", "import (symlink)", "by hand", ""
    installed_at: str


def list_parts(models_dir: Path, manifest: str | Path | Manifest | dict | None = None) -> list[PartSummary]:
    """What is installed, its size, licence and how it got there. No network access."""
    models_dir = Path(models_dir)
    manifest = load_manifest(manifest)
    out = []
    for name, layout in PARTS.items():
        status = check_part(models_dir, name)
        folder = part_dir(models_dir, name)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
        try:
            record = read_record(folder) if folder.is_dir() else None
        except FaceMeError:
            record = None
        how = f"{record.method} ({record.placed})" if record else ("by hand" if status.state != "missing" else "")
        part = manifest.parts.get(name)
        out.append(PartSummary(
            name=name, title=layout.title, state=status.state, required=layout.required_for_restoration,
            size_on_disk=size, license=part.license.name if part else layout.license_name,
            license_url=part.license.url if part else layout.license_url,
            non_commercial=part.license.non_commercial if part else layout.non_commercial,
            license_accepted=is_accepted(models_dir, part) if part else False,
            installed_by=how, installed_at=record.installed_at if record else ""))
    return out


__all__ = ["InstallResult", "PartSummary", "check_disk_space", "download_parts", "import_part",
           "list_parts", "parts_to_fetch", "remove_part", "resolve_part_names"]
