"""The engine's exception hierarchy.

Every error carries a plain-language message and, where one is involved, the file it concerns. The
CLI maps each type to an exit code (`exit_code`), the GUI shows `str(error)` in a dialog.
"""

from __future__ import annotations

from pathlib import Path


class FaceMeError(Exception):
    """Base of every error the engine raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, path: str | Path | None = None):
        self.message = message
        self.path = Path(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class UsageError(FaceMeError):
    """The caller asked for something that cannot be done as asked (bad option, output == input)."""

    exit_code = 2


class NoFaceError(FaceMeError):
    """No face was found where one is required (a reference photo, a photo to restore)."""

    exit_code = 3


class ModelPackError(FaceMeError):
    """A part of the model pack is missing or invalid. `part` names it, `hint` says how to get it."""

    exit_code = 4

    def __init__(self, message: str, path: str | Path | None = None, part: str | None = None,
                 hint: str | None = None):
        self.part = part
        self.hint = hint
        full = message if not hint else f"{message} ({hint})"
        super().__init__(full, path)


class ImageReadError(FaceMeError):
    """A photo could not be read: missing, corrupt, truncated, too large, unsupported."""


class ImageWriteError(FaceMeError):
    """An output could not be written: folder not writable, disk full, bad format."""


class DownloadError(FaceMeError):
    """A download failed: network, server, hash mismatch, not enough disk space."""


class LicenseNotAcceptedError(FaceMeError):
    """A download needs a licence the user has not accepted."""

    exit_code = 2


class CancelledError(FaceMeError):
    """The user cancelled a long operation; nothing half-done was kept."""


class CatalogError(FaceMeError):
    """The catalog database cannot be used as it is: the disk is full, the file is not a catalog, is
    truncated or damaged, or another process held it locked too long. The message names the file and
    says what to do; `reason` is a short machine word ("disk-full", "not-a-database", "damaged",
    "locked", "read-only", "cannot-open", "unknown-schema", "io-error", "missing-folder", "server", "conflict":
    another process changed the rows this change relied on)."""

    exit_code = 5

    def __init__(self, message: str, path: str | Path | None = None, reason: str = "error"):
        self.reason = reason
        super().__init__(message, path)


class JobBusyError(FaceMeError):
    """A batch job is being run by another live process (its lease in the catalog); `owner` says which
    ("running in process 1234 on host X")."""

    exit_code = 6

    def __init__(self, message: str, owner: str = "", path: str | Path | None = None):
        self.owner = owner
        super().__init__(message, path)


class LeaseLostError(JobBusyError):
    """This process's lease on a job was taken over (its heartbeat went stale); it must stop working
    on the job."""
