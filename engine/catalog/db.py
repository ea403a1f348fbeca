"""Opening a catalog: any SQLAlchemy URL, SQLite tuned for a desktop app, migrations run on open.

What can go wrong with the file itself is turned into one `CatalogError` naming the file and what to
do (full disk, not a database, truncated, damaged, locked too long), both when opening and on any later
statement (an engine `handle_error` hook), so no caller ever shows a driver traceback. An existing
SQLite file is checked before anything writes to it (header, size, `PRAGMA quick_check`): a damaged
catalog is reported, never modified. The schema is created and upgraded in one transaction that holds
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
    "read-only": "the catalog file or its folder is read-only; make it writable or choose another catalog",
    "cannot-open": "the catalog file cannot be opened (missing folder, or no permission)",
    "server": ("the catalog's database server cannot be reached or refused the work (stopped, full, or "
               "too busy); the change in progress was rolled back. Check the server and run again"),
    "io-error": ("the disk reported an error while using the catalog (full, removed, or failing); "
                 "the change in progress was rolled back. Check the disk and run again"),
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
    what_to_do = _WHAT_TO_DO[reason].format(seconds=BUSY_TIMEOUT_MS / 1000)
    return CatalogError(f"{what_to_do} ({orig})", where, reason=reason)


def _nearly_full(where: str | Path, margin: int = 1 << 20) -> bool:
    try:
        st = os.statvfs(Path(where).parent)
    except (OSError, AttributeError, ValueError):  # not a path, or no statvfs (Windows)
        return False
    return st.f_bavail * st.f_frsize < margin


def check_sqlite_file(path: Path, full: bool = False) -> str:
    """Check an existing SQLite catalog without writing to it; "ok" or what is wrong.

    Reads the header (magic, page size, the page count it declares against the file's size, which
    catches truncation) and runs `PRAGMA quick_check` (`integrity_check` with `full`) on a read-only
    connection."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError as exc:
        return f"cannot read the file ({exc.strerror or exc})"
    if size == 0:
        return "ok"
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        return "not an SQLite database (wrong header)"
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
        raise catalog_error_from(exc, path) or CatalogError(f"cannot check the catalog ({exc})", path,
                                                             reason="cannot-open") from exc
    return "; ".join(rows)


def read_only_connection(path: Path) -> sqlite3.Connection:
    """A connection to the SQLite file `path` that can't write to it (checks, backups, first looks)."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)


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

    connection = read_only_connection(path)
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
        raise CatalogError(f"cannot open the catalog: {exc.orig}",
                           path or make_url(url).render_as_string(hide_password=True),
                           reason="cannot-open") from exc
    return Catalog(engine, thumbnails_dir or default_thumbnails_dir(url))
