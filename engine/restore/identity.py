"""Identity tokens per person, computed once and kept with the catalog.

A person's tokens depend on their reference faces and on the model pack's identity models (CLIP image
encoder, ArcFace, Mix) and the code that prepares references. `references_key` names the first,
`pack_fingerprint` the second; the tokens of an album person are stored in the catalog
(`identity_tokens`) under both, so every photo of a batch, a later batch and the GUI reuse them, and
they are computed again only when the references or the pack change. Reference crops are cut in memory
from the stored face boxes (`REFERENCE_MARGIN`), one photo read per reference.

People given ad hoc (files) are remembered in memory only, by path, size and modification time.

The identity check's embeddings of an album person's references are stored in the same table
(`identity_tokens`: person, references_key, a float32 blob of count × dim), under the fingerprint
`check:<first 58 hex digits of a sha256>` that names the check's recogniser (its embedding model, its model files and the code
that embeds references, `check_fingerprint`): another process (a later batch, the app) reuses them
instead of reading and embedding the references again. Token rows and check rows never meet: their
fingerprints differ, and each kind replaces only its own rows.

Each reference is read once per restoration: album crops are kept for the last few identities
(`ReferenceImages`) so the tokens and the check share them, and a reference file the caller has
already read (an `engine.imageio.LoadedImage`) is used as it is.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from engine.errors import NoFaceError
from engine.imageio import LoadedImage
from engine.restore.plan import REFERENCE_MARGIN, CatalogReference, Identity, crop_around_face

log = logging.getLogger(__name__)

#: the parts whose weights make identity tokens
IDENTITY_PARTS = ("photomaker", "faceme-mix", "antelopev2")
#: the code that turns references into tokens (its changes change the tokens too)
_RECIPE_MODULES = ("engine/faceme/references.py", "engine/faceme/id_encoder.py", "engine/faceme/mix.py")

#: reference sets whose tokens are kept per person and pack (one per age the album restores them at)
KEPT_SETS_PER_PERSON = 16

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

    return file_key(image.path if isinstance(image, LoadedImage) else image)


def reference_images(identity: Identity) -> list:
    """What an identity's references are read from: crops of its album faces (cut in memory), else the
    images given for it (files, files already read, arrays)."""
    return reference_crops(identity.faces) if identity.faces else list(identity.images)


def read_references(people: Sequence) -> list:
    """`people` (PersonReferences) with each reference file read once (`LoadedImage`): matching, the
    tokens and the identity check then share its pixels. ImageReadError names a file that can't be read."""
    from dataclasses import replace

    from engine.imageio import read_image

    return [replace(person, images=[read_image(i) if isinstance(i, (str, Path)) else i for i in person.images])
            for person in people]


class ReferenceImages:
    """`reference_images`, with the album crops of the last `keep` identities kept: a restoration's
    token encoder and identity check ask for the same person one after the other, and each photo of
    a reference is then read once. Given images are returned as they are (files the caller has read
    are `LoadedImage`s; the caller holds them)."""

    def __init__(self, keep: int = 4):
        self.keep = keep
        self._crops: OrderedDict[tuple, list] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, identity: Identity) -> list:
        key = identity_cache_key(identity) if identity.faces else None
        if key is None:
            return reference_images(identity)
        with self._lock:
            if key in self._crops:
                self._crops.move_to_end(key)
                return self._crops[key]
        crops = reference_crops(identity.faces)
        with self._lock:
            self._crops[key] = crops
            while len(self._crops) > self.keep:
                self._crops.popitem(last=False)
        return crops


def encode_references(encode: Encoder, images: Sequence) -> object:
    """`encode(images)`, files already read handed over as their pixels (the encoder reads paths
    itself); a reference in which the encoder finds no face is still named by its file."""
    inputs = [image.pixels if isinstance(image, LoadedImage) else image for image in images]
    try:
        return encode(inputs)
    except NoFaceError as exc:
        # the encoder names an array reference "reference #N" (engine.faceme.references.prepare_reference)
        for i, image in enumerate(images):
            if isinstance(image, LoadedImage) and str(exc.path) == f"reference #{i + 1}":
                raise NoFaceError(exc.message, image.path) from None
        raise


