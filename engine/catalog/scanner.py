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

Every photo is committed on its own, so killing the process loses at most the photo in flight; the
faces of a killed scan are clustered by the next one (clustering picks up every face not yet in a
person).
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from sqlalchemy import select, update

from engine.catalog.db import Catalog
from engine.catalog.models import Assignment, AssignmentOrigin, Face, Photo, PhotoStatus, Reference, utcnow
from engine.errors import FaceMeError
from engine.faces.types import Face as DetectedFace
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 256
#: a face overlapping an old face of the same photo this much is taken to be the same face
SAME_FACE_IOU = 0.5


class FaceAnalyzer(Protocol):
    embedding_model: str

    def detect(self, image_rgb: np.ndarray) -> list[DetectedFace]: ...


@dataclass
class ScanResult:
    files: int = 0
    unchanged: int = 0
    added: int = 0
    changed: int = 0
    touched: int = 0          # size/mtime changed, content the same
    moved: int = 0
    copies: int = 0
    missing: int = 0
    faces_added: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    skipped_folders: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    clustering: object | None = None

    def summary(self) -> str:
        parts = [f"{self.files} photos", f"{self.added} new", f"{self.changed} changed",
                 f"{self.moved} moved", f"{self.unchanged} unchanged", f"{self.missing} missing",
                 f"{len(self.unreadable)} unreadable", f"{self.faces_added} faces added"]
        if self.copies:
            parts.append(f"{self.copies} copies")
        return ", ".join(parts) + f" in {self.seconds:.1f} s"


@dataclass(frozen=True)
class _FoundFile:
    path: str
    size: int
    mtime_ns: int


def walk_photos(roots: Sequence[str | Path], skipped: list[tuple[str, str]] | None = None
                ) -> Iterator[_FoundFile]:
    """Every supported photo under `roots` (files given directly are taken as they are).

    Symlinked folders are followed once: a folder already visited (same device and inode) is not
    entered again, which breaks symlink loops. Folders that cannot be listed go to `skipped`.
    """
    from engine.imageio import SUPPORTED_SUFFIXES

    skipped = skipped if skipped is not None else []
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()

    def file_entry(path: str, st: os.stat_result) -> _FoundFile | None:
        if path in seen_files or not stat.S_ISREG(st.st_mode):
            return None
        seen_files.add(path)
        return _FoundFile(path, st.st_size, st.st_mtime_ns)

    for root in roots:
        root_path = os.path.abspath(os.fspath(root))
        try:
            st = os.stat(root_path)
        except OSError as exc:
            skipped.append((root_path, exc.strerror or str(exc)))
            continue
        if stat.S_ISREG(st.st_mode):
            if os.path.splitext(root_path)[1].lower() in SUPPORTED_SUFFIXES:
                found = file_entry(root_path, st)
                if found:
                    yield found
            continue
        stack = [root_path]
        while stack:
            folder = stack.pop()
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
                        subfolders.append(entry.path)
                        continue
                    if os.path.splitext(entry.name)[1].lower() not in SUPPORTED_SUFFIXES:
                        continue
                    found = file_entry(entry.path, entry.stat(follow_symlinks=True))
                except OSError as exc:  # a dangling symlink, a file removed during the walk
                    skipped.append((entry.path, exc.strerror or str(exc)))
                    continue
                if found:
                    yield found
            stack.extend(reversed(subfolders))


def _without_restoration_outputs(catalog: Catalog, found) -> list[_FoundFile]:
    """The found files less those the catalog records as restoration outputs (saved from the app, or a
    batch's): a restored photo is never catalogued as a photo of the album, so it is never restored
    again. One query per scan, then a set lookup per file."""
    from engine.catalog.jobs import output_paths

    with catalog.session() as session:
        outputs = output_paths(session)
    found = list(found)
    kept = [item for item in found if item.path not in outputs]
    if len(kept) != len(found):
        log.info("left out %d restoration output(s) recorded in the catalog", len(found) - len(kept))
    return kept


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _models_of(photo: Photo) -> set[str]:
    return set((photo.analysed_with or "").split())


def _like_prefix(folder: str) -> str:
    escaped = folder.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.rstrip(os.sep) + os.sep + "%"


