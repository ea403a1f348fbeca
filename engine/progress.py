"""One mechanism for long operations: a progress callback and a cancellation check.

Long-running engine functions take `progress: ProgressCallback | None` and
`cancel: CancelCheck | None`. The CLI turns progress into a bar on stderr, the GUI into Qt signals.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.errors import CancelledError

#: progress(done, total, message): `done` of `total` units are finished; total may be 0 if unknown.
ProgressCallback = Callable[[int, int, str], None]
#: cancel() -> True when the user asked to stop.
CancelCheck = Callable[[], bool]


def report(progress: ProgressCallback | None, done: int, total: int, message: str = "") -> None:
    if progress is not None:
        progress(done, total, message)


def check_cancelled(cancel: CancelCheck | None, what: str = "operation") -> None:
    """Raise CancelledError if the user asked to stop."""
    if cancel is not None and cancel():
        raise CancelledError(f"{what} cancelled")