def check_fingerprint(check) -> str:
    """`check:` and a name for what makes the identity check's reference embeddings: its embedding
    model, its recogniser's model files (size and modification time) and the code that embeds
    references; the `pack_fingerprint` (64 characters, as the column allows) under which those
    embeddings are stored in `identity_tokens`."""
    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256(f"model={check.model}".encode())
    for module in ("engine/restore/matching.py", "engine/restore/identity_check.py"):
        source = root / module
        digest.update(source.read_bytes() if source.is_file() else module.encode())
    for path in _recognizer_files(check.recognizer):
        try:
            stat = path.stat()
        except OSError:
            continue
        digest.update(f"|{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return "check:" + digest.hexdigest()[:58]  # 64 characters in all: the column's width


def _recognizer_files(recognizer) -> list[Path]:
    """The model files a recogniser detects and embeds with (InsightFace: its SCRFD and ArcFace files;
    dlib, in this process or a child: the embedded models' folder)."""
    files = [getattr(recognizer, name, None) for name in ("_detector_file", "_recognizer_file")]
    files = [Path(f) for f in files if f is not None]
    if files:
        return files
    try:
        from engine.faces.dlib_backend import find_dlib_models_dir

        return sorted(find_dlib_models_dir().glob("*.dat"))
    except Exception:  # no dlib models: the model name alone names the recogniser
        return []


def identity_cache_key(identity: Identity) -> tuple | None:
    """What an identity's references are, for caches in memory (None: not cacheable, e.g. a missing file)."""
    if identity.faces and identity.person_id is not None:
        return ("person", identity.person_id, references_key(identity.faces))
    keys = tuple(_file_key(i) for i in identity.images)
    return None if any(k is None for k in keys) else ("given",) + keys


class CheckReferences:
    """Each identity's references embedded by the identity check's recogniser: from memory, from the
    catalog (an album person's, stored under `check_fingerprint`), or embedded (and stored). `embedded`
    counts the identities this object embedded; `images` reads the references (shared with the tokens'
    store by the service)."""

    def __init__(self, check, images: Callable[[Identity], list] | None = None):
        self.check = check
        self.images = images if images is not None else reference_images
        self._memory: dict[tuple, object] = {}
        self._lock = threading.Lock()
        self._fingerprint: str | None = None
        self.embedded = 0

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = check_fingerprint(self.check)
        return self._fingerprint

    def for_catalog(self, catalog) -> Callable[[Identity], object]:
        """identity -> its check references, stored in and read from `catalog` (None: memory only)."""
        return lambda identity: self(identity, catalog)

    def __call__(self, identity: Identity, catalog=None):
        from engine.restore.matching import PersonEmbeddings

        key = identity_cache_key(identity)
        with self._lock:
            if key is not None and key in self._memory:
                return self._memory[key]
        store = StoredArrays(self.fingerprint, catalog)
        stored = store.load(identity)
        if stored is not None:
            # as check.references names array references (the album's are crops)
            embedded = PersonEmbeddings(identity.name, self.check.model, stored,
                                        tuple(f"{identity.name} reference #{i + 1}" for i in range(len(stored))))
        else:
            embedded = self.check.references(identity.name, self.images(identity))
            store.save(identity, embedded.embeddings)
            with self._lock:
                self.embedded += 1
        with self._lock:
            if key is not None:
                self._memory[key] = embedded
        return embedded


class StoredArrays:
    """One kind of per-person float32 array in the catalog's `identity_tokens` table, told apart by
    `fingerprint`: FaceMe's identity tokens (`pack_fingerprint`), the check's reference embeddings
    (`check_fingerprint`). Only album people (references from catalog faces) are stored."""

    def __init__(self, fingerprint: str, catalog=None):
        self.fingerprint = fingerprint
        self.catalog = catalog

    def _storable(self, identity: Identity) -> bool:
        return self.catalog is not None and bool(identity.faces) and identity.person_id is not None

    def load(self, identity: Identity) -> np.ndarray | None:
        from engine.catalog.models import IdentityTokens as Row

        if not self._storable(identity):
            return None
        with self.catalog.session() as session:
            row = session.scalar(select(Row).where(Row.person_id == identity.person_id,
                                                   Row.references_key == references_key(identity.faces),
                                                   Row.pack_fingerprint == self.fingerprint))
            if row is None:
                return None
            return np.frombuffer(row.tokens, dtype="<f4").reshape(row.count, row.dim).copy()

    def save(self, identity: Identity, array: np.ndarray) -> None:
        from engine.catalog.models import IdentityTokens as Row
        from engine.catalog.models import Person

        if not self._storable(identity):
            return
        array = np.asarray(array, "<f4").reshape(len(array), -1)
        try:
            with self.catalog.transaction() as session:
                if session.get(Person, identity.person_id) is None:
                    return  # merged or removed meanwhile
                # this person's arrays of earlier references (same fingerprint) will not be asked for again;
                # a person restored by age ("person:12@1978", engine.restore.album) has a set per age: the
                # newest KEPT_SETS_PER_PERSON of those stay
                kept = KEPT_SETS_PER_PERSON - 1 if "@" in identity.key else 0
                older = session.scalars(select(Row.id).where(Row.person_id == identity.person_id,
                                                             Row.pack_fingerprint == self.fingerprint,
                                                             Row.references_key != references_key(identity.faces))
                                        .order_by(Row.id.desc()).offset(kept)).all()
                if older:
                    session.execute(delete(Row).where(Row.id.in_(older)))
                session.add(Row(person_id=identity.person_id, references_key=references_key(identity.faces),
                                pack_fingerprint=self.fingerprint,
                                reference_face_ids=[f.face_id for f in identity.faces],
                                tokens=array.tobytes(), count=int(array.shape[0]), dim=int(array.shape[1])))
        except IntegrityError:
            log.debug("%s of person %s stored by another process meanwhile", self.fingerprint[:12],
                      identity.person_id)


class IdentityTokens:
    """The tokens of each identity for one pack: from memory, from the catalog, or encoded (and stored).
    `images` reads the references (shared with the check by the service)."""

    def __init__(self, fingerprint: str, catalog=None, images: Callable[[Identity], list] | None = None):
        self.fingerprint = fingerprint
        self.catalog = catalog
        self.images = images if images is not None else reference_images
        self._stored = StoredArrays(fingerprint, catalog)
        self._memory: dict[tuple, np.ndarray] = {}
        self._lock = threading.Lock()

    def tokens(self, identity: Identity, encode: Encoder) -> np.ndarray:
        """(N, D) float32 tokens of `identity`."""
        key = identity_cache_key(identity)
        with self._lock:
            if key is not None and key in self._memory:
                return self._memory[key]
        stored = self._stored.load(identity)
        if stored is None:
            images = self.images(identity)
            stored = _as_array(encode_references(encode, images))
            log.info("identity tokens of %s computed (%d references)", identity.name, len(images))
            self._stored.save(identity, stored)
        with self._lock:
            if key is not None:
                self._memory[key] = stored
        return stored


def _as_array(tokens) -> np.ndarray:
    if hasattr(tokens, "detach"):
        tokens = tokens.detach().float().cpu().numpy()
    array = np.asarray(tokens, dtype=np.float32)
    return array.reshape(array.shape[0], -1)
