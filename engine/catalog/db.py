"""Opening a catalog: any SQLAlchemy URL, SQLite tuned for a desktop app, migrations run on open.

What can go wrong with the file itself is turned into one `CatalogError` naming the file and what to
do (full disk, not a database, truncated, damaged, locked too long), both when opening and on any later
statement (an engine `handle_error` hook), so no caller ever shows a driver traceback. An existing
SQLite file is checked before anything writes to it (header, size, `PRAGMA quick_check`): a damaged
catalog is reported, never modified; one whose header is lost but whose pages are a database's is called
damaged, not another kind of file. A catalog on read-only media can still be read (checks, backups),
see `read_only_connection`. The schema is created and upgraded in one transaction that holds
the database's write lock (SQLite `BEGIN IMMEDIATE`, a PostgreSQL advisory lock), so a full disk or a
second process creating the same catalog at the same moment never leaves a half-made schema; one left
by an older version (tables without a recorded revision, all empty) is rebuilt on open.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import CatalogError, UsageError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: how long a writer waits for another process's write lock before giving up (SQLite)
BUSY_TIMEOUT_MS = 30_000
SQLITE_MAGIC = b"SQLite format 3\x00"
#: a fixed key for PostgreSQL's advisory lock that serialises schema creation and upgrades
_PG_SCHEMA_LOCK = 0x46614D65  # "FaMe"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers (the GUI) never block the scanner's writes, and a killed writer leaves the
    # database consistent. synchronous=NORMAL is crash-safe in WAL mode (only power loss can drop
    # the last transactions, never corrupt the file).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def normalise_url(url_or_path: str | Path) -> str:
    """A SQLAlchemy URL from a URL or a plain file path (a path means SQLite)."""
    text_value = str(url_or_path)
    if "://" in text_value:
        return text_value
    return f"sqlite:///{Path(text_value).expanduser().resolve()}"


def sqlite_file(url) -> Path | None:
    """The file behind a SQLite URL (a string or a SQLAlchemy URL); None for other databases and in-memory
    SQLite."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" \
            or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def make_engine(url: str, create_folder: bool = True) -> Engine:
    """An engine for `url`. A SQLite file's folder is created when missing only with `create_folder`;
    otherwise a missing folder is a CatalogError (a mistyped --catalog must not grow a new tree)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UsageError(f"not a database URL: {url!r} ({exc})") from exc
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        if path is not None and not path.parent.is_dir():
            if not create_folder:
                raise CatalogError(f"the folder {path.parent} does not exist; create it first "
                                   f"(mkdir -p \"{path.parent}\") or choose another --catalog",
                                   path, reason="missing-folder")
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        try:
            engine = create_engine(parsed, pool_pre_ping=True)
        except (NoSuchModuleError, ImportError) as exc:
            raise UsageError(f"unsupported catalog database {parsed.drivername!r}: {exc} "
                             "(SQLite and PostgreSQL via postgresql+psycopg:// are supported)") from exc
    where = sqlite_file(url) or parsed.render_as_string(hide_password=True)

    def _as_catalog_error(context) -> None:
        error = catalog_error_from(context.original_exception, where)
        if error is not None:
            raise error from context.original_exception

    event.listen(engine, "handle_error", _as_catalog_error)
    return engine


# --- what can go wrong with the database file -----------------------------------------------------------

_WHAT_TO_DO = {
    "disk-full": ("the disk holding the catalog is full; the change in progress was rolled back and "
                  "nothing else was lost. Free some space and run the command again"),
    "not-a-database": ("this file is not a FaceMe catalog (not an SQLite database). It was not changed; "
                       "choose another catalog file (--catalog / Settings) or move this one away"),
    "damaged": ("the catalog file is damaged (truncated or corrupted) and was not changed. See "
                "`faceme catalog check`; restore a copy made with `faceme catalog backup`, or move the "
                "file away to start a new catalog (scanning the albums again rebuilds it, without your "
                "corrections)"),
    "locked": ("another process kept the catalog locked for more than {seconds:g} s (a scan or batch "
               "running elsewhere?); nothing was changed. Try again when it has finished"),
    "read-only": ("the catalog file or its folder is read-only (read-only media, or no permission to write "
                  "there), and using a catalog writes beside it. `faceme catalog check` and `faceme catalog "
                  "backup COPY` work as it is: back it up to a writable folder and use the copy (--catalog "
                  "COPY), or make the folder writable"),
    "cannot-open": ("the catalog file cannot be opened (missing folder, or no permission); check that its folder is "
                    "there and that you may write to it, or choose another catalog (--catalog / Settings)"),
    "server": ("the catalog's database server cannot be reached or refused the work (stopped, full, or "
               "too busy); the change in progress was rolled back. Check the server and run again"),
    "io-error": ("the disk reported an error while using the catalog (full, removed, or failing); "
                 "the change in progress was rolled back. Check the disk and run again"),
    "conflict": ("another process changed the catalog at the same moment (a scan, a re-analysis, an edit), so "
                 "this change no longer fits and was rolled back; nothing was lost. Run the command again"),
}


def _reason_for(orig: BaseException) -> str | None:
    if type(orig).__module__.startswith(("psycopg", "psycopg2")):
        # OperationalError and its kinds (server gone, DiskFull, lock timeouts); not constraint errors
        return "server" if any(c.__name__ == "OperationalError" for c in type(orig).__mro__) else None
    if isinstance(orig, sqlite3.IntegrityError) or not isinstance(orig, sqlite3.Error):
        return None
    name = getattr(orig, "sqlite_errorname", "") or ""
    message = str(orig).lower()
    if name == "SQLITE_FULL" or "disk is full" in message:
        return "disk-full"
    if name == "SQLITE_NOTADB" or "not a database" in message:
        return "not-a-database"
    if name.startswith("SQLITE_CORRUPT") or "malformed" in message:
        return "damaged"
    if name == "SQLITE_BUSY_SNAPSHOT":  # a stale read snapshot: the caller's to retry, not a lock held too long
        return None
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in message:
        return "locked"
    if name.startswith("SQLITE_READONLY") or "readonly database" in message:
        return "read-only"
    if name.startswith("SQLITE_CANTOPEN") or "unable to open database" in message:
        return "cannot-open"
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in message:
        return "io-error"
    return None


def catalog_error_from(exc: BaseException, where: str | Path) -> CatalogError | None:
    """The CatalogError for a database failure of the file itself (see `_WHAT_TO_DO`); None for the
    others (constraint violations, programming errors), which their callers handle."""
    if isinstance(exc, CatalogError):
        return exc
    orig = getattr(exc, "orig", None) or exc
    reason = _reason_for(orig)
    if reason is None:
        return None
    if reason == "io-error" and _nearly_full(where):  # SQLite reports a full disk as I/O error at times
        reason = "disk-full"
    if reason == "cannot-open" and _in_read_only_folder(where):  # not "no permission": read-only media
        reason = "read-only"
    if reason == "not-a-database" and _looks_like_damaged_sqlite(where):  # a catalog, damaged: not another file
        reason = "damaged"
    what_to_do = _WHAT_TO_DO[reason].format(seconds=BUSY_TIMEOUT_MS / 1000)
    return CatalogError(f"{what_to_do} ({orig})", where, reason=reason)


def conflict_error_from(exc: BaseException, where: str | Path | None) -> CatalogError | None:
    """The CatalogError (reason "conflict") for a constraint the database refused: only a change made by
    another process between this one's read and its write can cause it, so the words say that and what
    to do, in one line, never the driver's SQL; None for other exceptions."""
    orig = getattr(exc, "orig", None) or exc
    refused = isinstance(orig, sqlite3.IntegrityError) or any(
        c.__name__ == "IntegrityError" for c in type(orig).__mro__)  # psycopg's, or SQLAlchemy's own
    if not refused:
        return None
    first_line = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    log.info("a constraint refused a change (%s): %s", where, exc)  # the SQL, for the log file only
    return CatalogError(f"{_WHAT_TO_DO['conflict']} ({first_line})", where, reason="conflict")


