"""Where learned identities are kept, when they are stale, and how a restoration picks one up.

A learning is a `learned_identities` row per method (engine.catalog.models.LearnedIdentity): a fitted
identity's tokens in the row itself, beside the identity-token cache (`identity_tokens`); a person
adapter's weights in one safetensors file under the cache folder (`adapter_folder`), written atomically
before the row that points to it, and checked by its SHA-256 before it is loaded. The row keeps the
held-out check's figures and whether the check kept it ("accepted") or not ("rejected").

A learning is keyed by the pack's fingerprint, the faces it was fitted and checked on, and the references
it started from. It is stale (used no more; `faceme people show` says why and offers learning again)
when the pack changed, when one of those faces is no longer the person's (split off, rejected, moved
by a merge into someone else, gone from the album), or when the person's references changed (a merge
brings the other person's references). A person merged into another takes their learnings with them
(the rows go with the person).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

METHODS = ("fitted", "adapter")


def adapter_folder(cache_dir: Path | None = None) -> Path:
    """The folder of person adapter files: `learned/` under the cache folder ($FACEME_CACHE)."""
    from engine.settings import default_cache_dir

    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / "learned"


def checkpoint_folder(cache_dir: Path | None = None) -> Path:
    from engine.settings import default_cache_dir

    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / "learning"


@dataclass(frozen=True)
class Learned:
    """One stored learning as restorations and `people show` see it."""

    id: int
    person_id: int
    method: str
    version: int
    status: str
    strength: float
    figures: dict
    settings: dict
    message: str
    tokens: np.ndarray | None = None
    adapter_file: Path | None = None
    adapter_sha256: str | None = None
    #: why it is used no more (None: it is current)
    stale: str | None = None

    @property
    def label(self) -> str:
        """What a restored face's record says: "fitted v2", "adapter v1"."""
        return f"{self.method} v{self.version}"


def _learned(row, stale: str | None) -> Learned:
    tokens = None
    if row.tokens is not None:
        tokens = np.frombuffer(row.tokens, dtype="<f4").reshape(row.count, row.dim).copy()
    return Learned(row.id, row.person_id, row.method, row.version, row.status, float(row.strength),
                   dict(row.figures or {}), dict(row.settings or {}), row.message or "", tokens,
                   Path(row.adapter_file) if row.adapter_file else None, row.adapter_sha256, stale)


def current_references_key(session: Session, person) -> str | None:
    from engine.restore.album import person_identity
    from engine.restore.identity import references_key

    identity = person_identity(session, person)
    return references_key(identity.faces) if identity is not None else None


def staleness(session: Session, row, fingerprint: str | None, references_key: str | None) -> str | None:
    """Why the learning `row` is stale, or None. `fingerprint`: the pack now (None: not compared);
    `references_key`: the person's references now."""
    from engine.catalog.models import Assignment, AssignmentOrigin, Face, Photo

    if fingerprint is not None and row.pack_fingerprint != fingerprint:
        return "the model pack changed since it was learned"
    faces = [int(i) for i in (row.fit_face_ids or [])] + [int(i) for i in (row.held_out_face_ids or [])]
    still = set(session.scalars(
        select(Assignment.face_id).join(Face, Face.id == Assignment.face_id).join(Photo, Photo.id == Face.photo_id)
        .where(Assignment.person_id == row.person_id, Assignment.face_id.in_(faces),
               Assignment.origin.in_((AssignmentOrigin.machine, AssignmentOrigin.confirmed)))))
    gone = [i for i in faces if i not in still]
    if gone:
        return (f"{len(gone)} of the faces it was learned from {'is' if len(gone) == 1 else 'are'} no longer this "
                f"person's (face #{gone[0]}{', …' if len(gone) > 1 else ''})")
    if references_key != row.references_key:
        return "the person's references changed since it was learned"
    return None