class Scanner:
    """Scans folders into a catalog with one face analyser (its embedding model names the faces)."""

    def __init__(self, catalog: Catalog, analyzer: FaceAnalyzer | None = None,
                 thumbnails: bool = True, cluster: bool = True):
        self.catalog = catalog
        self._analyzer = analyzer
        self.thumbnails = thumbnails and catalog.thumbnails_dir is not None
        self.cluster = cluster

    @property
    def analyzer(self) -> FaceAnalyzer:
        if self._analyzer is None:
            from engine.faces.dlib_backend import DlibFaceAnalyzer

            self._analyzer = DlibFaceAnalyzer()
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
        found = _without_restoration_outputs(self.catalog, walk_photos(roots, result.skipped_folders))
        for folder, reason in result.skipped_folders:
            log.warning("skipped %s: %s", folder, reason)
        result.files = len(found)
        model = self.model

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

        work_start = time.monotonic()
        for n, item in enumerate(todo, start=1):
            check_cancelled(cancel, "scan")
            self._scan_one(item, known.get(item.path), result)
            done = result.unchanged + n
            rate = n / max(time.monotonic() - work_start, 1e-6)
            eta = (len(todo) - n) / rate
            report(progress, done, result.files, f"{os.path.basename(item.path)} (eta {eta:.0f} s)")

        seen = {item.path for item in found}
        self._mark_missing(roots, seen, result)
        if self.cluster:
            check_cancelled(cancel, "scan")
            from engine.people.clustering import cluster_faces

            with self.catalog.transaction() as session:
                result.clustering = cluster_faces(session, model)
        result.seconds = time.monotonic() - start
        log.info("scan: %s", result.summary())
        return result

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

    def _scan_one(self, item: _FoundFile, known_row: tuple | None, result: ScanResult) -> None:
        from engine.imageio import content_hash

        try:
            digest = content_hash(item.path)
        except FaceMeError as exc:
            self._record_unreadable(item, None, exc.message, result)
            return
        except OSError as exc:
            self._record_unreadable(item, None, exc.strerror or str(exc), result)
            return
        model = self.model
        with self.catalog.transaction() as session:
            photo = session.get(Photo, known_row[0]) if known_row else None
            if photo is not None and photo.content_hash == digest and model in _models_of(photo) \
                    and photo.status != PhotoStatus.unreadable:
                photo.size, photo.mtime_ns, photo.status, photo.missing_since = (
                    item.size, item.mtime_ns, PhotoStatus.ok, None)
                result.touched += 1
                return
            if photo is None:
                moved = self._moved_from(session, digest)
                if moved is not None:
                    log.info("moved: %s → %s", moved.path, item.path)
                    moved.path, moved.size, moved.mtime_ns = item.path, item.size, item.mtime_ns
                    moved.status, moved.missing_since, moved.scanned_at = PhotoStatus.ok, None, utcnow()
                    result.moved += 1
                    if model in _models_of(moved):
                        return
                    photo = moved
                else:
                    original = self._copy_source(session, digest, model)
                    if original is not None:
                        self._add_copy(session, item, digest, original, result)
                        return
        # decode and analyse outside the transaction: this is the slow part
        try:
            analysis = self._analyse(item.path)
        except FaceMeError as exc:
            self._record_unreadable(item, digest, exc.message, result)
            return
        with self.catalog.transaction() as session:
            photo = session.get(Photo, photo.id) if photo is not None else None
            self._store(session, photo, item, digest, analysis, result)

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
        session.add(photo)
        for face in original.faces:
            photo.faces.append(Face(x1=face.x1, y1=face.y1, x2=face.x2, y2=face.y2, score=face.score,
                                    landmarks=face.landmarks, quality=face.quality, sharpness=face.sharpness,
                                    frontalness=face.frontalness, yaw=face.yaw, embedding=face.embedding,
                                    embedding_model=face.embedding_model))
            result.faces_added += 1
        result.copies += 1
        result.added += 1

    def _analyse(self, path: str) -> dict:
        from engine.imageio import make_thumbnail, read_image, read_photo_info
        from engine.people.quality import face_quality

        info = read_photo_info(path)
        image = read_image(path)
        faces = self.analyzer.detect(image.pixels)
        analysed = []
        for face in faces:
            if face.embedding is None:
                face = type(face)(box=face.box, score=face.score, landmarks=face.landmarks,
                                  embedding=self.analyzer.embed(image.pixels, face),
                                  embedding_model=self.model)
            analysed.append((face, face_quality(image.pixels, face.box, face.landmarks)))
        thumbnail = make_thumbnail(image, THUMBNAIL_SIZE) if self.thumbnails else None
        camera = " ".join(v for v in (info.camera_make, info.camera_model) if v) or None
        return {"info": info, "faces": analysed, "thumbnail": thumbnail, "width": image.width,
                "height": image.height, "orientation": image.orientation, "camera": camera}

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

    def _store(self, session, photo: Photo | None, item: _FoundFile, digest: str, analysis: dict,
               result: ScanResult) -> None:
        model = self.model
        info = analysis["info"]
        if photo is None:
            photo = Photo(path=item.path, size=item.size, mtime_ns=item.mtime_ns)
            session.add(photo)
            result.added += 1
            old_faces: list[Face] = []
        else:
            if photo.content_hash not in (None, digest):
                result.changed += 1
                # New content: faces of other models are stale (they will be re-made when scanned
                # with those models again); faces of this model are matched by position below.
                old_models: set[str] = set()
            else:
                old_models = _models_of(photo)
                if photo.status == PhotoStatus.unreadable:
                    result.changed += 1
            old_faces = [f for f in photo.faces if f.embedding_model == model]
            for face in list(photo.faces):
                if face.embedding_model != model and face.embedding_model not in old_models:
                    session.delete(face)
            photo.analysed_with = " ".join(sorted(old_models - {model}))
        photo.size, photo.mtime_ns, photo.content_hash = item.size, item.mtime_ns, digest
        photo.status, photo.error, photo.missing_since = PhotoStatus.ok, None, None
        photo.width, photo.height = analysis["width"], analysis["height"]
        photo.orientation, photo.camera, photo.date_taken = analysis["orientation"], analysis["camera"], info.date_taken
        photo.scanned_at = utcnow()
        if analysis["thumbnail"] is not None:
            photo.thumbnail = self._write_thumbnail(digest, analysis["thumbnail"])

        unmatched_old = list(old_faces)
        for detected, quality in analysis["faces"]:
            values = dict(x1=detected.box[0], y1=detected.box[1], x2=detected.box[2], y2=detected.box[3],
                          score=detected.score, landmarks=np.asarray(detected.landmarks).round(2).tolist(),
                          quality=quality.score, sharpness=quality.sharpness, frontalness=quality.frontalness,
                          yaw=quality.yaw, embedding=Face.pack(detected.embedding), embedding_model=model)
            best = max(unmatched_old, key=lambda f: _iou(f.box, detected.box), default=None)
            if best is not None and _iou(best.box, detected.box) >= SAME_FACE_IOU:
                unmatched_old.remove(best)
                for key, value in values.items():
                    setattr(best, key, value)
                # the face's look changed: a machine guess must be re-made, the user's word stays
                session.execute(Assignment.__table__.delete().where(
                    (Assignment.face_id == best.id) & (Assignment.origin == AssignmentOrigin.machine)))
            else:
                photo.faces.append(Face(**values))
                result.faces_added += 1
        for face in unmatched_old:
            session.execute(Reference.__table__.delete().where(Reference.face_id == face.id))
            session.delete(face)
        photo.analysed_with = " ".join(sorted(set(photo.analysed_with.split() if photo.analysed_with else [])
                                              | {model}))

    def _record_unreadable(self, item: _FoundFile, digest: str | None, reason: str, result: ScanResult) -> None:
        log.warning("unreadable: %s: %s", item.path, reason)
        result.unreadable.append((item.path, reason))
        with self.catalog.transaction() as session:
            photo = session.scalar(select(Photo).where(Photo.path == item.path))
            if photo is None:
                photo = Photo(path=item.path, size=item.size, mtime_ns=item.mtime_ns)
                session.add(photo)
            # faces of an earlier readable version are kept: the file may be mid-copy
            photo.size, photo.mtime_ns, photo.content_hash = item.size, item.mtime_ns, digest
            photo.status, photo.error, photo.scanned_at = PhotoStatus.unreadable, reason, utcnow()


def scan(catalog: Catalog, roots: Sequence[str | Path], analyzer: FaceAnalyzer | None = None,
         progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
         thumbnails: bool = True, cluster: bool = True) -> ScanResult:
    """Scan `roots` into `catalog` (see the module docstring); returns what was done."""
    return Scanner(catalog, analyzer, thumbnails=thumbnails, cluster=cluster).scan(roots, progress, cancel)
