"""Turn exceptions into what a person needs to read: which file, what happened, what to do."""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from pathlib import Path

from engine import errors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UserMessage:
    title: str
    what: str
    todo: str
    file: Path | None = None
    details: str = ""
    #: the page that can fix it ("models"), if any
    go_to: str | None = None

    def text(self) -> str:
        parts = [self.what]
        if self.file is not None:
            parts.append(f"File: {self.file}")
        parts.append(self.todo)
        return "\n".join(parts)


def _what(exc: errors.FaceMeError) -> str:
    return exc.message[:1].upper() + exc.message[1:] if exc.message else exc.__class__.__name__


def describe(exc: BaseException, doing: str = "") -> UserMessage:
    """A plain-language message for `exc`; `doing` says what the user asked for ("Restoring photo")."""
    details = "".join(traceback.format_exception(exc))
    prefix = f"{doing}: " if doing else ""
    if not isinstance(exc, errors.FaceMeError) and type(exc).__name__ == "IntegrityError":
        from engine.catalog.db import conflict_error_from

        exc = conflict_error_from(exc, None) or exc  # a change another process made first: not a bug
    if isinstance(exc, errors.CatalogError):
        title = "the catalog changed meanwhile" if exc.reason == "conflict" else "the catalog cannot be used"
        return UserMessage(f"{prefix}{title}", _what(exc), "Your photos were not changed.", exc.path, details)
    if isinstance(exc, errors.ModelPackError):
        part = f" ({exc.part})" if exc.part else ""
        return UserMessage(f"{prefix}a model part is missing{part}", _what(exc),
                           "Open the Models page to download or import it.", exc.path, details, "models")
    if isinstance(exc, errors.NoFaceError):
        return UserMessage(f"{prefix}no face found", _what(exc),
                           "Choose a photo in which the face is clearly visible and not too small.",
                           exc.path, details)
    if isinstance(exc, errors.ImageReadError):
        return UserMessage(f"{prefix}the photo could not be read", _what(exc),
                           "Check that the file opens in another program and that its drive is connected; "
                           "the original was not changed.", exc.path, details)
    if isinstance(exc, errors.ImageWriteError):
        return UserMessage(f"{prefix}the result could not be saved", _what(exc),
                           "Choose another folder that you can write to and that has free space "
                           "(Save as…). Your original photo was not changed.", exc.path, details)
    if isinstance(exc, errors.LicenseNotAcceptedError):
        return UserMessage(f"{prefix}licence not accepted", _what(exc),
                           "Read and accept the licence on the Models page to download this part.",
                           exc.path, details, "models")
    if isinstance(exc, errors.DownloadError):
        return UserMessage(f"{prefix}the download failed", _what(exc),
                           "Check the internet connection and free disk space, then press Download again; "
                           "it continues where it stopped.", exc.path, details, "models")
    if isinstance(exc, errors.CancelledError):
        return UserMessage(f"{prefix}cancelled", _what(exc), "Nothing half-done was kept.", exc.path, details)
    if isinstance(exc, errors.UsageError):
        return UserMessage(f"{prefix}this cannot be done as asked", _what(exc),
                           "Change the choice and try again.", exc.path, details)
    if isinstance(exc, errors.FaceMeError):
        return UserMessage(f"{prefix}something went wrong", _what(exc),
                           "Try again; if it keeps happening, open Help → Log file and send it to us.",
                           exc.path, details)
    if isinstance(exc, MemoryError):
        return UserMessage(f"{prefix}not enough memory", "The computer ran out of memory for this job.",
                           "Close other programs, or switch Settings → Device to CPU, and try again.",
                           None, details)
    if isinstance(exc, OSError) and getattr(exc, "filename", None):
        return UserMessage(f"{prefix}a file could not be used", exc.strerror or str(exc),
                           "Check that the file or folder exists and that you may use it.",
                           Path(exc.filename), details)
    first_line = (str(exc).strip().splitlines() or [""])[0]  # a driver's error goes on with its SQL
    return UserMessage(f"{prefix}something went wrong",
                       f"An unexpected problem: {exc.__class__.__name__}: {first_line}",
                       "Try again; if it keeps happening, open Help → Log file and send it to us.",
                       None, details)