def learnings(session: Session, person, fingerprint: str | None = None) -> list[Learned]:
    """Every learning of `person`, newest first, each with its staleness."""
    from engine.catalog.models import LearnedIdentity

    rows = session.scalars(select(LearnedIdentity).where(LearnedIdentity.person_id == person.id)
                           .order_by(LearnedIdentity.created_at.desc(), LearnedIdentity.id.desc())).all()
    key = current_references_key(session, person) if rows else None
    return [_learned(row, staleness(session, row, fingerprint, key)) for row in rows]


def in_use(session: Session, person, fingerprint: str) -> Learned | None:
    """The learning a restoration of `person` uses with this pack: the newest accepted one that is not
    stale (None: the references alone)."""
    for learned in learnings(session, person, fingerprint):
        if learned.status == "accepted" and learned.stale is None:
            return learned
    return None


def labels_in_use(session: Session, fingerprint: Callable[[], str | None]) -> dict[int, str]:
    """Person id → the label of the learning restorations use for them ("fitted v2"), for every person
    with one accepted and current. `fingerprint()` gives the installed pack's (None: no pack; current by
    faces and references only); it hashes files, so it is called only when some learning was accepted."""
    from engine.catalog.models import LearnedIdentity, Person

    found: dict[int, str] = {}
    accepted = session.scalars(select(LearnedIdentity.person_id).where(LearnedIdentity.status == "accepted")
                               .distinct()).all()
    pack = fingerprint() if accepted else None
    for person_id in accepted:
        person = session.get(Person, person_id)
        if person is None:
            continue
        if pack is not None:
            learned = in_use(session, person, pack)
        else:
            learned = next((x for x in learnings(session, person) if x.status == "accepted" and x.stale is None),
                           None)
        if learned is not None:
            found[person_id] = learned.label
    return found


def next_version(session: Session, person_id: int, method: str) -> int:
    from engine.catalog.models import LearnedIdentity

    latest = session.scalar(select(func.max(LearnedIdentity.version)).where(
        LearnedIdentity.person_id == person_id, LearnedIdentity.method == method))
    return int(latest or 0) + 1


def set_strength(session: Session, person, strength: float) -> int:
    """The strength of the person's adapters in restorations (0..1); the number of learnings changed."""
    from engine.catalog.models import LearnedIdentity
    from engine.errors import UsageError

    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"the adapter strength must be between 0 and 1 (got {strength})")
    rows = session.scalars(select(LearnedIdentity).where(LearnedIdentity.person_id == person.id,
                                                         LearnedIdentity.method == "adapter")).all()
    for row in rows:
        row.strength = float(strength)
    return len(rows)


# ---- restorations ------------------------------------------------------------------------------------

def learned_token_source(tokens: Callable, catalog, fingerprint: str, unet) -> Callable:
    """A restoration's token source (engine.restore.photo.TokenSource) that uses each album person's
    learning in use (`in_use`): a fitted identity's tokens in place of the references', or the references'
    tokens with the person's adapter switched on for their faces. Returns engine.restore.photo.IdentityUse
    values; a learning that cannot be used (an adapter file gone or changed) falls back to the
    references with a warning, never stops a restoration."""
    from engine.catalog.models import Person
    from engine.restore.photo import IdentityUse

    def source(identity):
        if catalog is None or identity.person_id is None:
            return IdentityUse(tokens(identity))
        with catalog.session() as session:
            person = session.get(Person, identity.person_id)
            learned = in_use(session, person, fingerprint) if person is not None else None
        if learned is None:
            return IdentityUse(tokens(identity))
        if learned.method == "fitted":  # the references' tokens are not needed: not encoded
            return IdentityUse(learned.tokens, learned.label)
        from engine.errors import FaceMeError
        from engine.learn.adapter import adapter_use

        try:
            use = adapter_use(unet, learned.adapter_file, learned.adapter_sha256, learned.strength)
        except FaceMeError as exc:
            log.warning("%s's person adapter cannot be used (%s); restored with the references", identity.name, exc)
            return IdentityUse(tokens(identity))
        return IdentityUse(tokens(identity), learned.label, use)

    return source
