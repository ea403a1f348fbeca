"""The incremental album scanner: files on disk → photo and face rows → people.

What a scan does with each file it finds under the given folders:
- same path, same size and mtime, already analysed with this embedding model: nothing (no read).
- same path, changed size or mtime: re-hashed; same content → only size/mtime updated; new content →
  re-analysed, and faces that overlap an old face (IoU ≥ 0.5) keep that face's row, so the people
  and references the user chose for it survive an edit such as a crop or a colour fix.
- new path whose content hash belongs to a photo that is no longer at its own path: a move; the row
  (and so its faces, people and references) follows the file.
- new path whose content equals a photo still present (a copy): its faces are copied, not re-detected.
- anything else new: decoded, analysed, its thumbnail cached.
- a catalogued photo under a scanned folder that is no longer there: marked missing (kept, so a
  moved-back or re-mounted album gets its people back).
- unreadable files are recorded with the reason; unreadable folders and symlink loops are logged in
  the result and skipped. Folders whose name starts with "." are skipped (caches, .git, thumbnails).
- every other file is counted as left out, with why: not a photo (another kind of file; or a named
  pipe, device or socket, even one named like a photo: those are never opened, since opening a pipe
  waits for a writer forever), a restoration output the catalog records, or a photo whose name (or
  a folder's name above it) is not valid UTF-8 (bytes another system wrote in another encoding): the
  catalog stores paths as text, so such a photo can't be recorded; it is logged once, its name
  escaped, and the rest of the album is scanned as usual.

Photos are analysed (decoded, faces found and embedded) in worker processes — as many as the machine
has cores unless `workers` says otherwise — while this process alone writes to the catalog, in the
order the photos were found, one photo per transaction: killing the scan loses at most the photos in
flight, and a cancel stops between photos (results still in flight are dropped, never half-stored).
JPEGs are decoded at reduced size when the detector can't use more (`read_image_reduced`); a face too
small in the reduced pixels to embed well is embedded from the full-resolution photo.

Clustering after a scan considers the faces no clustering has seen yet (`Face.clustered` is False):
the faces this scan added, and those of a killed scan before it; `cluster_faces(..., scope="all")` is
the full re-cluster (`faceme people recluster`). Clustering is serialised across processes
(`engine.catalog.locks`).

Symlinked folders (and Windows junctions) that lead outside the scanned folder are not followed
unless `follow_links` is set: a link to ".." would otherwise catalog the whole parent tree.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from engine import photo_dates
from engine.catalog.db import Catalog
from engine.catalog.models import Assignment, AssignmentOrigin, Face, Photo, PhotoStatus, Reference, utcnow
from engine.errors import CancelledError, FaceMeError
from engine.faces.photo_analysis import (FaceAnalyzer, PhotoAnalysis, analyse_photo, default_workers, uses_dlib,
                                         worker_analyse, worker_context, worker_recipe, worker_start)
from engine.faces.types import box_iou, pair_by_overlap
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report
from engine.text import plural

log = logging.getLogger(__name__)

#: a face overlapping an old face of the same photo this much is taken to be the same face
SAME_FACE_IOU = 0.5
#: photos handed to the workers ahead of the writer, per worker
AHEAD_PER_WORKER = 3
#: why a file found in an album is left out (ScanResult.left_out)
NOT_A_PHOTO = "not a photo"
RESTORATION_OUTPUT = "restoration output"
NAME_NOT_UTF8 = "name not valid UTF-8"


@dataclass
class ScanResult:
    files: int = 0
    unchanged: int = 0
    added: int = 0
    changed: int = 0
    touched: int = 0          # size/mtime changed, content the same
    moved: int = 0
    copies: int = 0           # counted in `added` too: new files whose faces were copied
    missing: int = 0
    reanalysed: int = 0       # unchanged files analysed with the catalog's new face model (a re-analysis)
    faces_added: int = 0
    workers: int = 1
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    #: files found but not taken as photos, by why (NOT_A_PHOTO, RESTORATION_OUTPUT, NAME_NOT_UTF8);
    #: not in `files`
    left_out: Counter = field(default_factory=Counter)
    skipped_folders: list[tuple[str, str]] = field(default_factory=list)
    #: symlinks / junctions leading outside the scanned folders, not followed
    outside_links: list[str] = field(default_factory=list)
    seconds: float = 0.0
    clustering: object | None = None

    def accounted(self) -> int:
        """Photos the summary accounts for; equals `files` (every photo is in exactly one count; the
        files found that are not taken as photos are counted in `left_out`)."""
        return (self.unchanged + self.added + self.changed + self.touched + self.moved + self.reanalysed
                + len(self.unreadable))

    def left_out_text(self) -> str:
        """"3 left out (2 not a photo, 1 restoration output)"."""
        total = sum(self.left_out.values())
        if not total:
            return "0 left out"
        return f"{total} left out ({', '.join(f'{n} {why}' for why, n in sorted(self.left_out.items()))})"

    def summary(self) -> str:
        parts = [plural(self.files, "photo"), f"{self.added} new", f"{self.changed} changed",
                 f"{self.moved} moved", f"{self.touched} touched (same content)", f"{self.unchanged} unchanged",
                 f"{len(self.unreadable)} unreadable", self.left_out_text(), f"{self.missing} missing",
                 f"{plural(self.faces_added, 'face')} added"]
        if self.reanalysed:
            parts.append(f"{self.reanalysed} re-analysed with the new face model")
        if self.copies:
            parts.append(f"{self.copies} of the new are copies")
        if self.outside_links:
            parts.append(f"{plural(len(self.outside_links), 'link')} outside the album not followed")
        workers = f", {self.workers} workers" if self.workers > 1 else ""
        return ", ".join(parts) + f" in {self.seconds:.1f} s{workers}"


class _Done:
    """A finished result with the interface of a Future (the in-process path)."""

    def __init__(self, value):
        self.value = value

    def done(self) -> bool:
        return True

    def result(self):
        return self.value


@dataclass
class _Job:
    item: _FoundFile
    photo_id: int | None
    digest: str
    future: object


@dataclass(frozen=True)
class _FoundFile:
    path: str
    size: int
    mtime_ns: int


def is_inside(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or lies under it (both absolute, as the catalog stores them)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def is_storable(path: str) -> bool:
    """Whether the catalog can store `path`: its text encodes as UTF-8. A name that is not valid in the
    file system's encoding (bytes written by another system, e.g. Latin-1 "caf\\xe9.jpg") reaches Python
    as lone surrogates ("surrogateescape"), which no database text column takes."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(path: str) -> str:
    """`path` for a log line: as it is when it is valid text, else its bytes' repr (b'/a/caf\\xe9.jpg'),
    so that the undecodable bytes show, escaped."""
    return path if is_storable(path) else repr(os.fsencode(path))


