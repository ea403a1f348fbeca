"""What tests/learn shares besides fixtures: the album's people and copying a catalog file."""

from __future__ import annotations

import shutil
from pathlib import Path

#: LFW people with 10 photos: Ann (learned, every photo) and Bob (6 photos: too few to learn)
ANN, BOB = "George_Robertson", "Jacques_Chirac"
BOB_PHOTOS = 6


def copy_catalog(source: Path, folder: Path) -> Path:
    """A copy of a closed catalog file in `folder` (tests change copies, never the session's album)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "catalog.sqlite3"
    shutil.copy2(source, target)
    return target
