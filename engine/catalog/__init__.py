"""The album catalog: photos, faces, people, references, restorations and batch jobs in one database.

`open_catalog(url)` opens SQLite (default, in the user data folder) or any SQLAlchemy URL and runs
the Alembic migrations; `engine.catalog.scanner.scan` fills it from album folders;
`engine.catalog.jobs` holds its batch jobs (engine.restore.batch restores them; the catalog stores);
`engine.catalog.views` lists its photos as plain rows for a photo grid.
"""

from engine.catalog.db import Catalog, open_catalog

__all__ = ["Catalog", "open_catalog"]
