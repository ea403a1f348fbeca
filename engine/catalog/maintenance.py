"""Checking and copying a SQLite catalog without changing it: `faceme catalog check|backup`.

`check_catalog` reads only (a read-only connection): the file's header and size, SQLite's full
`integrity_check`, foreign keys, and the schema revision against this version's newest. `backup_catalog`
copies a live catalog with SQLite's online backup API (a consistent snapshot even while a scan writes),
into a partial file beside the target that is checked before it takes the target's name. The partial
file's name says which process writes it (".family.sqlite3.backup-by-1234@host.x1y2z3.partial"), so a
later backup to the same target removes one left by a backup that was killed, and never one that a
live backup is still writing. Both work on read-only media (see `read_only_connection`).
"""

from __future__ import annotations

import glob
import logging
import os
import re
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.catalog.db import check_sqlite_file, head_revision, normalise_url, read_only_connection, sqlite_file
from engine.errors import CatalogError, UsageError
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report
from engine.text import plural

log = logging.getLogger(__name__)

#: pages copied per step of the online backup: small enough that a scan's writes interleave
_BACKUP_PAGES_PER_STEP = 1024
#: a partial copy whose writer can't be asked (on another computer, or from a version that did not name
#: it) is taken as abandoned once untouched this long: a live backup writes at every step
_ABANDONED_AFTER_SECONDS = 3600


@dataclass(frozen=True)
class CatalogCheck:
    path: Path
    problems: list[str] = field(default_factory=list)
    revision: str | None = None
    head: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    #: the embedding model the catalog's faces come from, and how many faces of other models it holds
    #: (engine.catalog.face_model; only a catalog damaged by older versions has any)
    face_model: str | None = None
    other_model_faces: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _sqlite_path(url_or_path: str | Path) -> Path:
    path = sqlite_file(normalise_url(url_or_path))
    if path is None:
        raise UsageError("checking and backing up work on SQLite catalog files only "
                         "(use the server's own tools for other databases)")
    return path


def check_catalog(url_or_path: str | Path) -> CatalogCheck:
    """What is wrong with the catalog file, if anything; never writes to it."""
    path = _sqlite_path(url_or_path)
    if not path.is_file():
        raise CatalogError("there is no catalog file here (scan an album to create one)", path,
                           reason="cannot-open")
    head = head_revision()
    problem = check_sqlite_file(path, full=True)
    if problem != "ok":
        return CatalogCheck(path, [problem], head=head)
    problems: list[str] = []
    revision = None
    counts: dict[str, int] = {}
    connection = read_only_connection(path)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "alembic_version" in tables:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = row[0] if row else None
        if revision is None and tables - {"alembic_version"}:
            problems.append("half-made schema (tables without a recorded revision); opening the catalog "
                            "repairs it when those tables are empty")
        elif revision is None:
            problems.append("empty: no schema yet (opening it creates one)")
        for row in connection.execute("PRAGMA foreign_key_check"):
            problems.append(f"row {row[1]} of {row[0]} points to a missing row of {row[2]}")
            if len(problems) > 20:
                break
        for table in ("photos", "faces", "people", "batch_jobs"):
            if table in tables:
                counts[table] = connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        face_model, others = _face_models(connection, tables)
        if others:
            problems.append(f"{plural(others, 'face')} from another face model than the catalog's ({face_model}): "
                            "a photo may show two faces for one person; `faceme catalog reanalyse --model "
                            "…` moves every photo to one model")
    except sqlite3.Error as exc:
        problems.append(str(exc))
        face_model, others = None, 0
    finally:
        connection.close()
    return CatalogCheck(path, problems, revision=revision, head=head, counts=counts, face_model=face_model,
                        other_model_faces=others)


def _face_models(connection, tables: set[str]) -> tuple[str | None, int]:
    """(the catalog's face model, faces of other models), read only (engine.catalog.face_model's rule)."""
    if "faces" not in tables:
        return None, 0
    per_model = dict(connection.execute("SELECT embedding_model, count(*) FROM faces GROUP BY embedding_model"))
    recorded = None
    if "catalog_settings" in tables:
        row = connection.execute("SELECT value FROM catalog_settings WHERE key = 'face_model'").fetchone()
        recorded = row[0] if row else None
    model = recorded or (max(per_model, key=per_model.get) if per_model else None)
    return model, sum(n for m, n in per_model.items() if m != model)


