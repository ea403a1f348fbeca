"""Checking and copying a SQLite catalog without changing it: `faceme catalog check|backup`.

`check_catalog` reads only (a read-only connection): the file's header and size, SQLite's full
`integrity_check`, foreign keys, and the schema revision against this version's newest. `backup_catalog`
copies a live catalog with SQLite's online backup API (a consistent snapshot even while a scan writes),
into a temporary file beside the target that is checked before it is renamed into place.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from engine.catalog.db import check_sqlite_file, head_revision, normalise_url, read_only_connection, sqlite_file
from engine.errors import CatalogError, UsageError
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report

log = logging.getLogger(__name__)

#: pages copied per step of the online backup: small enough that a scan's writes interleave
_BACKUP_PAGES_PER_STEP = 1024


@dataclass(frozen=True)
class CatalogCheck:
    path: Path
    problems: list[str] = field(default_factory=list)
    revision: str | None = None
    head: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

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
    except sqlite3.Error as exc:
        problems.append(str(exc))
    finally:
        connection.close()
    return CatalogCheck(path, problems, revision=revision, head=head, counts=counts)


def backup_catalog(url_or_path: str | Path, target: str | Path, progress: ProgressCallback | None = None,
                   cancel: CancelCheck | None = None) -> Path:
    """Copy the catalog to `target` (a file that must not exist yet) with SQLite's online backup; the
    copy is integrity-checked before it takes the target's name. Returns the target."""
    source = _sqlite_path(url_or_path)
    target = Path(target).expanduser()
    if target.is_dir():
        target = target / source.name
    if target.exists():
        raise UsageError(f"{target} already exists; choose a new file name for the backup")
    if not target.parent.is_dir():
        raise UsageError(f"the folder {target.parent} does not exist")
    problem = check_sqlite_file(source) if source.is_file() else "there is no catalog file here"
    if problem != "ok":
        raise CatalogError(f"cannot back up this catalog: {problem}", source, reason="damaged")
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    temp = Path(temp_name)
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
        os.replace(temp, target)
    except sqlite3.Error as exc:
        from engine.catalog.db import catalog_error_from

        raise (catalog_error_from(exc, target)
               or CatalogError(f"the backup failed ({exc})", target, reason="io-error")) from exc
    finally:
        temp.unlink(missing_ok=True)
    log.info("catalog %s backed up to %s", source, target)
    return target
