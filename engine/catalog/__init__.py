"""The album catalog: photos, faces, people, references, restorations and batch jobs in one database.

`open_catalog(url)` opens SQLite (default, in the user data folder) or any SQLAlchemy URL and runs
the Alembic migrations; `engine.catalog.scanner.scan` fills it from album folders;
`engine.catalog.batch` restores albums from it (and lists, cancels and retries its jobs);
`engine.catalog.views` lists its photos as plain rows for a photo grid.
"""

from engine.catalog.db import Catalog, open_catalog

__all__ = ["Catalog", "open_catalog"]