def backup_catalog(url_or_path: str | Path, target: str | Path, progress: ProgressCallback | None = None,
                   cancel: CancelCheck | None = None) -> Path:
    """Copy the catalog to `target` (a file that must not exist yet) with SQLite's online backup; the
    copy is integrity-checked before it takes the target's name. Returns the target."""
    source = _sqlite_path(url_or_path)
    target = Path(target).expanduser()
    if target.is_dir():
        target = target / source.name
    if not target.parent.is_dir():
        raise UsageError(f"the folder {target.parent} does not exist")
    remove_abandoned_partials(target)
    if target.exists():
        raise UsageError(f"{target} already exists; choose a new file name for the backup")
    problem = check_sqlite_file(source) if source.is_file() else "there is no catalog file here"
    if problem != "ok":
        raise CatalogError(f"cannot back up this catalog: {problem}", source, reason="damaged")
    temp = _new_partial(target)
    try:
        src = read_only_connection(source)
        dst = sqlite3.connect(temp)
        try:
            def step(_status, remaining, total):
                report(progress, total - remaining, total, "backing up the catalog")
                check_cancelled(cancel, "backup")

            src.backup(dst, pages=_BACKUP_PAGES_PER_STEP, progress=step)
            # a backup file on its own: no WAL beside it
            dst.execute("PRAGMA journal_mode=DELETE")
            result = dst.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            dst.close()
            src.close()
        if result != "ok":
            raise CatalogError(f"the backup copy failed its check ({result})", target, reason="io-error")
        with open(temp, "rb") as f:
            os.fsync(f.fileno())
        _move_into_place(temp, target)
    except sqlite3.Error as exc:
        from engine.catalog.db import catalog_error_from

        raise (catalog_error_from(exc, target)
               or CatalogError(f"the backup failed ({exc})", target, reason="io-error")) from exc
    finally:
        temp.unlink(missing_ok=True)
    log.info("catalog %s backed up to %s", source, target)
    return target


def _partial_prefix(target: Path) -> str:
    from engine.catalog.leases import this_host

    return f".{target.name}.backup-by-{os.getpid()}@{this_host()}."


def _new_partial(target: Path) -> Path:
    """A new, empty partial file beside `target`, named after this process (see the module doc)."""
    try:
        fd, name = tempfile.mkstemp(prefix=_partial_prefix(target), suffix=".partial", dir=target.parent)
    except OSError as exc:
        raise UsageError(f"cannot write into {target.parent} ({exc.strerror or exc}); choose a writable "
                         "folder for the backup") from exc
    os.close(fd)
    return Path(name)


def _partials_of(target: Path) -> list[tuple[Path, int | None, str | None]]:
    """The partial files of backups to `target`: (path, writer's pid, writer's host); pid and host are
    None for a partial named by an older version (".NAME.<8 random characters>.partial")."""
    name = re.escape(target.name)
    ours = re.compile(rf"\.{name}\.backup-by-(\d+)@(.+)\.[a-z0-9_]+\.partial")
    older = re.compile(rf"\.{name}\.[a-z0-9_]{{8}}\.partial")
    found = []
    for path in target.parent.glob(f".{glob.escape(target.name)}.*.partial"):
        if match := ours.fullmatch(path.name):
            found.append((path, int(match.group(1)), match.group(2)))
        elif older.fullmatch(path.name):
            found.append((path, None, None))
    return found


def _why_abandoned(partial: Path, pid: int | None, host: str | None) -> str | None:
    """Why no live backup is writing `partial` (for the message), or None when one may be."""
    from engine.catalog.leases import pid_alive, this_host

    if pid is not None and host == this_host():
        return None if pid_alive(pid) else f"process {pid}, which wrote it, is gone"
    try:
        idle = time.time() - partial.stat().st_mtime
    except FileNotFoundError:
        return None  # its backup just finished or removed it
    if idle < _ABANDONED_AFTER_SECONDS:
        return None
    writer = f"process {pid} on {host}" if pid is not None else "an older version of FaceMe"
    return f"written by {writer}, untouched for {idle / 3600:.1f} h"


def remove_abandoned_partials(target: Path) -> list[Path]:
    """Remove the partial files that killed backups to `target` left beside it (a kill -9 mid-copy
    leaves one as large as the catalog); those of live backups stay. Each removal is logged (a warning:
    the user sees that an earlier backup did not finish). Returns the files removed."""
    removed = []
    for partial, pid, host in _partials_of(target):
        why = _why_abandoned(partial, pid, host)
        if why is None:
            log.info("left %s alone: a backup may still be writing it", partial)
            continue
        try:
            partial.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("could not remove %s, left by an interrupted backup: %s", partial, exc.strerror or exc)
            continue
        log.warning("removed %s, a partial copy left by an interrupted backup (%s)", partial, why)
        removed.append(partial)
    return removed


def _move_into_place(temp: Path, target: Path) -> None:
    """Give the finished copy the target's name, never replacing a file that appeared there meanwhile
    (another backup to the same name that finished first): a hard link fails when the name is taken."""
    try:
        os.link(temp, target)
    except FileExistsError as exc:
        raise UsageError(f"{target} appeared while the backup ran (another backup to the same name?); it was "
                         "kept, and this copy discarded. Choose a new file name for the backup") from exc
    except OSError:  # a file system without hard links (FAT, some network shares)
        if target.exists():
            raise UsageError(f"{target} appeared while the backup ran; choose a new file name for the backup")
        os.replace(temp, target)
    # temp is removed by the caller either way


def face_model_of(url_or_path: str | Path) -> tuple[str | None, int]:
    """(the catalog's face model, faces of other models), read only and without the checks; (None, 0)
    for a catalog that is not there yet or not an SQLite file."""
    path = sqlite_file(normalise_url(url_or_path))
    if path is None or not path.is_file() or check_sqlite_file(path) != "ok":
        return None, 0
    connection = read_only_connection(path)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return _face_models(connection, tables)
    except sqlite3.Error:
        return None, 0
    finally:
        connection.close()
