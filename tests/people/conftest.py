from __future__ import annotations

import sys
from pathlib import Path

# the real-dlib memoised analyser and LFW album helpers live beside the catalog tests
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "catalog"))

from catalog_testkit import analyzer, catalog  # noqa: E402,F401 (shared fixtures)