def _nearly_full(where: str | Path, margin: int = 1 << 20) -> bool:
    try:
        st = os.statvfs(Path(where).parent)
    except (OSError, AttributeError, ValueError):  # not a path, or no statvfs (Windows)
        return False
    return st.f_bavail * st.f_frsize < margin


def _in_read_only_folder(where: str | Path) -> bool:
    """Whether `where` is an existing file in a folder this process cannot write to (read-only media,
    or no permission): SQLite cannot create the -wal and -shm files it opens a WAL database with."""
    try:
        path = Path(where)
        return path.is_file() and not os.access(path.parent, os.W_OK)
    except (TypeError, ValueError, OSError):  # not a path
        return False


def _looks_like_damaged_sqlite(where: str | Path) -> bool:
    """Whether `where` is an SQLite file whose header was lost (see `_damaged_header_problem`)."""
    try:
        path = Path(where)
        if not path.is_file():
            return False
        with open(path, "rb") as f:
            start = f.read(100 + _PAGE_ONE_BTREE_HEADER)
        return _damaged_header_problem(start, path.stat().st_size) is not None
    except (TypeError, ValueError, OSError):  # not a path, or unreadable: no verdict
        return False


#: the smallest page size of SQLite; every SQLite file is a whole number of pages
_MIN_PAGE_SIZE = 512
#: bytes of the b-tree page header that follows the 100-byte file header on page 1 (a leaf page's)
_PAGE_ONE_BTREE_HEADER = 8
#: page 1 is the root of the schema table: a table b-tree page, interior (5) or leaf (13)
_TABLE_BTREE_PAGE_TYPES = (0x05, 0x0D)
#: bytes 21–23 of every SQLite header (payload fractions), fixed by the file format
_PAYLOAD_FRACTIONS = b"\x40\x20\x20"


