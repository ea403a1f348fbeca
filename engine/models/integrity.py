"""File hashes, the per-part installed record, and the checks run before a model file is loaded.

Three places hold hashes, each with one job:

* The manifest (`manifest.json`) holds the upstream SHA-256 of each released file where it is known.
  It is enforced when a file is downloaded or imported.
* `<models>/.faceme-hashes.json` records the SHA-256 of each file whose manifest hash is unknown, the
  first time it is downloaded (trust on first use, keyed by the exact source: hub repo + resolved
  commit + path, or the URL). Later downloads of the same source must match it. The CLI says when a
  hash was recorded rather than checked.
* `<part folder>/.faceme-part.json`, the installed record, is written last into the staging folder
  at install or import: each file's SHA-256, size and modification time, the source, the commit, how
  it was placed (hardlink, symlink, copy). Every check (`verify`, `info`, loading) compares each file's
  stamp with it (`FileStamp`: size, inode, modification time and change time) and re-hashes a file
  whose stamp differs (`--full` re-hashes all), so bytes flipped inside a tensor are caught before the
  weights are used, even when the old modification time is put back with `os.utime`: the change time
  (st_ctime) is set by the kernel on every write and cannot be set by a user process. A file found
  unchanged under a new stamp (touched, chmod-ed, linked, the pack copied to another disk) is re-hashed
  once and gets its new stamp recorded. Files in a part folder that the record does not list (say an
  extra `unet/diffusion_pytorch_model.fp16.safetensors`, which diffusers would load instead of the
  recorded file) make the part invalid: every file a loader could pick is a recorded, checked one.
  `check_model_file()` checks a file's SHA-256 against the record before an onnxruntime session (or any
  loader) opens it. A test pack built locally gets its own record when installed or imported, so the
  same checks apply to it. A part placed by hand has no record: it gets one the first time it is
  loaded (`record_first_use`, said in a warning), and is checked from then on.

  Limits of the cheap check: on Windows, Python's st_ctime is the creation time (not a change time), and
  FAT/exFAT keep no change time, so there an edit with the old modification time put back is caught
  only by `verify --full`. A file system with unstable inode numbers costs one re-hash per mount.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from engine.errors import ModelPackError
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report

log = logging.getLogger(__name__)

RECORD_NAME = ".faceme-part.json"
RECORDED_HASHES_NAME = ".faceme-hashes.json"
_CHUNK = 1 << 20


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def sha256_file(path: Path, progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
                done_before: int = 0, total: int = 0, message: str = "") -> str:
    """SHA-256 of a file, streamed; progress reports bytes (offset by `done_before`)."""
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                report(progress, done_before + done, max(total, done_before + done), message)
            check_cancelled(cancel, "verification")
    return digest.hexdigest()


def verify_file_hash(path: str | Path, expected: str, part: str | None = None) -> str:
    """Raise ModelPackError unless the file's SHA-256 is `expected`; returns the hash."""
    path = Path(path)
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ModelPackError(f"file is not the expected one (SHA-256 {actual}, expected {expected.lower()})",
                             path, part=part, hint=_reinstall_hint(part))
    return actual


def _reinstall_hint(part: str | None) -> str | None:
    return f"reinstall it: `faceme models download {part}`" if part else None


# --- the installed record ---------------------------------------------------------------------------

@dataclass(frozen=True)
class FileStamp:
    """What one stat says about a file: while the stamp is unchanged, so are the bytes.

    The change time is the part that cannot be forged: the kernel sets it on every write, chmod, link
    and rename, and `os.utime` (or `touch -d`) cannot set it, so putting the old modification time back
    after an edit still changes the stamp. The inode catches a file replaced by another one."""

    size: int
    inode: int
    mtime_ns: int
    ctime_ns: int


