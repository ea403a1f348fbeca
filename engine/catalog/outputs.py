"""Which file each batch item writes: one claim per output file, and never a file the batch did not write.

The rules (docs/RELIABILITY.md, issue 18):

- **One writer per file.** Before anything is written, an item claims its output in `output_claims`,
  keyed by the resolved path (`claim_key`: links followed, case-folded where the file system ignores
  case), so one file spelled two ways is one claim and the database refuses a second claimant.
- **A claim is refused**, naming the other photo and batch, when another photo's item holds it, or the
  same photo's item in a batch that is not finished (resume or cancel that one first). A claim passes to
  the same photo's item of a later batch once the earlier batch is finished or cancelled, and to any
  item once the finished batch's file is gone.
- **Inside one job** outputs never collide: roots with the same folder name get "Family", "Family (2)"
  (in the order the roots were given), and any other clash of names gets " (2)", " (3)" before the
  extension (`distinct_outputs`).
- **A file the batch did not write is never replaced.** When the output's name is taken by a file that
  is not one this photo's batches recorded writing (a retouched copy, an unrelated file of that name),
  it is kept and the output is written beside it as "name (2).jpg" (the next free, unclaimed name); the
  item's output and claim move there and the run says so.

Every function here takes a session inside the caller's transaction; engine.restore.batch calls them
under the job's lease (engine.catalog.leases.guarded), so the checks and the writes they allow happen
in one write transaction.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from engine.catalog.models import BatchItem, BatchJob, JobStatus, OutputClaim, Photo
from engine.errors import ImageReadError, UsageError

#: file systems of these platforms ignore case by default: "IMG_1.JPG" and "img_1.jpg" are one file
_CASE_INSENSITIVE = sys.platform in ("win32", "darwin")
#: how many " (n)" names are tried before giving up
_MAX_SUFFIX = 1000


class OutputClaimedError(UsageError):
    """An output file is already another photo's (or an unfinished batch's) output."""


def resolved_folder_path(path: str | os.PathLike) -> str:
    """`path` absolute, with every link in its folders followed; its last part resolved only when it is
    a folder (a link to a file is a file of its own here, as the catalog records photos: an album may
    hold links to photos, and an output is never written through a link)."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        return os.path.realpath(path)
    folder, name = os.path.split(path)
    return os.path.join(os.path.realpath(folder), name)


def claim_key(path: str | os.PathLike) -> str:
    """The key of an output file: its folder-resolved absolute path (case-folded on case-insensitive
    systems)."""
    resolved = os.path.normcase(resolved_folder_path(path))
    return resolved.casefold() if _CASE_INSENSITIVE else resolved


def numbered(relative: str, n: int) -> str:
    """"a/p.jpg" → "a/p (n).jpg"."""
    folder, name = os.path.split(relative)
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f"{stem} ({n}){ext}")


def root_names(roots: Sequence[str]) -> list[str]:
    """The output folder name of each root: its own name, with " (2)", " (3)" for a name an earlier
    root already has (x/Family and y/Family → Family, Family (2))."""
    names, seen = [], set()
    for root in roots:
        base = os.path.basename(root.rstrip(os.sep)) or "album"
        name, n = base, 1
        while _fold(name) in seen:
            n += 1
            name = f"{base} ({n})"
        seen.add(_fold(name))
        names.append(name)
    return names


def distinct_outputs(wanted: Iterable[tuple[int, str]], taken: Iterable[str] = ()) -> dict[int, str]:
    """{photo id: relative output} with no two equal (as the file system compares names) nor equal to
    one in `taken`: a clash gets " (2)", " (3)" before the extension, in the order given."""
    used = {_fold(t) for t in taken}
    out = {}
    for photo_id, relative in wanted:
        name, n = relative, 1
        while _fold(name) in used:
            n += 1
            name = numbered(relative, n)
        used.add(_fold(name))
        out[photo_id] = name
    return out


def _fold(relative: str) -> str:
    relative = os.path.normcase(os.path.normpath(relative))
    return relative.casefold() if _CASE_INSENSITIVE else relative


@dataclass(frozen=True)
class Holder:
    """Who holds a claim: the item, its photo and its batch."""

    item_id: int
    job_id: int
    photo_id: int
    photo_path: str
    job_running: bool


def holder_of(session, key: str) -> Holder | None:
    row = session.execute(select(BatchItem.id, BatchItem.job_id, BatchItem.photo_id, Photo.path, BatchJob.status)
                          .join(OutputClaim, OutputClaim.item_id == BatchItem.id)
                          .join(Photo, Photo.id == BatchItem.photo_id)
                          .join(BatchJob, BatchJob.id == BatchItem.job_id)
                          .where(OutputClaim.path == key)).first()
    if row is None:
        return None
    item_id, job_id, photo_id, photo_path, status = row
    return Holder(item_id, job_id, photo_id, photo_path, JobStatus(status) == JobStatus.running)


