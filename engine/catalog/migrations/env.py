"""Alembic environment: the catalog runs its migrations itself, on the connection it opened."""

from alembic import context

from engine.catalog.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the catalog's migrations run through engine.catalog.open_catalog()")

# Batch mode lets the same scripts alter tables on SQLite (which rebuilds them) and on PostgreSQL.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
