"""The app words catalog errors as the CLI does (issue 19, item 2): one line with what to do, never the
driver's SQL — a change another process made first is "the catalog changed meanwhile", a catalog that
can't be used says so, and neither asks the user to send a log as for a bug."""

from __future__ import annotations

import sqlite3

import pytest


def test_catalog_errors_reach_the_app_as_one_line_with_what_to_do(tmp_path):
    from sqlalchemy.exc import IntegrityError

    from app.messages import describe
    from engine.catalog import jobs
    from engine.catalog.db import open_catalog
    from engine.catalog.models import BatchJob
    from engine.errors import CatalogError

    db = tmp_path / "catalog.sqlite3"
    catalog = open_catalog(db)
    try:
        with catalog.transaction() as session:
            session.add(BatchJob(out_dir=str(tmp_path / "out"), roots=[str(tmp_path / "album")], options={}))
        with sqlite3.connect(db) as con:  # the database refuses the change, as after another process's edit
            con.execute("CREATE TRIGGER refuse BEFORE UPDATE ON batch_jobs "
                        "BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed'); END")
        con.close()
        with pytest.raises(IntegrityError) as refused:
            jobs.cancel_job(catalog, 1)
    finally:
        catalog.close()
    message = describe(refused.value, "Cancelling the batch")
    assert message.title == "Cancelling the batch: the catalog changed meanwhile"
    assert "\n" not in message.what and "[SQL" not in message.what and "Run the command again" in message.what
    assert "send it to us" not in message.todo and message.file is None

    locked = describe(CatalogError("another process kept the catalog locked for more than 30 s; nothing was "
                                   "changed. Try again when it has finished", db, reason="locked"))
    assert locked.title == "the catalog cannot be used" and locked.file == db
    assert "Try again when it has finished" in locked.what and "send it to us" not in locked.todo