def refusal(holder: Holder | None, item: BatchItem, path: str) -> str | None:
    """Why `item` may not claim `path` from its holder (None: it may)."""
    if holder is None or holder.item_id == item.id:
        return None
    if holder.photo_id == item.photo_id and holder.job_id != item.job_id and not holder.job_running:
        return None  # a later batch of the same photo into the same folder
    if not holder.job_running and holder.job_id != item.job_id and not os.path.lexists(path):
        return None  # a finished batch's output that the user has since removed
    if holder.photo_id == item.photo_id:
        return (f"{path} is already the output of this photo in batch {holder.job_id}, which is not finished; "
                f"resume it (`faceme jobs resume {holder.job_id}`) or cancel it (`faceme jobs cancel "
                f"{holder.job_id}`) first")
    return (f"{path} is already the output of {holder.photo_path} (batch {holder.job_id}); "
            "restore into another output folder, or rename one of the photos")


def claim(session, item: BatchItem, path: str) -> None:
    """Make `item` the claimant of `path`; OutputClaimedError (naming the holder) when it may not be.
    Any other claim the item held is given up."""
    key = claim_key(path)
    holder = holder_of(session, key)
    reason = refusal(holder, item, path)
    if reason is not None:
        raise OutputClaimedError(reason)
    for old in session.scalars(select(OutputClaim).where(OutputClaim.item_id == item.id, OutputClaim.path != key)):
        session.delete(old)
    existing = session.get(OutputClaim, key)
    if existing is None:
        session.add(OutputClaim(path=key, item_id=item.id))
    else:
        existing.item_id = item.id
    session.flush()


def claim_all(session, items: Sequence[BatchItem], out_dir: str) -> None:
    """Claim the outputs of new items of one job; OutputClaimedError listing every refusal (nothing is
    claimed then: the caller's transaction is rolled back)."""
    refusals = []
    for item in items:
        try:
            claim(session, item, os.path.join(out_dir, item.relative_output))
        except OutputClaimedError as exc:
            refusals.append(exc.message)
    if refusals:
        more = f" (and {len(refusals) - 5} more)" if len(refusals) > 5 else ""
        raise OutputClaimedError(f"{len(refusals)} output file{'s are' if len(refusals) != 1 else ' is'} taken: "
                                 + "; ".join(refusals[:5]) + more + ". Nothing was started")


def holds(session, item_id: int, path: str) -> bool:
    claim_row = session.get(OutputClaim, claim_key(path))
    return claim_row is not None and claim_row.item_id == item_id


def file_sha256(path: str | os.PathLike) -> str | None:
    """The SHA-256 of a file's bytes (engine.imageio.content_hash); None when it cannot be read (missing,
    a folder, no permission)."""
    from engine.imageio import content_hash

    try:
        return content_hash(path)
    except ImageReadError:
        return None


def known_hashes(session, photo_id: int, path: str) -> set[str]:
    """The hashes of every output this photo's batch items recorded writing into `path`: a file with
    one of these is the batch's own, anything else is the user's."""
    key = claim_key(path)
    hashes = set()
    for out_dir, relative, sha in session.execute(
            select(BatchJob.out_dir, BatchItem.relative_output, BatchItem.output_sha256)
            .join(BatchJob, BatchItem.job_id == BatchJob.id)
            .where(BatchItem.photo_id == photo_id, BatchItem.output_sha256.is_not(None))):
        if claim_key(os.path.join(out_dir, relative)) == key:
            hashes.add(sha)
    return hashes


def _own_output_sha256(session, photo_id: int, path: str) -> str | None:
    """The hash of the file at `path` when a batch of this photo wrote it there (else None)."""
    if not os.path.isfile(path) or os.path.islink(path):
        return None
    sha = file_sha256(path)
    return sha if sha is not None and sha in known_hashes(session, photo_id, path) else None


@dataclass(frozen=True)
class OutputTarget:
    """Where an item writes: `path` (claimed by it), `existing_sha256` when a file the batch wrote is
    there already (it may be replaced, or taken as done when it is the item's own newest write), and
    `kept` when a file the batch did not write had the name and was left as it is."""

    path: str
    relative: str
    existing_sha256: str | None = None
    kept: str | None = None


def prepare(session, item: BatchItem) -> OutputTarget:
    """Claim the item's output, moving it beside a file there that the batch did not write. Raises
    OutputClaimedError when the file is another photo's or an unfinished batch's output."""
    out_dir = item.job.out_dir
    path = os.path.join(out_dir, item.relative_output)
    claim(session, item, path)
    if not os.path.lexists(path):
        return OutputTarget(path, item.relative_output)
    own = _own_output_sha256(session, item.photo_id, path)
    if own is not None:
        return OutputTarget(path, item.relative_output, existing_sha256=own)
    return move_beside(session, item, kept=path)


def move_beside(session, item: BatchItem, kept: str) -> OutputTarget:
    """Give the item the next name beside its current one ("p (2).jpg") that it may claim and that is
    free, or holds an earlier output of this same photo (a batch's own file, which it may replace)."""
    out_dir = item.job.out_dir
    base = item.relative_output
    for n in range(2, _MAX_SUFFIX):
        relative = numbered(base, n)
        path = os.path.join(out_dir, relative)
        if refusal(holder_of(session, claim_key(path)), item, path) is not None:
            continue
        own = _own_output_sha256(session, item.photo_id, path) if os.path.lexists(path) else None
        if os.path.lexists(path) and own is None:
            continue
        item.relative_output = relative
        claim(session, item, path)
        return OutputTarget(path, relative, existing_sha256=own, kept=kept)
    raise OutputClaimedError(f"no free name beside {kept} (tried {_MAX_SUFFIX} numbered names)")
