"""Serialising work across the processes that share one catalog (the app, CLI scans, batches).

Two tools, used together where a step reads the catalog, thinks, and writes back (clustering,
people edits):

- `hold_write_lock(session)`: at the start of a transaction, take the database's write lock, so that
  what the transaction reads is still true when it writes (SQLite: a no-op write, which takes the one
  writer lock of a WAL database; PostgreSQL: a transaction-scoped advisory lock). Another process's
  transaction waits for it (SQLite's busy timeout), and can no longer commit between our reads and
  our writes — the way a merge used to lose faces to a clustering that committed in between.
- `catalog_lock(catalog, name, ...)`: a lock held for as long as a long step runs (a whole clustering
  of a large catalog may outlast the busy timeout), with a "waiting for …" message naming who holds
  it. SQLite catalogs use an OS file lock beside the database (released by the OS when the holder
  dies, so a kill -9 never leaves it stuck); other databases a session-level advisory lock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text

from engine.catalog.db import sqlite_file

log = logging.getLogger(__name__)

#: how often a waiting process re-tries the lock (the message is given once)
POLL_SECONDS = 0.2

_memory_locks: dict[tuple[str, str], threading.Lock] = {}
_memory_guard = threading.Lock()


class LockTimeout(TimeoutError):
    """The lock stayed held by another process for longer than the caller would wait."""


def hold_write_lock(session) -> None:
    """Take the database's write lock for the rest of `session`'s transaction (see the module doc)."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        session.execute(text("UPDATE people SET id = id WHERE 0"))
    elif dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _key("write")})


def _key(name: str) -> int:
    return zlib.crc32(f"faceme:{name}".encode()) & 0x7FFFFFFF


def _holder_text(raw: str) -> str:
    try:
        holder = json.loads(raw)
        return f"{holder['what']} (process {holder['pid']} on {holder['host']})"
    except (ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def catalog_lock(catalog, name: str, what: str, on_wait: Callable[[str], None] | None = None,
                 timeout: float | None = None) -> Iterator[None]:
    """Hold the catalog-wide lock `name` (e.g. "clustering") while the block runs.

    `what` describes the holder for others' waiting message ("clustering for a scan"). When another
    process holds it, `on_wait` (default: a log message) is told once, "waiting for <holder> to
    finish", and the call waits — at most `timeout` seconds when given (then LockTimeout).
    """
    on_wait = on_wait or (lambda message: log.warning("%s", message))
    path = sqlite_file(catalog.engine.url)
    if path is not None:
        with _file_lock(path.with_name(f"{path.name}.{name}.lock"), what, on_wait, timeout):
            yield
    elif catalog.engine.dialect.name == "postgresql":
        with _advisory_lock(catalog, name, on_wait, timeout):
            yield
    else:  # an in-memory database lives in this process only
        with _memory_guard:
            lock = _memory_locks.setdefault((catalog.url, name), threading.Lock())
        if not lock.acquire(blocking=False):
            on_wait(f"waiting for another task of this process to finish {name}")
            if not lock.acquire(timeout=-1 if timeout is None else timeout):
                raise LockTimeout(f"{name}: still busy after {timeout:.0f} s")
        try:
            yield
        finally:
            lock.release()


def _try_lock(fd: int) -> bool:
    if os.name == "nt":
        import msvcrt

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _unlock(fd: int) -> None:
    if os.name == "nt":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def _file_lock(lock_path: Path, what: str, on_wait: Callable[[str], None], timeout: float | None) -> Iterator[None]:
    # The holder's description lives in a file beside the lock (Windows locks the lock file's bytes).
    info_path = lock_path.with_name(lock_path.name + ".holder")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(fd):
            try:
                holder = _holder_text(info_path.read_text())
            except OSError:
                holder = "another process"
            on_wait(f"waiting for {holder} to finish")
            deadline = None if timeout is None else time.monotonic() + timeout
            while not _try_lock(fd):
                if deadline is not None and time.monotonic() > deadline:
                    raise LockTimeout(f"{holder} still holds {lock_path.name} after {timeout:.0f} s")
                time.sleep(POLL_SECONDS)
        try:
            info_path.write_text(json.dumps({"what": what, "pid": os.getpid(), "host": socket.gethostname()}))
        except OSError:
            pass  # the message is a courtesy; the lock is what matters
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


@contextmanager
def _advisory_lock(catalog, name: str, on_wait: Callable[[str], None], timeout: float | None) -> Iterator[None]:
    key = _key(name)
    with catalog.engine.connect() as connection:
        if not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
            on_wait(f"waiting for another process to finish {name}")
            deadline = None if timeout is None else time.monotonic() + timeout
            while not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
                if deadline is not None and time.monotonic() > deadline:
                    raise LockTimeout(f"another process still holds the {name} lock after {timeout:.0f} s")
                time.sleep(POLL_SECONDS)
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()
