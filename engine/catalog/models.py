"""The catalog's schema: SQLAlchemy 2.0 typed models.

Every change to these classes needs an Alembic migration in `engine/catalog/migrations/versions/`
(the catalog upgrades itself when opened; `tests/catalog` checks that the migrated schema matches
these models).
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone

import numpy as np
from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Enum, Float, ForeignKey, Index, Integer, LargeBinary,
                        MetaData, String, Text, UniqueConstraint, text)
from sqlalchemy import false as sa_false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names, so migrations can refer to them on every database.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class PhotoStatus(str, enum.Enum):
    ok = "ok"                  # read and analysed
    missing = "missing"        # was scanned, is no longer at its path
    unreadable = "unreadable"  # could not be decoded; `error` says why


class AssignmentOrigin(str, enum.Enum):
    machine = "machine"        # clustering put the face there; may move on a later run
    confirmed = "confirmed"    # the user said "this is that person": never moved by the machine
    rejected = "rejected"      # the user said "not this person": the face never goes back there


class ItemStatus(str, enum.Enum):
    pending = "pending"
    done = "done"
    skipped = "skipped"
    failed = "failed"


class JobStatus(str, enum.Enum):
    running = "running"
    done = "done"
    cancelled = "cancelled"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings with a CHECK on SQLite, a native enum on PostgreSQL would make adding a
    # value a migration of its own; strings + a CHECK constraint keep both simple.
    return Enum(cls, name=name, native_enum=False, create_constraint=True, length=16,
                values_callable=lambda c: [m.value for m in c])


class Photo(Base):
    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: absolute path, as the scanner found it (symlinks not resolved: the user's own view of the album)
    path: Mapped[str] = mapped_column(String(4096), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    #: modification time in nanoseconds since the epoch (the incremental scan compares size + mtime)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[PhotoStatus] = mapped_column(_enum(PhotoStatus, "photo_status"), default=PhotoStatus.ok)
    error: Mapped[str | None] = mapped_column(Text)
    date_taken: Mapped[datetime | None] = mapped_column(DateTime)
    orientation: Mapped[int | None] = mapped_column(Integer)
    camera: Mapped[str | None] = mapped_column(String(256))
    #: pixel size after EXIF orientation
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    thumbnail: Mapped[str | None] = mapped_column(String(4096))
    #: the embedding model the faces were analysed with ("" before analysis)
    analysed_with: Mapped[str | None] = mapped_column(String(128))
    #: when the album believes the photo was taken (engine.photo_dates): the year (a decade's
    #: first year), month and day as far as `taken_precision` (day | month | year | decade) says
    taken_year: Mapped[int | None] = mapped_column(Integer)
    taken_month: Mapped[int | None] = mapped_column(Integer)
    taken_day: Mapped[int | None] = mapped_column(Integer)
    taken_precision: Mapped[str | None] = mapped_column(String(16))
    #: where that date came from: exif (a camera's) | scan-exif (a scanner's: the scanning day, not
    #: trusted) | folder | filename | user (never replaced by a scan)
    taken_source: Mapped[str | None] = mapped_column(String(16))
    #: how sure the date is, 0..1 (0: not to be used)
    taken_confidence: Mapped[float | None] = mapped_column(Float)
    scanned_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    missing_since: Mapped[datetime | None] = mapped_column(DateTime)

    faces: Mapped[list[Face]] = relationship(back_populates="photo", cascade="all, delete-orphan",
                                             passive_deletes=True)


class Face(Base):
    __tablename__ = "faces"

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), index=True)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    #: [[x, y] × 5]: left eye, right eye, nose tip, left mouth corner, right mouth corner
    landmarks: Mapped[list] = mapped_column(JSON)
    #: 0..1, higher is a better reference (see engine.people.quality)
    quality: Mapped[float] = mapped_column(Float, default=0.0)
    sharpness: Mapped[float] = mapped_column(Float, default=0.0)
    frontalness: Mapped[float] = mapped_column(Float, default=0.0)
    #: signed yaw estimate from the landmarks (-1 left profile .. +1 right profile), for pose diversity
    yaw: Mapped[float] = mapped_column(Float, default=0.0)
    #: float32 little-endian bytes, L2-normalised
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    embedding_model: Mapped[str] = mapped_column(String(128), index=True)
    #: False until clustering has placed the face (or left it unknown): clustering after a scan
    #: considers these faces only, so its work follows what the scan added, not the catalog's size
    clustered: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false(), index=True)
    #: the age the face looks (years), from the face pack's age estimator `age_model` (None: no estimator)
    apparent_age: Mapped[float | None] = mapped_column(Float)
    age_model: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    photo: Mapped[Photo] = relationship(back_populates="faces")
    assignments: Mapped[list[Assignment]] = relationship(back_populates="face", cascade="all, delete-orphan",
                                                         passive_deletes=True)

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def vector(self) -> np.ndarray:
        return np.frombuffer(self.embedding, dtype="<f4")

    @staticmethod
    def pack(embedding: np.ndarray) -> bytes:
        return np.asarray(embedding, dtype="<f4").tobytes()


class Person(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(256))
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    #: people are per embedding model: faces of another model never join them
    embedding_model: Mapped[str] = mapped_column(String(128), index=True)
    #: the year the person was born, as the user gave it (references are chosen by age with it)
    birth_year: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    assignments: Mapped[list[Assignment]] = relationship(back_populates="person", cascade="all, delete-orphan",
                                                         passive_deletes=True)
    references: Mapped[list[Reference]] = relationship(back_populates="person", cascade="all, delete-orphan",
                                                       passive_deletes=True, order_by="Reference.rank")

    @property
    def label(self) -> str:
        return self.name or f"person {self.id}"


class Assignment(Base):
    """A face ↔ person link. Each face has at most one machine-or-confirmed row; any number of rejections."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("face_id", "person_id"),
                      Index("ix_assignments_person_id_origin", "person_id", "origin"),
                      # the database itself refuses a face in two people (two processes clustering)
                      Index("uq_assignments_face_id_positive", "face_id", unique=True,
                            sqlite_where=text("origin IN ('machine', 'confirmed')"),
                            postgresql_where=text("origin IN ('machine', 'confirmed')")))

    id: Mapped[int] = mapped_column(primary_key=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    origin: Mapped[AssignmentOrigin] = mapped_column(_enum(AssignmentOrigin, "assignment_origin"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    face: Mapped[Face] = relationship(back_populates="assignments")
    person: Mapped[Person] = relationship(back_populates="assignments")


class Reference(Base):
    """A reference face of a person: suggested by the machine (with its reason) or picked by the user."""

    __tablename__ = "person_references"
    __table_args__ = (UniqueConstraint("person_id", "face_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), index=True)
    rank: Mapped[int] = mapped_column(Integer, default=0)
    picked_by_user: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    #: the era a picked reference stands for ("child", "teen", "adult" or a year such as "1978"; None:
    #: any): the user curates each era's picks on their own (engine.people.references)
    era: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    person: Mapped[Person] = relationship(back_populates="references")
    face: Mapped[Face] = relationship()


class Restoration(Base):
    __tablename__ = "restorations"

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int | None] = mapped_column(ForeignKey("photos.id", ondelete="SET NULL"), index=True)
    output_path: Mapped[str] = mapped_column(String(4096))
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    model_versions: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    faces: Mapped[list[RestorationFace]] = relationship(back_populates="restoration", cascade="all, delete-orphan",
                                                        passive_deletes=True, order_by="RestorationFace.face_index")


class RestorationFace(Base):
    """What a restoration did with one face: whose it was (the album's answer, or the ad-hoc match), what
    was done and why. The similarity / verdict columns are filled by an identity check, when one runs."""

    __tablename__ = "restoration_faces"
    __table_args__ = (UniqueConstraint("restoration_id", "face_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    restoration_id: Mapped[int] = mapped_column(ForeignKey("restorations.id", ondelete="CASCADE"), index=True)
    #: the face's place in the restoration's plan (0-based)
    face_index: Mapped[int] = mapped_column(Integer)
    #: the catalog face restored (None for a face found only at restore time)
    face_id: Mapped[int | None] = mapped_column(ForeignKey("faces.id", ondelete="SET NULL"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), index=True)
    #: the person's label when restored (people may be renamed or merged later)
    person_name: Mapped[str | None] = mapped_column(String(256))
    #: restored (with the person's identity) | blind | skipped
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    seed: Mapped[int | None] = mapped_column(BigInteger)
    #: [x1, y1, x2, y2] in photo pixels
    box: Mapped[list] = mapped_column(JSON, default=list)
    similarity_restored: Mapped[float | None] = mapped_column(Float)
    similarity_unrestored: Mapped[float | None] = mapped_column(Float)
    verdict: Mapped[str | None] = mapped_column(String(32))
    check_model: Mapped[str | None] = mapped_column(String(128))
    #: which identity the face was restored with: "references", "fitted v2", "adapter v1" (engine.learn);
    #: None for blind and skipped faces (and restorations recorded before learning existed)
    identity_used: Mapped[str | None] = mapped_column(String(64))

    restoration: Mapped[Restoration] = relationship(back_populates="faces")


class IdentityTokens(Base):
    """A person's identity tokens (FaceMe's Mix output per reference), computed once per set of reference
    faces and model pack: `references_key` hashes the reference faces (ids, photo content, boxes) and the
    crop rule; `pack_fingerprint` names the pack's identity models."""

    __tablename__ = "identity_tokens"
    __table_args__ = (UniqueConstraint("person_id", "references_key", "pack_fingerprint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    references_key: Mapped[str] = mapped_column(String(64))
    pack_fingerprint: Mapped[str] = mapped_column(String(64))
    reference_face_ids: Mapped[list] = mapped_column(JSON, default=list)
    #: float32 little-endian, shape (`count`, `dim`)
    tokens: Mapped[bytes] = mapped_column(LargeBinary)
    count: Mapped[int] = mapped_column(Integer)
    dim: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class LearnedIdentity(Base):
    """A person learned from the album (engine.learn): a fitted identity (`tokens`) or a person adapter (a
    diffusers LoRA file, `adapter_file`, checked by `adapter_sha256`), with the held-out check's figures and
    whether it is used (`status` "accepted") or not ("rejected"). It is keyed by the pack (`pack_fingerprint`),
    the faces it was fitted and checked on (`faces_key`, `fit_face_ids`, `held_out_face_ids`) and the
    references it started from (`references_key`); when any of them changes it is stale (engine.learn.store)."""

    __tablename__ = "learned_identities"
    __table_args__ = (UniqueConstraint("person_id", "method", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    #: fitted | adapter
    method: Mapped[str] = mapped_column(String(16))
    #: 1, 2, … per person and method
    version: Mapped[int] = mapped_column(Integer)
    #: accepted (the held-out check kept it) | rejected
    status: Mapped[str] = mapped_column(String(16))
    pack_fingerprint: Mapped[str] = mapped_column(String(64))
    references_key: Mapped[str] = mapped_column(String(64))
    faces_key: Mapped[str] = mapped_column(String(64))
    fit_face_ids: Mapped[list] = mapped_column(JSON, default=list)
    held_out_face_ids: Mapped[list] = mapped_column(JSON, default=list)
    #: fitted: float32 little-endian, shape (`count`, `dim`)
    tokens: Mapped[bytes | None] = mapped_column(LargeBinary)
    count: Mapped[int | None] = mapped_column(Integer)
    dim: Mapped[int | None] = mapped_column(Integer)
    adapter_file: Mapped[str | None] = mapped_column(String(4096))
    adapter_sha256: Mapped[str | None] = mapped_column(String(64))
    #: the adapter's strength in restorations (0..1, the user's)
    strength: Mapped[float] = mapped_column(Float, default=1.0)
    #: how it was learned (steps, seed, resolution, …) and the fit's losses
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    #: the held-out check's figures (engine.learn.check.CheckReport.as_dict)
    figures: Mapped[dict] = mapped_column(JSON, default=dict)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class BatchJob(Base):
    __tablename__ = "batch_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    out_dir: Mapped[str] = mapped_column(String(4096))
    roots: Mapped[list] = mapped_column(JSON)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus, "job_status"), default=JobStatus.running)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    # the lease of the process running the job (engine/catalog/leases.py); all NULL when nobody runs it
    owner_pid: Mapped[int | None] = mapped_column(Integer)
    owner_host: Mapped[str | None] = mapped_column(String(255))
    owner_token: Mapped[str | None] = mapped_column(String(64))
    owner_heartbeat: Mapped[datetime | None] = mapped_column(DateTime)

    items: Mapped[list[BatchItem]] = relationship(back_populates="job", cascade="all, delete-orphan",
                                                  passive_deletes=True, order_by="BatchItem.id")


class BatchItem(Base):
    __tablename__ = "batch_items"
    __table_args__ = (UniqueConstraint("job_id", "photo_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("batch_jobs.id", ondelete="CASCADE"), index=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    #: the output path relative to the job's out_dir (mirrors the album's tree)
    relative_output: Mapped[str] = mapped_column(String(4096))
    status: Mapped[ItemStatus] = mapped_column(_enum(ItemStatus, "item_status"), default=ItemStatus.pending)
    reason: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: SHA-256 of the output as encoded, recorded before the file is written (engine.imageio.encode_image),
    #: so a resumed job takes an output that is already there as done only when verify_output matches it
    output_sha256: Mapped[str | None] = mapped_column(String(64))
    #: the output's size in bytes, recorded with its hash (a cheap check that it is still the file written)
    output_size: Mapped[int | None] = mapped_column(BigInteger)
    #: the per-face records of the restoration being written, recorded with the hash before the file
    #: appears: a run killed between the write and its commit leaves what the resumed run records
    output_faces: Mapped[list | None] = mapped_column(JSON)

    job: Mapped[BatchJob] = relationship(back_populates="items")
    photo: Mapped[Photo] = relationship()


class OutputClaim(Base):
    """One output file, claimed by the one batch item that may write it (engine.catalog.outputs). The
    key is the output's resolved path (case-folded where the file system ignores case), so one file
    spelled two ways (a link to the output folder) is one claim."""

    __tablename__ = "output_claims"

    path: Mapped[str] = mapped_column(String(4096), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("batch_items.id", ondelete="CASCADE"), index=True)
    claimed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class CatalogSetting(Base):
    """One fact about the whole catalog (engine.catalog.face_model: "face_model")."""

    __tablename__ = "catalog_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