def _special_file_kind(mode: int) -> str | None:
    """"a named pipe (FIFO)", "a device", "a socket" for files that are not data on a disk; None for
    regular files (and folders)."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return None


def walk_photos(roots: Sequence[str | Path], skipped: list[tuple[str, str]] | None = None,
                follow_links: bool = False, outside_links: list[str] | None = None,
                left_out: Counter | None = None) -> Iterator[_FoundFile]:
    """Every supported photo under `roots` (files given directly are taken as they are).

    A symlinked folder (or junction) is followed when it leads inside the root it was found under; one
    leading outside goes to `outside_links` and is not followed, unless `follow_links` (a link to ".."
    would otherwise bring in the whole parent tree). A symlinked file is a photo like any other. A folder already
    visited (same device and inode) is not entered again, which breaks symlink loops. Folders that
    cannot be listed go to `skipped`. Every other file is counted in `left_out` as NOT_A_PHOTO: other
    kinds of files, and named pipes, devices and sockets whatever their name (only stat is called on
    them: opening a named pipe would wait for a writer forever). A photo whose path is not valid UTF-8
    (`is_storable`: its own name, or a folder's above it) is counted as NAME_NOT_UTF8 and logged once:
    each such file by its name, each such folder once with the number of photos in it left out.
    """
    from engine.imageio import SUPPORTED_SUFFIXES

    skipped = skipped if skipped is not None else []
    outside_links = outside_links if outside_links is not None else []
    left_out = left_out if left_out is not None else Counter()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()
    #: folder whose name is not valid UTF-8 → photos under it left out (logged once per folder)
    unstorable_folders: dict[str, int] = {}

    def file_entry(path: str, st: os.stat_result, unstorable_folder: str | None = None) -> _FoundFile | None:
        if path in seen_files:
            return None
        seen_files.add(path)
        kind = _special_file_kind(st.st_mode)
        if kind is not None:
            log.info("left out %s: %s, not a photo file", shown(path), kind)
            left_out[NOT_A_PHOTO] += 1
            return None
        if unstorable_folder is not None:
            unstorable_folders[unstorable_folder] += 1
            left_out[NAME_NOT_UTF8] += 1
            return None
        if not is_storable(path):
            log.warning("left out %s: its name is not valid UTF-8, so the catalog can't record it; "
                        "rename it to scan it", shown(path))
            left_out[NAME_NOT_UTF8] += 1
            return None
        return _FoundFile(path, st.st_size, st.st_mtime_ns)

    def log_unstorable_folders() -> None:
        for folder, photos in unstorable_folders.items():
            if photos:
                log.warning("left out %d photo(s) in %s: the folder's name is not valid UTF-8, so the catalog "
                            "can't record them; rename it to scan them", photos, shown(folder))
        unstorable_folders.clear()

    def is_photo_name(name: str) -> bool:
        if os.path.splitext(name)[1].lower() in SUPPORTED_SUFFIXES:
            return True
        left_out[NOT_A_PHOTO] += 1
        return False

    for root in roots:
        root_path = os.path.abspath(os.fspath(root))
        try:
            st = os.stat(root_path)
        except OSError as exc:
            skipped.append((root_path, exc.strerror or str(exc)))
            continue
        if not stat.S_ISDIR(st.st_mode):
            if is_photo_name(root_path):
                found = file_entry(root_path, st)
                if found:
                    yield found
            continue
        real_root = os.path.realpath(root_path)
        # each folder with the topmost folder above it (itself included) whose name is not valid UTF-8
        stack: list[tuple[str, str | None]] = [(root_path, None if is_storable(root_path) else root_path)]
        if not is_storable(root_path):
            unstorable_folders[root_path] = 0
        while stack:
            folder, unstorable_folder = stack.pop()
            try:
                folder_stat = os.stat(folder)
            except OSError as exc:
                skipped.append((folder, exc.strerror or str(exc)))
                continue
            key = (folder_stat.st_dev, folder_stat.st_ino)
            if key in seen_dirs:
                skipped.append((folder, "already scanned through another path (symlink loop or alias)"))
                continue
            seen_dirs.add(key)
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                skipped.append((folder, exc.strerror or str(exc)))
                continue
            subfolders = []
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=True):
                        is_link = entry.is_symlink() or getattr(entry, "is_junction", lambda: False)()
                        if is_link and not follow_links and not is_inside(os.path.realpath(entry.path), real_root):
                            outside_links.append(entry.path)
                            continue
                        below = unstorable_folder
                        if below is None and not is_storable(entry.path):
                            below = entry.path
                            unstorable_folders[below] = 0
                        subfolders.append((entry.path, below))
                        continue
                    if not is_photo_name(entry.name):
                        continue
                    found = file_entry(entry.path, entry.stat(follow_symlinks=True), unstorable_folder)
                except OSError as exc:  # a dangling symlink, a file removed during the walk
                    skipped.append((entry.path, exc.strerror or str(exc)))
                    continue
                if found:
                    yield found
            stack.extend(reversed(subfolders))
        log_unstorable_folders()


def _without_restoration_outputs(catalog: Catalog, found, left_out: Counter) -> list[_FoundFile]:
    """The found files less those the catalog records as restoration outputs (saved from the app, or a
    batch's), counted in `left_out`: a restored photo is never catalogued as a photo of the album, so it
    is never restored again. One query per scan, then a set lookup per file."""
    from engine.catalog.jobs import output_paths

    with catalog.session() as session:
        outputs = output_paths(session)
    found = list(found)
    kept = [item for item in found if item.path not in outputs]
    if len(kept) != len(found):
        left_out[RESTORATION_OUTPUT] += len(found) - len(kept)
        log.info("left out %d restoration output(s) recorded in the catalog", len(found) - len(kept))
    return kept


def _models_of(photo: Photo) -> set[str]:
    return set((photo.analysed_with or "").split())


def _like_prefix(folder: str) -> str:
    escaped = folder.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.rstrip(os.sep) + os.sep + "%"


#: what a face row holds of its analysis (the rest: its photo, its id, the user's decisions about it)
_ANALYSIS_COLUMNS = ("x1", "y1", "x2", "y2", "score", "landmarks", "quality", "sharpness", "frontalness", "yaw",
                     "embedding", "embedding_model", "clustered", "apparent_age", "age_model")


def _carry_over(session, old_faces: list[Face], new_faces: list[Face], model: str,
                fresh: list[Face] = ()) -> dict[int, Face]:
    """Re-analysis: each old-model face's people, corrections and references go to the new-model face
    overlapping it most (IoU ≥ PAIR_IOU, best pairs first); the people now belong to `model`. A new face
    that is new to the photo (`fresh`) is folded into the old face's row instead, so the face keeps the
    id the user knows it by (`faceme people … PHOTO#N`, face #id); returns {old face id: the new face
    folded into it}."""
    from engine.catalog.models import Person

    kept: dict[int, Face] = {}
    for i, j in pair_by_overlap([o.box for o in old_faces], [n.box for n in new_faces]).items():
        old, new = old_faces[i], new_faces[j]
        if any(new is f for f in fresh):
            for column in _ANALYSIS_COLUMNS:
                setattr(old, column, getattr(new, column))
            for assignment in session.scalars(select(Assignment).where(Assignment.face_id == old.id)):
                person = session.get(Person, assignment.person_id)
                if person is not None and person.embedding_model != model:
                    person.embedding_model = model
            kept[old.id] = new
            continue
        taken = {a.person_id: a for a in session.scalars(select(Assignment).where(Assignment.face_id == new.id))}
        for assignment in session.scalars(select(Assignment).where(Assignment.face_id == old.id)).all():
            person = session.get(Person, assignment.person_id)
            if person is not None and person.embedding_model != model:
                person.embedding_model = model
            if assignment.person_id in taken:
                continue
            if assignment.origin != AssignmentOrigin.rejected and any(
                    a.origin != AssignmentOrigin.rejected for a in taken.values()):
                continue  # the new face already has its person (the user's word on it stays)
            assignment.face_id = new.id
            taken[assignment.person_id] = assignment
            session.flush()
        refs = set(session.scalars(select(Reference.person_id).where(Reference.face_id == new.id)))
        for reference in session.scalars(select(Reference).where(Reference.face_id == old.id)).all():
            if reference.person_id not in refs:
                reference.face_id = new.id
        session.flush()
    return kept


class Scanner:
    """Scans folders into a catalog with one face analyser (its embedding model names the faces)."""

    def __init__(self, catalog: Catalog, analyzer: FaceAnalyzer | None = None,
                 thumbnails: bool = True, cluster: bool = True, workers: int | None = None,
                 follow_links: bool = False, on_wait=None, reanalyse: bool = False):
        self.catalog = catalog
        #: photos analysed with another model move to this one, their people with them (else the
        #: other model's faces stay beside this one's)
        self.reanalyse = reanalyse
        self._analyzer = analyzer
        self.thumbnails = thumbnails and catalog.thumbnails_dir is not None
        self.cluster = cluster
        self.workers = default_workers() if workers is None else max(1, int(workers))
        self.follow_links = follow_links
        #: told "waiting for …" when another process holds the clustering lock
        self.on_wait = on_wait

    @property
    def analyzer(self) -> FaceAnalyzer:
        if self._analyzer is None:
            from engine.catalog.face_model import analyzer_for_catalog

            self._analyzer = analyzer_for_catalog(self.catalog)  # the catalog's model; a new one: a pack, else dlib
        return self._analyzer

    @property
    def model(self) -> str:
        return self.analyzer.embedding_model

    # -- the scan --------------------------------------------------------------------------------

    def scan(self, roots: Sequence[str | Path], progress: ProgressCallback | None = None,
             cancel: CancelCheck | None = None) -> ScanResult:
        start = time.monotonic()
        result = ScanResult()
        roots = [os.path.abspath(os.fspath(r)) for r in roots]
        found = _without_restoration_outputs(
            self.catalog, walk_photos(roots, result.skipped_folders, self.follow_links, result.outside_links,
                                      result.left_out), result.left_out)
        for folder, reason in result.skipped_folders:
            log.warning("skipped %s: %s", shown(folder), reason)
        if result.outside_links:
            log.warning("%d symlink(s) lead outside the scanned folders and were not followed (e.g. %s); "
                        "scan with follow_links (--follow-links) to include them",
                        len(result.outside_links), shown(result.outside_links[0]))
        result.files = len(found)
        model = self.model
        from engine.catalog.face_model import use_model

        use_model(self.catalog, model, switch=self.reanalyse)  # one face model per catalog
        # a root whose name is not valid UTF-8 holds nothing the catalog could have recorded (its photos
        # were left out above), and can't be queried for
        roots = [root for root in roots if is_storable(root)]

        with self.catalog.session() as session:
            known = self._known_under(session, roots)
        todo: list[_FoundFile] = []
        for item in found:
            row = known.get(item.path)
            if (row is not None and row[1] == item.size and row[2] == item.mtime_ns
                    and (row[3] == PhotoStatus.unreadable or model in (row[4] or "").split())):
                result.unchanged += 1
                if row[3] == PhotoStatus.missing:  # back where it was
                    with self.catalog.transaction() as session:
                        session.execute(update(Photo).where(Photo.id == row[0])
                                        .values(status=PhotoStatus.ok, missing_since=None))
            else:
                todo.append(item)
        report(progress, result.unchanged, result.files, "checking")
        self._analyse_and_store(todo, known, result, progress, cancel)

        seen = {item.path for item in found}
        self._mark_missing(roots, seen, result)
        if self.cluster:
            check_cancelled(cancel, "scan")
            from engine.people.clustering import cluster_catalog

            result.clustering = cluster_catalog(self.catalog, model, on_wait=self.on_wait)
        result.seconds = time.monotonic() - start
        log.info("scan: %s", result.summary())
        return result

    def _analyse_and_store(self, todo: list[_FoundFile], known: dict, result: ScanResult,
                           progress: ProgressCallback | None, cancel: CancelCheck | None) -> None:
        """Hash and sort out each file here; analyse the ones that need it in the workers (or here);
        store every result here, in `todo`'s order, one photo per transaction."""
        recipe = worker_recipe(self.analyzer) if self.workers > 1 and len(todo) > 1 else None
        if self.workers > 1 and len(todo) > 1 and recipe is None:
            log.info("scan: %s runs in this process (it can't be rebuilt in a worker)", type(self.analyzer).__name__)
        pool = None
        if recipe is not None:
            from concurrent.futures import ProcessPoolExecutor

            pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=worker_context(uses_dlib(self.analyzer)),
                                       initializer=worker_start, initargs=(recipe, self.thumbnails, os.getpid()))
            result.workers = self.workers
        window: deque[_Job] = deque()
        ahead = AHEAD_PER_WORKER * self.workers if pool is not None else 0
        done = result.unchanged
        first_done = done
        work_start = time.monotonic()

        def finish(job: _Job) -> None:
            nonlocal done
            analysis = job.future.result()
            if isinstance(analysis, str):
                self._record_unreadable(job.item, job.digest, analysis, result)
            else:
                self._store_analysis(job, analysis, result)
            done += 1
            rate = (done - first_done) / max(time.monotonic() - work_start, 1e-6)
            eta = (result.files - done) / rate
            report(progress, done, result.files, f"{os.path.basename(job.item.path)} (eta {eta:.0f} s)")

        try:
            for item in todo:
                check_cancelled(cancel, "scan")
                prepared = self._prepare(item, known.get(item.path), result)
                if prepared is None:
                    done += 1
                    report(progress, done, result.files, os.path.basename(item.path))
                else:
                    photo_id, digest, keep = prepared
                    if pool is not None:
                        future = pool.submit(worker_analyse, item.path, keep)
                    else:
                        future = _Done(self._analyse_here(item.path, keep))
                    window.append(_Job(item, photo_id, digest, future))
                while window and (len(window) > ahead or window[0].future.done()):
                    check_cancelled(cancel, "scan")
                    finish(window.popleft())
            while window:
                check_cancelled(cancel, "scan")
                finish(window.popleft())
        except (CancelledError, KeyboardInterrupt):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
                pool = None
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True)

    def _analyse_here(self, path: str, keep=()) -> PhotoAnalysis | str:
        try:
            return analyse_photo(path, self.analyzer, self.thumbnails, keep)
        except FaceMeError as exc:
            return exc.message

    def _known_under(self, session, roots: list[str]) -> dict[str, tuple]:
        """path → (id, size, mtime_ns, status, analysed_with) for catalogued photos under `roots`."""
        columns = (Photo.path, Photo.id, Photo.size, Photo.mtime_ns, Photo.status, Photo.analysed_with)
        known: dict[str, tuple] = {}
        for root in roots:
            query = select(*columns).where((Photo.path == root) | Photo.path.like(_like_prefix(root), escape="\\"))
            for path, *rest in session.execute(query):
                known[path] = tuple(rest)
        return known

    def _mark_missing(self, roots: list[str], seen: set[str], result: ScanResult) -> None:
        with self.catalog.transaction() as session:
            known = self._known_under(session, roots)
            gone = [row[0] for path, row in known.items()
                    if path not in seen and row[3] != PhotoStatus.missing]
            for chunk_start in range(0, len(gone), 500):
                session.execute(update(Photo).where(Photo.id.in_(gone[chunk_start:chunk_start + 500]))
                                .values(status=PhotoStatus.missing, missing_since=utcnow()))
        result.missing += len(gone)

    def _prepare(self, item: _FoundFile, known_row: tuple | None, result: ScanResult) -> tuple | None:
        """Hash `item` and settle what needs no analysis (same content, a move, a copy, unreadable).
        Returns (row id or None, content hash, faces to keep) when the photo must be analysed."""
        from engine.imageio import content_hash

        try:
            digest = content_hash(item.path)
        except FaceMeError as exc:
            self._record_unreadable(item, None, exc.message, result)
            return None
        except OSError as exc:
            self._record_unreadable(item, None, exc.strerror or str(exc), result)
            return None
        model = self.model

        def settle(session) -> tuple | None:
            photo = (session.get(Photo, known_row[0]) if known_row else None) or session.scalar(
                select(Photo).where(Photo.path == item.path))  # or just added by a concurrent scan
            if photo is not None and photo.content_hash == digest and model in _models_of(photo) \
                    and photo.status != PhotoStatus.unreadable:
                if (photo.size, photo.mtime_ns) == (item.size, item.mtime_ns) and known_row is None:
                    result.unchanged += 1  # another scan stored it a moment ago
                else:
                    result.touched += 1
                photo.size, photo.mtime_ns, photo.status, photo.missing_since = (
                    item.size, item.mtime_ns, PhotoStatus.ok, None)
                return None
            if photo is None:
                moved = self._moved_from(session, digest)
                if moved is not None:
                    log.info("moved: %s → %s", moved.path, item.path)
                    moved.path, moved.size, moved.mtime_ns = item.path, item.size, item.mtime_ns
                    moved.status, moved.missing_since, moved.scanned_at = PhotoStatus.ok, None, utcnow()
                    photo_dates.after_move(moved, item.path)  # a date from its old folder's name follows the names
                    result.moved += 1
                    if model in _models_of(moved):
                        return None
                    photo = moved  # moved, and not yet analysed with this model
                else:
                    original = self._copy_source(session, digest, model)
                    if original is not None:
                        self._add_copy(session, item, digest, original, result)
                        return None
            return (photo.id if photo is not None else None), digest, self._faces_to_keep(session, photo)

        return self._write(settle, result)

    def _faces_to_keep(self, session, photo: Photo | None) -> list[tuple[tuple[float, ...], list]]:
        """For a photo still on another face model (a re-analysis, or any scan after a stopped one):
        geometry of its other-model faces that carry the user's word or a person (assignments,
        references), to be embedded with this model if not found."""
        if photo is None:
            return []
        others = [face for face in photo.faces if face.embedding_model != self.model]
        if not others:
            return []
        ids = [face.id for face in others]
        decided = set(session.scalars(select(Assignment.face_id).where(Assignment.face_id.in_(ids))))
        decided |= set(session.scalars(select(Reference.face_id).where(Reference.face_id.in_(ids))))
        return [(face.box, face.landmarks) for face in others if face.id in decided]

    def _write(self, step, result: ScanResult):
        """Run `step(session)` in one transaction; when a concurrent scan inserted the same path first
        (UNIQUE photos.path), run it once more: it then finds that row and updates it."""
        counts = dict(result.__dict__)
        try:
            with self.catalog.transaction() as session:
                return step(session)
        except IntegrityError as exc:
            if "photos.path" not in str(exc.orig) and "uq_photos_path" not in str(exc.orig):
                raise
            for key in ("unchanged", "added", "changed", "touched", "moved", "copies", "faces_added"):
                setattr(result, key, counts[key])
            log.info("another scan stored a photo at the same moment; re-reading it")
            with self.catalog.transaction() as session:
                return step(session)

    def _store_analysis(self, job: _Job, analysis: PhotoAnalysis, result: ScanResult) -> None:
        def store(session) -> None:
            photo = session.get(Photo, job.photo_id) if job.photo_id is not None else None
            if photo is None:
                photo = session.scalar(select(Photo).where(Photo.path == job.item.path))
            if photo is not None and photo.content_hash == job.digest and self.model in _models_of(photo) \
                    and photo.status == PhotoStatus.ok and photo.path == job.item.path and job.photo_id is None:
                result.unchanged += 1  # a concurrent scan stored this very file meanwhile
                return
            self._store(session, photo, job.item, job.digest, analysis, result)

        self._write(store, result)

    def _moved_from(self, session, digest: str) -> Photo | None:
        """A catalogued photo with this content whose own file is gone (missing or not there now)."""
        for candidate in session.scalars(select(Photo).where(Photo.content_hash == digest)):
            if candidate.status == PhotoStatus.missing or not os.path.exists(candidate.path):
                return candidate
        return None

    def _copy_source(self, session, digest: str, model: str) -> Photo | None:
        for candidate in session.scalars(select(Photo).where(Photo.content_hash == digest,
                                                             Photo.status == PhotoStatus.ok)):
            if model in _models_of(candidate):
                return candidate
        return None

    def _add_copy(self, session, item: _FoundFile, digest: str, original: Photo, result: ScanResult) -> None:
        photo = Photo(path=item.path, size=item.size, mtime_ns=item.mtime_ns, content_hash=digest,
                      status=PhotoStatus.ok, date_taken=original.date_taken, orientation=original.orientation,
                      camera=original.camera, width=original.width, height=original.height,
                      thumbnail=original.thumbnail, analysed_with=original.analysed_with)
        photo_dates.store(photo, photo_dates.date_of_file(item.path))  # its own names may say another year
        session.add(photo)
        for face in original.faces:
            photo.faces.append(Face(x1=face.x1, y1=face.y1, x2=face.x2, y2=face.y2, score=face.score,
                                    landmarks=face.landmarks, quality=face.quality, sharpness=face.sharpness,
                                    frontalness=face.frontalness, yaw=face.yaw, embedding=face.embedding,
                                    embedding_model=face.embedding_model, apparent_age=face.apparent_age,
                                    age_model=face.age_model))
            result.faces_added += 1
        result.copies += 1
        result.added += 1

    def _thumbnail_path(self, digest: str) -> Path:
        return self.catalog.thumbnails_dir / digest[:2] / f"{digest}.jpg"

    def _write_thumbnail(self, digest: str, pixels: np.ndarray) -> str | None:
        from engine.errors import ImageWriteError
        from engine.imageio import write_image

        target = self._thumbnail_path(digest)
        if target.exists():
            return str(target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_image(target, pixels, format="JPEG", quality=85)  # atomic: a whole file or none
        except (OSError, ImageWriteError) as exc:
            log.warning("thumbnail for %s not cached: %s", digest[:12], exc)
            return None
        return str(target)

    def _store(self, session, photo: Photo | None, item: _FoundFile, digest: str, analysis: PhotoAnalysis,
               result: ScanResult) -> None:
        model = self.model
        info = analysis.info
        if photo is None:
            photo = Photo(path=item.path, size=item.size, mtime_ns=item.mtime_ns)
            session.add(photo)
            result.added += 1
            old_faces: list[Face] = []
            other_faces: list[Face] = []
        else:
            changed = photo.content_hash not in (None, digest) or photo.status == PhotoStatus.unreadable
            if photo.content_hash not in (None, digest):
                result.changed += 1
                # New content: faces are matched by position below (another model's by overlap, which
                # carries their people over).
                old_models: set[str] = set()
            else:
                old_models = _models_of(photo)
                if photo.status == PhotoStatus.unreadable:
                    result.changed += 1
            old_faces = [f for f in photo.faces if f.embedding_model == model]
            other_faces = [f for f in photo.faces if f.embedding_model != model]
            # a photo still on another face model moves to this one with its people, in a re-analysis and
            # in any scan after a stopped one (keeping both models' faces would show each face twice)
            if self.reanalyse or other_faces or old_models - {model}:
                old_models = set()  # the photo moves to this model; people move with the faces (below)
                if not changed:  # a changed photo is counted as changed
                    result.reanalysed += 1
            else:
                for face in other_faces:
                    if face.embedding_model not in old_models:
                        session.delete(face)
            photo.analysed_with = " ".join(sorted(old_models - {model}))
        photo.size, photo.mtime_ns, photo.content_hash = item.size, item.mtime_ns, digest
        photo.status, photo.error, photo.missing_since = PhotoStatus.ok, None, None
        photo.width, photo.height = analysis.width, analysis.height
        photo.orientation, photo.camera, photo.date_taken = analysis.orientation, analysis.camera, info.date_taken
        photo_dates.set_on_photo(photo, analysis.date)  # a date the user set stays
        photo.scanned_at = utcnow()
        if analysis.thumbnail is not None:
            photo.thumbnail = self._write_thumbnail(digest, analysis.thumbnail)

        unmatched_old = list(old_faces)
        stored: list[Face] = []
        fresh: list[Face] = []  # faces new to the photo in this analysis
        ages = analysis.ages or [None] * len(analysis.faces)
        for (detected, quality), age in zip(analysis.faces, ages):
            values = dict(x1=detected.box[0], y1=detected.box[1], x2=detected.box[2], y2=detected.box[3],
                          score=detected.score, landmarks=np.asarray(detected.landmarks).round(2).tolist(),
                          quality=quality.score, sharpness=quality.sharpness, frontalness=quality.frontalness,
                          yaw=quality.yaw, embedding=Face.pack(detected.embedding), embedding_model=model,
                          clustered=False, apparent_age=None if age is None else round(float(age), 1),
                          age_model=analysis.age_model if age is not None else None)
            best = max(unmatched_old, key=lambda f: box_iou(f.box, detected.box), default=None)
            if best is not None and box_iou(best.box, detected.box) >= SAME_FACE_IOU:
                unmatched_old.remove(best)
                for key, value in values.items():
                    setattr(best, key, value)
                # the face's look changed: a machine guess must be re-made, the user's word stays
                session.execute(Assignment.__table__.delete().where(
                    (Assignment.face_id == best.id) & (Assignment.origin == AssignmentOrigin.machine)))
                stored.append(best)
            else:
                face = Face(**values)
                photo.faces.append(face)
                stored.append(face)
                fresh.append(face)
                result.faces_added += 1
        for face in unmatched_old:
            session.execute(Reference.__table__.delete().where(Reference.face_id == face.id))
            session.delete(face)
        if other_faces:
            session.flush()
            kept = _carry_over(session, other_faces, stored, model, fresh)
            for face in fresh:
                if any(face is folded for folded in kept.values()):  # its values now live in the old row
                    photo.faces.remove(face)
                    session.delete(face)
                    result.faces_added -= 1
            for face in other_faces:
                if face.id not in kept:
                    session.delete(face)
        photo.analysed_with = " ".join(sorted(set(photo.analysed_with.split() if photo.analysed_with else [])
                                              | {model}))

    def _record_unreadable(self, item: _FoundFile, digest: str | None, reason: str, result: ScanResult) -> None:
        log.warning("unreadable: %s: %s", item.path, reason)

        def record(session) -> None:
            photo = session.scalar(select(Photo).where(Photo.path == item.path))
            if photo is None:
                photo = Photo(path=item.path, size=item.size, mtime_ns=item.mtime_ns)
                session.add(photo)
                session.flush()
            # faces of an earlier readable version are kept: the file may be mid-copy
            photo.size, photo.mtime_ns, photo.content_hash = item.size, item.mtime_ns, digest
            photo.status, photo.error, photo.scanned_at = PhotoStatus.unreadable, reason, utcnow()

        self._write(record, result)
        result.unreadable.append((item.path, reason))


def scan(catalog: Catalog, roots: Sequence[str | Path], analyzer: FaceAnalyzer | None = None,
         progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
         thumbnails: bool = True, cluster: bool = True, workers: int | None = None,
         follow_links: bool = False, on_wait=None, reanalyse: bool = False) -> ScanResult:
    """Scan `roots` into `catalog` (see the module docstring); returns what was done.

    `workers`: analysing processes (default: one per core; 1 analyses in this process).
    `follow_links`: follow symlinks that lead outside the scanned folders too.
    `on_wait(message)`: told when the scan waits for another process's clustering.
    `reanalyse`: photos analysed with another face model are analysed with this one instead, each
    face's people, corrections and references carried over to the face found at the same place
    (`reanalyse_album`)."""
    return Scanner(catalog, analyzer, thumbnails=thumbnails, cluster=cluster, workers=workers,
                   follow_links=follow_links, on_wait=on_wait, reanalyse=reanalyse).scan(roots, progress, cancel)


def reanalyse_album(catalog: Catalog, roots: Sequence[str | Path], analyzer: FaceAnalyzer,
                    progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
                    workers: int | None = None, on_wait=None) -> ScanResult:
    """Move an album scanned with one face model to `analyzer`'s model, keeping every person, name,
    confirmation, rejection and reference (faces paired by overlap; a face the user decided about
    that the new detector misses is embedded where it was). A long operation: progress, cancel between
    photos; each photo is one transaction, so a stopped re-analysis resumes where it stopped when
    called again."""
    return scan(catalog, roots, analyzer=analyzer, progress=progress, cancel=cancel, workers=workers,
                on_wait=on_wait, reanalyse=True)


def album_roots(catalog: Catalog) -> list[str]:
    """The top folders holding the catalog's photos (no folder inside another), for a re-analysis of
    every photo."""
    with catalog.session() as session:
        folders = sorted({os.path.dirname(path) for path in session.scalars(select(Photo.path))})
    roots: list[str] = []
    for folder in folders:
        if not any(is_inside(folder, root) for root in roots):
            roots.append(folder)
    return roots