def _damaged_header_problem(start: bytes, size: int) -> str | None:
    """What is wrong with a file that lacks SQLite's magic but is an SQLite database whose header was
    lost (zeroed by a failing disk, overwritten); None when nothing says it ever was one.

    `start` is the file's first 108 bytes. The evidence: a whole number of pages, and page 1's b-tree
    header where it always is (right after the 100-byte file header), consistent with the file's size;
    plus either a zeroed header, or one whose fixed bytes are still there."""
    if size < _MIN_PAGE_SIZE or size % _MIN_PAGE_SIZE or len(start) < 100 + _PAGE_ONE_BTREE_HEADER:
        return None
    header, btree = start[:100], start[100:]
    cells = int.from_bytes(btree[3:5], "big")
    content_start = int.from_bytes(btree[5:7], "big") or 65536
    page_one_plausible = (btree[0] in _TABLE_BTREE_PAGE_TYPES and content_start <= size
                          and 100 + _PAGE_ONE_BTREE_HEADER + 2 * cells <= content_start)
    if not page_one_plausible:
        return None
    if header == bytes(100):
        lost = "its SQLite header (the first 100 bytes) is gone (zeroed), but the pages after it are"
    elif header[21:24] == _PAYLOAD_FRACTIONS:
        lost = "the start of its SQLite header is overwritten, but the rest of the header and the pages are"
    else:
        return None
    return f"damaged: {lost} a database's: a damaged catalog, not another kind of file; restore a backup"


