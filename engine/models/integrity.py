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
  it was placed (hardlink, symlink, copy). Every check (`verify`, `info`, loading) compares sizes and
  modification times with it and re-hashes a file whose time changed (`--full` re-hashes all), so
  bytes flipped inside a tensor are caught before the weights are used; a file that was only touched
  gets its new time recorded. `check_model_file()` checks a file's SHA-256 against it before an
  onnxruntime session (or any loader) opens it. A test pack built locally gets its own record when
  installed or imported, so the same checks apply to it. A part placed by hand has no record: it gets
  one the first time it is loaded (`record_first_use`, said in a warning), and is checked from then on.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
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
class FileRecord:
    sha256: str
    size: int
    #: "manifest" (matched the manifest's hash), "recorded" (matched a hash recorded at an earlier
    #: download), "first-download" (no hash was known: this one is now the reference), "unknown" (imported
    #: from a folder, no reference hash known), "first-use" (a part placed by hand, hashed when first loaded)
    checked_against: str = "unknown"
    #: the file's modification time when it was last hashed; None in records of older versions
    mtime_ns: int | None = None


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
                            **({"mtime_ns": f.mtime_ns} if f.mtime_ns is not None else {})}
                      for rel, f in sorted(self.files.items())},
        }

    @classmethod
    def from_dict(cls, data: dict) -> PartRecord:
        return cls(part=data["part"], source=data.get("source", ""), method=data.get("method", ""),
                   placed=data.get("placed", ""), installed_at=data.get("installed_at", ""),
                   commit=data.get("commit"), license=data.get("license", ""),
                   files={rel: FileRecord(sha256=f["sha256"], size=int(f["size"]),
                                          checked_against=f.get("checked_against", "unknown"),
                                          mtime_ns=f.get("mtime_ns"))
                          for rel, f in data.get("files", {}).items()})

    def with_times_from(self, folder: Path) -> PartRecord:
        """The record with each file's current modification time in `folder`."""
        return replace(self, files={rel: replace(f, mtime_ns=(Path(folder) / rel).stat().st_mtime_ns)
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


def files_of_part_folder(folder: Path) -> list[str]:
    """The files a part folder holds (relative POSIX paths), without records and hidden entries
    (a hub download's `.cache/`, our temporaries)."""
    folder = Path(folder)
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        found.append(rel.as_posix())
    return sorted(found)


def record_first_use(folder: Path, part: str) -> PartRecord | None:
    """Give a part placed by hand (no record) a record of its files as they are now, so that later
    changes are caught. None when the folder cannot be written (read-only pack: it stays unchecked)."""
    folder = Path(folder)
    files = {}
    for rel in files_of_part_folder(folder):
        path = folder / rel
        files[rel] = FileRecord(_cached_sha256(path), path.stat().st_size, "first-use", path.stat().st_mtime_ns)
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


#: (path, inode, size, mtime_ns) -> sha256 of files already hashed in this process
_hash_cache: dict[tuple[str, int, int, int], str] = {}
_hash_cache_lock = threading.Lock()


def _cached_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    with _hash_cache_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    digest = sha256_file(path)
    with _hash_cache_lock:
        _hash_cache[key] = digest
    return digest


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
