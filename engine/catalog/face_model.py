"""Which face model a catalog's faces come from: one per catalog at a time.

Every face carries the embedding model that found and embedded it ("dlib/resnet-128",
"insightface/antelopev2/glintr100"). A catalog holds the faces of one model: grouping compares
embeddings of one model only, and two models' faces of one photo would be two faces for one person.
So the catalog records its model (`catalog_settings`, key "face_model"), every scan uses it, and a
scan with another model is refused; moving an album to another model is the explicit re-analysis
(`faceme catalog reanalyse --model M`, engine.catalog.scanner.reanalyse_album), which carries the
user's decisions over and then records the new model.

A catalog of an older version has no record: its model is the one most of its faces come from. A new,
empty catalog takes the model of its first scan (an installed InsightFace pack, else dlib).

A re-analysis records the new model first and then moves the album one photo per transaction, so a
stopped one leaves photos still on the old model (their `analysed_with`): `unfinished_move` counts them
("12 of 31 photos still use the built-in face model"), for the Library, `faceme info` and `catalog
check`. Any later scan moves the photos it analyses the same way (engine.catalog.scanner), so a stop
never leaves two faces for one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from engine.catalog.models import CatalogSetting, Face, Photo, PhotoStatus
from engine.errors import UsageError

KEY = "face_model"


class FaceModelMismatchError(UsageError):
    """A scan would add faces of another model than the catalog's."""


def analyzer_name(embedding_model: str) -> str:
    """The face analyser that gives `embedding_model`'s faces: "dlib" or an InsightFace pack's name."""
    if embedding_model.startswith("insightface/"):
        return embedding_model.split("/")[1]
    return "dlib"


def recorded_model(session) -> str | None:
    """The catalog's face model (an embedding model name); for a catalog without a record, the one most
    of its faces come from; None for a catalog without faces."""
    row = session.get(CatalogSetting, KEY)
    if row is not None:
        return row.value
    return session.scalar(select(Face.embedding_model).group_by(Face.embedding_model)
                          .order_by(func.count(Face.id).desc()).limit(1))


def model_in_words(embedding_model: str) -> str:
    """"the built-in face model" (dlib, embedded in the app) or "the antelopev2 face model"."""
    name = analyzer_name(embedding_model)
    return "the built-in face model" if name == "dlib" else f"the {name} face model"


@dataclass(frozen=True)
class UnfinishedMove:
    """A re-analysis that stopped part-way: `behind` of the catalog's `photos` (readable ones, present on
    disk) are still analysed with `old_model`, not with the catalog's `model`."""

    model: str
    old_model: str
    behind: int
    photos: int

    def text(self) -> str:
        """"12 of 31 photos still use the built-in face model"."""
        verb = "uses" if self.behind == 1 else "use"
        return f"{self.behind} of {self.photos} photo{'s' if self.photos != 1 else ''} still {verb} " \
               f"{model_in_words(self.old_model)}"

    def command(self) -> str:
        """The CLI's way to finish it."""
        return f"faceme catalog reanalyse --model {analyzer_name(self.model)}"


def move_from_counts(model: str | None, per_analysis: Iterable[tuple[str | None, int]]) -> UnfinishedMove | None:
    """The unfinished move of a catalog whose model is `model`, from (photos.analysed_with, number of
    photos) of its readable photos; None when every photo uses `model` (or the catalog has none)."""
    if model is None:
        return None
    photos, behind, old = 0, 0, Counter()
    for analysed_with, count in per_analysis:
        photos += count
        models = (analysed_with or "").split()
        if models and model not in models:
            behind += count
            old.update({m: count for m in models})
    if not behind:
        return None
    return UnfinishedMove(model, old.most_common(1)[0][0], behind, photos)


def unfinished_move(session) -> UnfinishedMove | None:
    """How far a stopped re-analysis got (see the module doc); None when none is unfinished."""
    rows = session.execute(select(Photo.analysed_with, func.count(Photo.id)).where(Photo.status == PhotoStatus.ok)
                           .group_by(Photo.analysed_with)).all()
    return move_from_counts(recorded_model(session), rows)


def unfinished_move_in_file(url_or_path: str | Path) -> UnfinishedMove | None:
    """`unfinished_move` of a SQLite catalog read without opening it for use (no migration, nothing
    written: `faceme catalog check`, `faceme info`); None for another database, or a file that is not there
    or can't be read."""
    import sqlite3

    from engine.catalog.db import check_sqlite_file, normalise_url, read_only_connection, sqlite_file
    from engine.catalog.maintenance import face_model_of
    from engine.errors import CatalogError

    path = sqlite_file(normalise_url(url_or_path))
    if path is None or not path.is_file() or check_sqlite_file(path) != "ok":
        return None
    model, _others = face_model_of(path)
    try:
        connection = read_only_connection(path)
    except (CatalogError, sqlite3.Error):
        return None
    try:
        rows = connection.execute("SELECT analysed_with, count(*) FROM photos WHERE status = 'ok' "
                                  "GROUP BY analysed_with").fetchall()
    except sqlite3.Error:  # no schema yet
        return None
    finally:
        connection.close()
    return move_from_counts(model, rows)


def catalog_face_model(catalog) -> str | None:
    with catalog.session() as session:
        return recorded_model(session)


def mismatch_message(catalog_model: str, scan_model: str) -> str:
    new = analyzer_name(scan_model)
    return (f"this catalog's faces were found with {analyzer_name(catalog_model)} ({catalog_model}); a scan with "
            f"{new} would add a second face for each one. The catalog keeps one face model: scans use "
            f"{analyzer_name(catalog_model)}, and `faceme catalog reanalyse --model {new}` moves the whole album "
            "to the other model, keeping every name, confirmation, rejection and reference")


def use_model(catalog, model: str, switch: bool = False) -> None:
    """Make sure the catalog's faces may come from `model` before a scan stores any: records it for a
    catalog that has none; FaceModelMismatchError when the catalog has another, unless `switch` (a
    re-analysis moving the album to `model`, which records it)."""
    for _ in range(2):  # a second try reads what another process recorded at the same moment
        try:
            with catalog.transaction() as session:
                current = recorded_model(session)
                if current is not None and current != model and not switch:
                    raise FaceModelMismatchError(mismatch_message(current, model))
                row = session.get(CatalogSetting, KEY)
                if row is None:
                    session.add(CatalogSetting(key=KEY, value=model))
                elif row.value != model:
                    row.value = model
            return
        except IntegrityError:
            continue


def analyzer_for_catalog(catalog, models_dir: str | Path | None = None, choice: str = "auto"):
    """The face analyser a scan of this catalog uses: the catalog's own model; for a catalog without
    faces, `choice` ("auto": an installed InsightFace pack in `models_dir`, else dlib). A `choice` other
    than "auto" that differs from the catalog's model is refused (FaceModelMismatchError)."""
    from engine.faces.choice import make_face_analyzer, resolve_face_model

    current = catalog_face_model(catalog)
    if current is None:
        return make_face_analyzer(choice, Path(models_dir) if models_dir else None)
    name = analyzer_name(current)
    if choice not in ("auto", name):
        raise FaceModelMismatchError(mismatch_message(current, _embedding_model_of(resolve_face_model(choice))))
    return make_face_analyzer(name, Path(models_dir) if models_dir else None)


def _embedding_model_of(analyzer: str) -> str:
    return "dlib/resnet-128" if analyzer == "dlib" else f"insightface/{analyzer}"