def stamp_of(path: Path) -> FileStamp:
    st = os.stat(path)
    return FileStamp(st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class FileRecord:
    sha256: str
    size: int
    #: "manifest" (matched the manifest's hash), "recorded" (matched a hash recorded at an earlier
    #: download), "first-download" (no hash was known: this one is now the reference), "unknown" (imported
    #: from a folder, no reference hash known), "first-use" (a part placed by hand, hashed when first loaded)
    checked_against: str = "unknown"
    #: the file's stamp when it was last hashed; None in records of older versions (then the next
    #: check hashes the file once and records its stamp)
    mtime_ns: int | None = None
    ctime_ns: int | None = None
    inode: int | None = None

    @property
    def stamp(self) -> FileStamp | None:
        if self.mtime_ns is None or self.ctime_ns is None or self.inode is None:
            return None
        return FileStamp(self.size, self.inode, self.mtime_ns, self.ctime_ns)

    def with_stamp(self, stamp: FileStamp | None) -> FileRecord:
        if stamp is None:  # the file changed while it was hashed: leave it to be hashed again
            return replace(self, mtime_ns=None, ctime_ns=None, inode=None)
        return replace(self, mtime_ns=stamp.mtime_ns, ctime_ns=stamp.ctime_ns, inode=stamp.inode)


@dataclass(frozen=True)
class PartRecord:
    part: str
    source: str
    method: str  # "download" | "import" | "by hand" (recorded on first use)
    placed: str  # "hardlink" | "symlink" | "copy" | "mixed" | "extract"
    files: dict[str, FileRecord]
    installed_at: str = ""
    commit: str | None = None
    license: str = ""

    def to_dict(self) -> dict:
        return {
            "format": 1, "part": self.part, "source": self.source, "commit": self.commit, "method": self.method,
            "placed": self.placed, "installed_at": self.installed_at, "license": self.license,
            "files": {rel: {"sha256": f.sha256, "size": f.size, "checked_against": f.checked_against,
                            **{key: value for key, value in (("mtime_ns", f.mtime_ns), ("ctime_ns", f.ctime_ns),
                                                             ("inode", f.inode)) if value is not None}}
                      for rel, f in sorted(self.files.items())},
        }

    @classmethod
    def from_dict(cls, data: dict) -> PartRecord:
        return cls(part=data["part"], source=data.get("source", ""), method=data.get("method", ""),
                   placed=data.get("placed", ""), installed_at=data.get("installed_at", ""),
                   commit=data.get("commit"), license=data.get("license", ""),
                   files={rel: FileRecord(sha256=f["sha256"], size=int(f["size"]),
                                          checked_against=f.get("checked_against", "unknown"),
                                          mtime_ns=f.get("mtime_ns"), ctime_ns=f.get("ctime_ns"),
                                          inode=f.get("inode"))
                          for rel, f in data.get("files", {}).items()})

    def with_stamps_from(self, folder: Path) -> PartRecord:
        """The record with the current stamp in `folder` of each file that has none yet (files stamped
        when they were hashed keep that stamp: a change since then must stay visible)."""
        return replace(self, files={rel: f if f.stamp is not None else f.with_stamp(stamp_of(Path(folder) / rel))
                                    for rel, f in self.files.items()})


def write_record(folder: Path, record: PartRecord) -> None:
    # a unique temporary: two processes recording the same part must not collide
    fd, tmp = tempfile.mkstemp(prefix=RECORD_NAME + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(record.to_dict(), indent=1))
        os.replace(tmp, Path(folder) / RECORD_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def entries_of_part_folder(folder: Path) -> list[str]:
    """Everything but folders in a part folder (relative POSIX paths): files, links, pipes, sockets;
    without records and hidden entries (a hub download's `.cache/`, our temporaries). Linked folders
    are walked too (once each), since a loader reads through them."""
    folder = Path(folder)
    found, walked = [], set()
    for top, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in walked:  # a link back to a folder already walked
            dirs[:] = []
            continue
        walked.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [(Path(top) / name).relative_to(folder).as_posix() for name in names if not name.startswith(".")]
    return sorted(found)


def files_of_part_folder(folder: Path) -> list[str]:
    """The regular files (or links to them) among `entries_of_part_folder`."""
    return [rel for rel in entries_of_part_folder(folder) if (Path(folder) / rel).is_file()]


#: Files a part folder may hold beside the recorded ones: documentation no loader reads.
_NEVER_LOADED = re.compile(r"(readme|licen[cs]e|notice|copying)(\.[a-z]+)?|.*\.md|thumbs\.db|desktop\.ini",
                           re.IGNORECASE)


def unrecorded_entries(folder: Path, record: PartRecord) -> list[str]:
    """Entries of a part folder that its record does not list (documentation aside). Loaders choose
    files by what is present (diffusers takes an `*.fp16.safetensors` over the recorded file, InsightFace
    every `*.onnx`), so an unrecorded file could be loaded without ever being checked."""
    return [rel for rel in entries_of_part_folder(folder)
            if rel not in record.files and not _NEVER_LOADED.fullmatch(rel.rsplit("/", 1)[-1])]


def record_first_use(folder: Path, part: str) -> PartRecord | None:
    """Give a part placed by hand (no record) a record of its files as they are now, so that later
    changes are caught. None when the folder cannot be written (read-only pack: it stays unchecked)."""
    folder = Path(folder)
    files = {}
    for rel in files_of_part_folder(folder):
        digest, stamp = hash_with_stamp(folder / rel)
        files[rel] = FileRecord(digest, (folder / rel).stat().st_size, "first-use").with_stamp(stamp)
    record = PartRecord(part=part, source=f"placed by hand in {folder}", method="by hand",
                        placed="recorded on first use",
                        files=files, installed_at=now_iso())
    try:
        write_record(folder, record)
    except OSError as exc:
        log.warning("%s: no install record, and none can be written (%s); its files are loaded unchecked",
                    folder, exc.strerror or exc)
        return None
    log.warning("%s (%s) had no install record: recorded the SHA-256 of its %d files now; from now on a "
                "change to them is caught before loading", folder, part, len(files))
    return record


def read_record(folder: Path) -> PartRecord | None:
    """The installed record of a part folder; None when there is none. A damaged record raises."""
    path = Path(folder) / RECORD_NAME
    if not path.is_file():
        return None
    try:
        return PartRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelPackError(f"the installed record is damaged ({exc})", path) from exc


# --- hashes recorded at first download (trust on first use) ---------------------------------------------

_tofu_lock = threading.Lock()


def recorded_hash(models_dir: Path, key: str) -> str | None:
    entry = _read_tofu(models_dir).get(key)
    return entry["sha256"] if entry else None


def record_hash(models_dir: Path, key: str, sha256: str, size: int) -> None:
    with _tofu_lock:
        data = _read_tofu(models_dir)
        data[key] = {"sha256": sha256, "size": size, "recorded_at": now_iso()}
        path = Path(models_dir) / RECORDED_HASHES_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"format": 1, "hashes": data}, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)


