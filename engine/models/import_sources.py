"""What `faceme models import` may take from the folder or archive it is given: regular files inside it.

An import hard-links or copies files into the models folder, so whatever a path inside the source leads
to ends up there. A pack folder holding `photomaker-v1.bin -> /etc/shadow` must not put that file's
bytes into the pack (nor, with `--copy`, write them into a new file others can read). The rules:

* The path named on the command line may itself be a link to a folder or an archive (the user chose
  it); it is resolved once. A file named directly is an entry of its folder, under the rules below.
* Inside it, every file taken must be a regular file reached through real folders. A symbolic link (to
  a file or to a folder, even one pointing back inside the source: telling a harmless link from a
  harmful one is not worth the risk), a device, a FIFO or a socket is refused with `UnsafeSourceError`
  (exit 4) naming the entry and what it is. Import the file a link points to, or its folder.
* One exception, the Hugging Face cache's own layout: `models--ORG--NAME/snapshots/COMMIT/FILE` is a link
  into that repo's `blobs/` folder. Such a link is followed when it resolves to a regular file inside
  the `blobs/` folder of the same repo, and nowhere else.
* Archive members are taken only when they are regular files: a member whose Unix mode says link,
  folder, device, FIFO or socket is refused (members are always written under the part's own file
  names, never their paths in the archive).
"""

from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.errors import ModelPackError

_KINDS = {stat.S_IFLNK: "a symbolic link", stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO (named pipe)",
          stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}


class UnsafeSourceError(ModelPackError):
    """A file offered for import is not a regular file inside the source (a link, a device, a FIFO, a
    socket, an archive member that is a link): refused, nothing is imported."""


@dataclass(frozen=True)
class SourceFile:
    """A file of the source checked for import: `real` is the regular file to read or link (the path
    itself, or the blob an HF cache entry links to), `st` its stat when checked, to notice a swap."""

    path: Path
    real: Path
    st: os.stat_result

    @property
    def size(self) -> int:
        return self.st.st_size

    def is_still(self, st: os.stat_result) -> bool:
        """Whether `st` is the very file that was checked (same device and inode)."""
        return (st.st_dev, st.st_ino) == (self.st.st_dev, self.st.st_ino)


def kind_of(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def kind_of_path(path: Path) -> str:
    """What is at `path`, following a link to it ("a dangling symbolic link" when it leads nowhere)."""
    try:
        return kind_of(os.stat(path).st_mode)
    except OSError:
        return "a dangling symbolic link" if os.path.islink(path) else "unreadable"


def checked_source_file(top: Path, path: Path, part: str) -> SourceFile:
    """`path`, a file under the source folder `top` (`top` resolved, `path` spelled from it), checked
    under this module's rules: the SourceFile to read or link, else UnsafeSourceError naming the entry
    at fault (the file, or a linked folder on the way to it)."""
    top = Path(top)
    rel = Path(os.path.normpath(path)).relative_to(top) if _is_inside(path, top) else None
    if rel is None or not rel.parts:
        raise UnsafeSourceError(f"lies outside the folder being imported ({top}). Nothing was imported", path,
                                part=part)
    folder = top
    for name in rel.parts[:-1]:
        folder = folder / name
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode):
            raise _refused(folder, st, part)
    entry = folder / rel.parts[-1]
    st = os.lstat(entry)
    if stat.S_ISREG(st.st_mode):
        return SourceFile(entry, entry, st)
    if stat.S_ISLNK(st.st_mode):
        blob = _hub_cache_blob(entry)
        if blob is not None:
            return SourceFile(entry, blob, os.lstat(blob))
    raise _refused(entry, st, part)


def _is_inside(path: Path, top: Path) -> bool:
    normal = Path(os.path.normpath(path))
    return normal == top or top in normal.parents


def _refused(path: Path, st: os.stat_result, part: str) -> UnsafeSourceError:
    what = kind_of(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        what += f" (to {os.readlink(path)}); links are not followed: import the file it points to, or its folder"
    else:
        what += "; only regular files are imported"
    return UnsafeSourceError(f"is {what}. Nothing was imported", path, part=part)


def _hub_cache_blob(entry: Path) -> Path | None:
    """The blob an HF cache snapshot entry (`models--*/snapshots/COMMIT/…/FILE`) links to, when it is a
    regular file in the same repo's `blobs/` folder; else None."""
    parents = list(entry.parents)
    for snapshots, repo in zip(parents, parents[1:]):
        if snapshots.name == "snapshots" and repo.name.startswith("models--"):
            blobs = Path(os.path.realpath(repo / "blobs"))
            target = Path(os.path.realpath(entry))
            try:
                is_regular = stat.S_ISREG(os.lstat(target).st_mode)
            except OSError:  # a dangling link
                return None
            return target if is_regular and blobs in target.parents else None
    return None


def checked_archive_member(member: zipfile.ZipInfo, archive: Path, part: str) -> zipfile.ZipInfo:
    """The member itself when it is a regular file; UnsafeSourceError naming it otherwise. Zip tools on
    Unix keep the file's mode in the high 16 bits of `external_attr`; no file-type bits (Windows tools,
    `ZipFile.writestr`) means a plain file."""
    mode = member.external_attr >> 16
    if member.is_dir() or (stat.S_IFMT(mode) and not stat.S_ISREG(mode)):
        what = "a folder" if member.is_dir() else kind_of(mode)
        raise UnsafeSourceError(f"the archive member {PurePosixPath(member.filename)} is {what}; only regular "
                                "files are extracted. Nothing was installed", archive, part=part)
    return member
