"""Opening a catalog: any SQLAlchemy URL, SQLite tuned for a desktop app, migrations run on open."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import UsageError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: how long a writer waits for another process's write lock before giving up (SQLite)
BUSY_TIMEOUT_MS = 30_000


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


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UsageError(f"not a database URL: {url!r} ({exc})") from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            folder = Path(database).expanduser().parent
            folder.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError) as exc:
        raise UsageError(f"unsupported catalog database {parsed.drivername!r}: {exc} "
                         "(SQLite and PostgreSQL via postgresql+psycopg:// are supported)") from exc


def _alembic_config(connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision` (the newest by default)."""
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


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
                 migrate: bool = True) -> Catalog:
    """Open (creating if needed) the catalog at `url` and upgrade its schema to the newest revision.

    `url` is any SQLAlchemy URL or a file path (SQLite); None means `Settings().catalog_url`.
    """
    if url is None:
        from engine.settings import Settings

        url = Settings().catalog_url
    url = normalise_url(url)
    engine = make_engine(url)
    try:
        if migrate:
            upgrade(engine)
        elif "photos" not in inspect(engine).get_table_names():
            raise UsageError(f"the catalog at {url} has no schema yet")
    except OperationalError as exc:
        engine.dispose()
        raise UsageError(f"cannot open the catalog {make_url(url).render_as_string(hide_password=True)}: "
                         f"{exc.orig}") from exc
    return Catalog(engine, thumbnails_dir or default_thumbnails_dir(url))
