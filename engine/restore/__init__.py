"""One photo end to end: faces -> which person -> FaceMe per face -> seamless paste-back -> output.

`restore_photo` / `restore_photo_file` (engine.restore.photo) are the entry points for the CLI, the
batch runner and the GUI; `engine.restore.pasteback` and `engine.restore.matching` are its steps.
"""

from engine.restore.photo import (
    FaceOutcome,
    PersonReferences,
    PhotoRestoration,
    RestoreOptions,
    restore_photo,
    restore_photo_file,
)

__all__ = [
    "FaceOutcome",
    "PersonReferences",
    "PhotoRestoration",
    "RestoreOptions",
    "restore_photo",
    "restore_photo_file",
]