def _read_tofu(models_dir: Path) -> dict:
    path = Path(models_dir) / RECORDED_HASHES_NAME
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")).get("hashes", {}))
    except (OSError, ValueError) as exc:
        raise ModelPackError(f"the file of recorded hashes is damaged ({exc}); delete it to start over",
                             path) from exc


# --- checks before loading -------------------------------------------------------------------------------

@dataclass(frozen=True)
class FileCheck:
    path: Path
    state: str  # "verified" | "unrecorded"
    sha256: str | None = None


#: (real path, stamp) -> sha256 of files already hashed in this process
_hash_cache: dict[tuple[str, FileStamp], str] = {}
_hash_cache_lock = threading.Lock()


def hash_with_stamp(path: Path, cancel: CancelCheck | None = None) -> tuple[str, FileStamp | None]:
    """The file's SHA-256 and the stamp it belongs to; the stamp is None when the file changed while
    it was being hashed (then the hash must not be trusted for that stamp). Cached per stamp for this
    process, so loading the same model twice costs one hash."""
    path = Path(path)
    before = stamp_of(path)
    key = (os.path.realpath(path), before)
    with _hash_cache_lock:
        if key in _hash_cache:
            return _hash_cache[key], before
    digest = sha256_file(path, cancel=cancel)
    if stamp_of(path) != before:
        log.info("%s changed while it was being hashed", path)
        return digest, None
    with _hash_cache_lock:
        _hash_cache[key] = digest
    return digest, before


def _cached_sha256(path: Path) -> str:
    return hash_with_stamp(path)[0]



def find_record_for(path: Path, max_levels: int = 3) -> tuple[Path, PartRecord] | None:
    """The part folder above `path` that holds an installed record, with the record."""
    folder = Path(path).parent
    for _ in range(max_levels):
        record = read_record(folder)
        if record is not None:
            return folder, record
        if folder.parent == folder:
            break
        folder = folder.parent
    return None


def check_model_file(path: str | Path, expected_sha256: str | None = None, require_record: bool = False) -> FileCheck:
    """Check a weights file (e.g. an ONNX model) before it is loaded.

    The file must exist and be non-empty; its SHA-256 must match `expected_sha256` when given, and the
    installed record of its part when there is one. ONNX external-data files (`NAME.onnx.data`) next to
    it are checked the same way. Hashes are cached per (path, inode, size, mtime) for this process, so
    loading the same model twice costs one hash. Raises ModelPackError naming the file on any mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelPackError("model file not found", path, hint="`faceme models verify` lists what is missing")
    if path.stat().st_size == 0:
        raise ModelPackError("model file is empty", path, hint="reinstall the part that holds it")
    found = find_record_for(path)
    part = found[1].part if found else None
    checked: str | None = None
    if expected_sha256:
        checked = _cached_sha256(path)
        if checked != expected_sha256.lower():
            raise ModelPackError(f"file is not the expected one (SHA-256 {checked}, expected {expected_sha256})",
                                 path, part=part, hint=_reinstall_hint(part))
    if found is not None:
        folder, record = found
        extra = [path.with_name(path.name + ".data")] if path.suffix == ".onnx" else []
        for candidate in [path, *[p for p in extra if p.is_file()]]:
            rel = candidate.relative_to(folder).as_posix()
            entry = record.files.get(rel)
            if entry is None:
                raise ModelPackError(f"file is not part of the installed {record.part!r} pack (no record of it)",
                                     candidate, part=record.part, hint=_reinstall_hint(record.part))
            digest = _cached_sha256(candidate)
            if digest != entry.sha256:
                raise ModelPackError(f"file changed since it was installed (SHA-256 {digest}, "
                                     f"installed {entry.sha256})", candidate, part=record.part,
                                     hint=_reinstall_hint(record.part))
            if candidate == path:
                checked = digest
        return FileCheck(path, "verified", checked)
    if require_record:
        raise ModelPackError("no installed record next to this file, so it cannot be checked", path,
                             hint="install it with `faceme models download` or `faceme models import`")
    log.info("%s: no installed record; loading it unchecked", path)
    return FileCheck(path, "verified" if checked else "unrecorded", checked)
