"""Identity tokens per person, computed once and kept with the catalog.

A person's tokens depend on their reference faces and on the model pack's identity models (CLIP image
encoder, ArcFace, Mix) and the code that prepares references. `references_key` names the first,
`pack_fingerprint` the second; the tokens of an album person are stored in the catalog
(`identity_tokens`) under both, so every photo of a batch, a later batch and the GUI reuse them, and
they are computed again only when the references or the pack change. Reference crops are cut in memory
from the stored face boxes (`REFERENCE_MARGIN`), one photo read per reference.

People given ad hoc (files) are remembered in memory only, by path, size and modification time.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from engine.restore.plan import REFERENCE_MARGIN, CatalogReference, Identity, crop_around_face

log = logging.getLogger(__name__)

#: the parts whose weights make identity tokens
IDENTITY_PARTS = ("photomaker", "faceme-mix", "antelopev2")
#: the code that turns references into tokens (its changes change the tokens too)
_RECIPE_MODULES = ("engine/faceme/references.py", "engine/faceme/id_encoder.py", "engine/faceme/mix.py")

#: encode(reference images) -> tokens (N, D), e.g. FaceMePipeline.encode_identity
Encoder = Callable[[list], object]


def references_key(faces: Sequence[CatalogReference], margin: float = REFERENCE_MARGIN) -> str:
    """A name for one set of reference faces and the crop rule (changes when any face or photo does)."""
    digest = hashlib.sha256(f"margin={margin}".encode())
    for ref in faces:
        digest.update(f"|{ref.face_id}:{ref.content_hash}:{','.join(f'{v:.1f}' for v in ref.box)}".encode())
    return digest.hexdigest()


def pack_fingerprint(models_dir: str | Path) -> str:
    """A name for the pack's identity models and the reference code: installed records' file hashes when
    the parts have them, else file sizes and modification times."""
    from engine.models.integrity import read_record
    from engine.models.layout import part_dir

    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for module in _RECIPE_MODULES:
        source = root / module
        digest.update(source.read_bytes() if source.is_file() else module.encode())
    for part in IDENTITY_PARTS:
        folder = part_dir(Path(models_dir), part)
        digest.update(f"#{part}".encode())
        record = read_record(folder) if folder.is_dir() else None
        if record is not None and record.files:
            for rel, entry in sorted(record.files.items()):
                digest.update(f"{rel}={entry.sha256}".encode())
            continue
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if path.is_file():
                stat = path.stat()
                digest.update(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def reference_crops(faces: Sequence[CatalogReference]) -> list[np.ndarray]:
    """Each reference face cut from its photo in memory (each photo read once)."""
    from engine.imageio import read_image

    pixels: dict[Path, np.ndarray] = {}
    crops = []
    for ref in faces:
        if ref.photo_path not in pixels:
            pixels[ref.photo_path] = read_image(ref.photo_path).pixels
        crops.append(crop_around_face(pixels[ref.photo_path], ref.box))
    return crops


def _file_key(image) -> tuple | None:
    if isinstance(image, np.ndarray):
        return ("array", hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest(), image.shape)
    from engine.restore.matching import file_key

    return file_key(image)


def reference_images(identity: Identity) -> list:
    """What an identity's references are read from: crops of its album faces (cut in memory), else the
    images given for it."""
    return reference_crops(identity.faces) if identity.faces else list(identity.images)


def identity_cache_key(identity: Identity) -> tuple | None:
    """What an identity's references are, for caches in memory (None: not cacheable, e.g. a missing file)."""
    if identity.faces and identity.person_id is not None:
        return ("person", identity.person_id, references_key(identity.faces))
    keys = tuple(_file_key(i) for i in identity.images)
    return None if any(k is None for k in keys) else ("given",) + keys


class CheckReferences:
    """Each identity's references embedded by the identity check's recogniser, once per process (album
    crops are cut from their photos only the first time), like the tokens but in memory only: the
    check's recogniser is cheap next to FaceMe's identity models. `embedded` counts the identities
    embedded by this object."""

    def __init__(self, check):
        self.check = check
        self._memory: dict[tuple, object] = {}
        self._lock = threading.Lock()
        self.embedded = 0

    def __call__(self, identity: Identity):
        key = identity_cache_key(identity)
        with self._lock:
            if key is not None and key in self._memory:
                return self._memory[key]
        images = reference_images(identity)
        embedded = self.check.references(identity.name, images)
        with self._lock:
            self.embedded += 1
            if key is not None:
                self._memory[key] = embedded
        return embedded


class IdentityTokens:
    """The tokens of each identity for one pack: from memory, from the catalog, or encoded (and stored)."""

    def __init__(self, fingerprint: str, catalog=None):
        self.fingerprint = fingerprint
        self.catalog = catalog
        self._memory: dict[tuple, np.ndarray] = {}
        self._lock = threading.Lock()

    def tokens(self, identity: Identity, encode: Encoder) -> np.ndarray:
        """(N, D) float32 tokens of `identity`."""
        key = identity_cache_key(identity)
        with self._lock:
            if key is not None and key in self._memory:
                return self._memory[key]
        stored = self._load(identity)
        if stored is None:
            images = reference_images(identity)
            stored = _as_array(encode(images))
            log.info("identity tokens of %s computed (%d references)", identity.name, len(images))
            self._store(identity, stored)
        with self._lock:
            if key is not None:
                self._memory[key] = stored
        return stored

    def _load(self, identity: Identity) -> np.ndarray | None:
        from engine.catalog.models import IdentityTokens as Row

        if self.catalog is None or not identity.faces or identity.person_id is None:
            return None
        with self.catalog.session() as session:
            row = session.scalar(select(Row).where(Row.person_id == identity.person_id,
                                                   Row.references_key == references_key(identity.faces),
                                                   Row.pack_fingerprint == self.fingerprint))
            if row is None:
                return None
            return np.frombuffer(row.tokens, dtype="<f4").reshape(row.count, row.dim).copy()

    def _store(self, identity: Identity, tokens: np.ndarray) -> None:
        from engine.catalog.models import IdentityTokens as Row
        from engine.catalog.models import Person

        if self.catalog is None or not identity.faces or identity.person_id is None:
            return
        try:
            with self.catalog.transaction() as session:
                if session.get(Person, identity.person_id) is None:
                    return  # merged or removed meanwhile
                # tokens of this person's earlier references (same pack) will not be asked for again
                session.execute(delete(Row).where(Row.person_id == identity.person_id,
                                                  Row.pack_fingerprint == self.fingerprint,
                                                  Row.references_key != references_key(identity.faces)))
                session.add(Row(person_id=identity.person_id, references_key=references_key(identity.faces),
                                pack_fingerprint=self.fingerprint,
                                reference_face_ids=[f.face_id for f in identity.faces],
                                tokens=np.asarray(tokens, "<f4").tobytes(), count=int(tokens.shape[0]),
                                dim=int(tokens.shape[1])))
        except IntegrityError:
            log.debug("identity tokens of person %s stored by another process meanwhile", identity.person_id)


def _as_array(tokens) -> np.ndarray:
    if hasattr(tokens, "detach"):
        tokens = tokens.detach().float().cpu().numpy()
    array = np.asarray(tokens, dtype=np.float32)
    return array.reshape(array.shape[0], -1)
