from __future__ import annotations

import sys
from pathlib import Path

import pytest

# the real-dlib memoised analyser and LFW album helpers live beside the catalog tests
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "catalog"))

from catalog_testkit import MemoDlibAnalyzer  # noqa: E402

from engine.catalog.db import open_catalog  # noqa: E402


@pytest.fixture
def analyzer():
    return MemoDlibAnalyzer()


@pytest.fixture
def catalog(tmp_path):
    cat = open_catalog(tmp_path / "catalog.sqlite3")
    yield cat
    cat.close()