def check_sqlite_file(path: Path, full: bool = False) -> str:
    """Check an existing SQLite catalog without writing to it; "ok" or what is wrong.

    Reads the header (magic, page size, the page count it declares against the file's size, which
    catches truncation) and runs `PRAGMA quick_check` (`integrity_check` with `full`) on a read-only
    connection."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            start = f.read(100 + _PAGE_ONE_BTREE_HEADER)
    except OSError as exc:
        return f"cannot read the file ({exc.strerror or exc})"
    if size == 0:
        return "ok"
    header = start[:100]
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        return _damaged_header_problem(start, size) or "not an SQLite database (wrong header)"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return f"damaged header (page size {page_size})"
    change_counter = int.from_bytes(header[24:28], "big")
    valid_for = int.from_bytes(header[92:96], "big")
    declared_pages = int.from_bytes(header[28:32], "big")
    wal = path.with_name(path.name + "-wal")
    has_wal = wal.is_file() and wal.stat().st_size > 0
    if valid_for == change_counter and not has_wal and declared_pages * page_size > size:
        return (f"truncated: the header declares {declared_pages} pages of {page_size} bytes "
                f"({declared_pages * page_size} bytes) but the file has {size}")
    try:
        connection = read_only_connection(path)
        try:
            pragma = "integrity_check" if full else "quick_check"
            rows = [row[0] for row in connection.execute(f"PRAGMA {pragma}(20)")]
        finally:
            connection.close()
    except sqlite3.Error as exc:
        if _reason_for(exc) in ("damaged", "not-a-database"):
            return str(exc)
        # not a verdict on the file (a full disk, a lock, no permission): say that instead
        raise catalog_error_from(exc, path) or CatalogError(f"{_WHAT_TO_DO['cannot-open']} ({exc})", path,
                                                             reason="cannot-open") from exc
    return "; ".join(rows)


def read_only_connection(path: Path) -> sqlite3.Connection:
    """A connection to the SQLite file `path` that can't write to it (checks, backups, first looks).

    A WAL catalog on read-only media (or in a folder this process can't write to) can't be opened the
    usual way: SQLite must create its -shm file beside it. Nothing can write to the catalog there
    (a writer needs a -wal file beside it too), so it is opened as immutable instead: no locks, no
    -shm. Unless a -wal file holds changes not yet in the catalog file: reading those needs the -shm,
    and ignoring them would check or copy an older catalog, so that is a CatalogError saying what to do."""
    uri = path.resolve().as_uri()
    connection = _connect(f"{uri}?mode=ro")
    try:
        connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # SQLite opens lazily
        return connection
    except sqlite3.Error as exc:
        connection.close()
        if _reason_for(exc) != "cannot-open" or not _in_read_only_folder(path):
            raise
    if _has_unmerged_wal(path):
        raise CatalogError("the catalog is on read-only media (or in a folder that is not writable) and its "
                           f"{path.name}-wal file holds changes not yet merged into it, which SQLite can only "
                           "read by writing a -shm file beside it. Copy the catalog together with its -wal "
                           "file to a writable folder and use that copy, or make the folder writable",
                           path, reason="read-only")
    log.info("%s is on read-only media: read as an immutable file", path)
    return _connect(f"{uri}?mode=ro&immutable=1")


def _connect(uri: str) -> sqlite3.Connection:
    return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)


def _has_unmerged_wal(path: Path) -> bool:
    wal = path.with_name(path.name + "-wal")
    try:
        return wal.stat().st_size > 0
    except FileNotFoundError:
        return False


def _refuse_damaged(path: Path) -> None:
    """CatalogError unless the existing file at `path` is a sound SQLite database."""
    if not path.is_file():
        return
    problem = check_sqlite_file(path)
    if problem == "ok":
        return
    reason = "not-a-database" if problem.startswith("not an SQLite") else "damaged"
    raise CatalogError(f"{_WHAT_TO_DO[reason].format(seconds=BUSY_TIMEOUT_MS / 1000)} ({problem})", path,
                       reason=reason)


def _refuse_foreign(path: Path) -> None:
    """CatalogError for a database that holds something other than a catalog, found on a read-only
    connection before anything (even switching on WAL) writes to it."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    from engine.catalog.models import Base

    try:
        connection = read_only_connection(path)
    except sqlite3.Error as exc:
        raise catalog_error_from(exc, path) or CatalogError(f"{_WHAT_TO_DO['cannot-open']} ({exc})", path,
                                                             reason="cannot-open") from exc
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "alembic_version" in tables and connection.execute("SELECT 1 FROM alembic_version").fetchone():
            return
        tables -= {"alembic_version"}
        foreign = tables - set(Base.metadata.tables) - {t for t in tables if t.startswith("sqlite_")}
        filled = [t for t in sorted(tables - foreign)
                  if connection.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() is not None]
    except sqlite3.Error as exc:
        error = catalog_error_from(exc, path)
        if error is not None:
            raise error from exc
        raise
    finally:
        connection.close()
    _refuse_unknown_schema(foreign, filled, path)


def _refuse_unknown_schema(foreign, filled, where) -> None:
    """CatalogError when a database without a schema revision has tables that aren't ours, or ours with
    rows: someone else's database, never changed."""
    if foreign or filled:
        raise CatalogError(f"this database has tables but no FaceMe schema revision "
                           f"({', '.join(sorted(foreign or filled))}); it was not changed. Choose another "
                           f"catalog file", where, reason="unknown-schema")


def _alembic_config(connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision` (the newest by default), all of it in one transaction that
    holds the write lock: another process doing the same waits, then finds the work done."""
    from alembic import command

    if revision == "head" and current_revision(engine) == head_revision():
        return  # the common case: no write, no lock
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            with _explicit_sqlite_transactions(connection):
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    _repair_half_made_schema(connection)
                    command.upgrade(_alembic_config(connection), revision)
                except BaseException:
                    connection.rollback()
                    raise
                connection.commit()
        else:
            with connection.begin():
                if engine.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK})
                command.upgrade(_alembic_config(connection), revision)


@contextmanager
def _explicit_sqlite_transactions(connection) -> Iterator[None]:
    """Let this connection's DDL run inside our own BEGIN: Python's sqlite3 module otherwise commits
    each CREATE TABLE on its own (no implicit transaction before DDL), which is how a full disk or a
    race used to leave half a schema behind."""
    dbapi_connection = connection.connection.driver_connection
    saved = dbapi_connection.isolation_level
    dbapi_connection.isolation_level = None
    try:
        yield
    finally:
        dbapi_connection.isolation_level = saved


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _repair_half_made_schema(connection) -> None:
    """Drop the tables an interrupted schema creation of an older version left behind (no revision
    recorded, every table empty), so the migrations can build the schema afresh. Tables with rows
    and no revision are someone else's database: refused, untouched."""
    from alembic.runtime.migration import MigrationContext

    if MigrationContext.configure(connection).get_current_revision() is not None:
        return
    from engine.catalog.models import Base

    existing = set(inspect(connection).get_table_names()) - {"alembic_version"}
    if not existing:
        return
    ours = set(Base.metadata.tables)
    foreign = existing - ours
    filled = [t for t in sorted(existing & ours)
              if connection.exec_driver_sql(f'SELECT 1 FROM "{t}" LIMIT 1').first() is not None]
    _refuse_unknown_schema(foreign, filled, connection.engine.url.database)
    log.warning("repairing a half-made catalog schema (tables without a revision: %s)", ", ".join(sorted(existing)))
    for table in reversed(Base.metadata.sorted_tables):
        if table.name in existing:
            connection.exec_driver_sql(f'DROP TABLE "{table.name}"')


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head()


class Catalog:
    """An open catalog: an engine, a session factory, and where thumbnails are cached."""

    def __init__(self, engine: Engine, thumbnails_dir: Path | None = None):
        self.engine = engine
        self.url = engine.url.render_as_string(hide_password=True)
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.thumbnails_dir = thumbnails_dir

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def integrity_check(self) -> str:
        """SQLite's `PRAGMA integrity_check` ("ok" when sound); "ok" on other databases."""
        if not self.is_sqlite:
            return "ok"
        with self.engine.connect() as connection:
            return "; ".join(row[0] for row in connection.execute(text("PRAGMA integrity_check")))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def default_thumbnails_dir(url: str) -> Path:
    """Next to a SQLite catalog file; in the user cache folder for server databases and :memory:."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        return path.with_name(path.name + ".thumbnails")
    import hashlib

    import platformdirs

    from engine.settings import APP_NAME

    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / "thumbnails" / digest


def open_catalog(url: str | Path | None = None, thumbnails_dir: Path | None = None,
                 migrate: bool = True, create_folder: bool = True) -> Catalog:
    """Open (creating if needed) the catalog at `url` and upgrade its schema to the newest revision.

    `url` is any SQLAlchemy URL or a file path (SQLite); None means `Settings().catalog_url`. A missing
    folder for a SQLite file is created only with `create_folder`. CatalogError (the file named, what
    to do) when the file is damaged, not a database, on a full disk or locked too long.
    """
    if url is None:
        from engine.settings import Settings

        url = Settings().catalog_url
    url = normalise_url(url)
    path = sqlite_file(url)
    engine = make_engine(url, create_folder=create_folder)
    try:
        if path is not None:
            _refuse_damaged(path)
            _refuse_foreign(path)
        if migrate:
            upgrade(engine)
        elif "photos" not in inspect(engine).get_table_names():
            raise UsageError(f"the catalog at {url} has no schema yet")
    except CatalogError:
        engine.dispose()
        raise
    except OperationalError as exc:
        engine.dispose()
        raise CatalogError(f"{_WHAT_TO_DO['cannot-open']} ({exc.orig})",
                           path or make_url(url).render_as_string(hide_password=True),
                           reason="cannot-open") from exc
    return Catalog(engine, thumbnails_dir or default_thumbnails_dir(url))
