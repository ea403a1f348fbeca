"""Read-only views of the catalog that the pages display, read in workers.

The rows are the engine's (engine.catalog.views, engine.people.listing); this module only opens a
session for them. Writes (rename, merge, split, reject, references, batch jobs) go through
`people_actions` and `batch_flow`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from engine.catalog.face_model import UnfinishedMove
from engine.catalog.views import PhotoRow, photo_rows
from engine.people.listing import FaceRow, PersonCard, ReferenceRow, people_cards

__all__ = ["FaceModelView", "FaceRow", "LibraryView", "PersonCard", "PhotoRow", "ReferenceRow", "face_model_view",
           "library_view", "list_people", "list_photos", "outside_albums"]

#: seconds of one core per photo that a re-analysis with an InsightFace pack costs, for the Library's
#: estimate only: docs/BENCHMARKS.md measured 0.41-0.44 CPU-s per 12 MP portrait with antelopev2's
#: recogniser and a small detector; the pack's real detector and family photos of several faces (the
#: recogniser runs once per face) cost more, so the estimate rounds up
REANALYSIS_SECONDS_PER_PHOTO = {"antelopev2": 0.8, "buffalo_l": 0.6}


def list_photos(catalog, roots: list[str]) -> list[PhotoRow]:
    """Photos under the album folders (all photos when `roots` is empty), by path."""
    with catalog.session() as session:
        return photo_rows(session, roots)


def list_people(catalog, include_hidden: bool = False, faces_per_person: int | None = None) -> list[PersonCard]:
    """People (largest first) and, last, the unknown bucket of faces in no person."""
    with catalog.session() as session:
        return people_cards(session, include_hidden, faces_per_person)



@dataclass(frozen=True)
class FaceModelView:
    """Which face model the catalog's faces come from, and whether a better one is installed."""

    #: the catalog's embedding model ("dlib/resnet-128", "insightface/antelopev2/glintr100"); None: no faces yet
    model: str | None
    #: the InsightFace pack installed in the models folder (engine.faces.choice), if any
    installed_pack: str | None
    #: photos in the catalog: what a re-analysis reads again
    photos: int
    #: a re-analysis that stopped part-way (from the app or `faceme catalog reanalyse`): how many photos
    #: still use the old model (engine.catalog.face_model.unfinished_move); None when there is none
    unfinished: UnfinishedMove | None = None

    @property
    def analyser(self) -> str | None:
        """"dlib", "antelopev2", "buffalo_l": the name people know the model by."""
        from engine.catalog.face_model import analyzer_name

        return analyzer_name(self.model) if self.model else None

    @property
    def unfinished_pack(self) -> str | None:
        """The face model a stopped re-analysis moves the album to, when the app can go on with it: an
        installed InsightFace pack (or dlib, always there)."""
        from engine.catalog.face_model import analyzer_name

        if self.unfinished is None:
            return None
        target = analyzer_name(self.unfinished.model)
        return target if target in ("dlib", self.installed_pack) else None

    @property
    def better_pack(self) -> str | None:
        """The installed pack to offer a re-analysis with: one preferred over the catalog's model (the
        packs in engine.faces.choice's order of preference, dlib last). None for an empty catalog (its
        first scan takes the installed pack anyway)."""
        from engine.faces.choice import INSIGHTFACE_PACKS

        if self.model is None or self.installed_pack is None or self.analyser == self.installed_pack:
            return None
        rank = {name: n for n, name in enumerate(INSIGHTFACE_PACKS)}
        return self.installed_pack if rank[self.installed_pack] < rank.get(self.analyser, len(rank)) else None

    def minutes(self, pack: str, workers: int) -> int:
        """An estimate of a re-analysis with `pack` on `workers` processes (0: one per core), in whole
        minutes (at least 1): the photo count times a measured per-photo cost, not a measurement."""
        workers = workers or os.cpu_count() or 1
        photos = self.unfinished.behind if self.unfinished is not None else self.photos  # what is left to move
        seconds = photos * REANALYSIS_SECONDS_PER_PHOTO.get(pack, 1.0) / workers
        return max(1, math.ceil(seconds / 60))


@dataclass(frozen=True)
class LibraryView:
    """What the Library page shows: albums scanned outside the app, the chosen album's photos, the face model."""

    outside_albums: list[str]
    photos: list[PhotoRow]
    face_model: FaceModelView


def outside_albums(catalog, albums: list[str], removed: list[str]) -> list[str]:
    """The top folders of the catalog's photos that are in none of the app's albums nor the removed ones:
    albums scanned with `faceme scan` (or the folder of a reference photo added from disk)."""
    from engine.catalog.scanner import album_roots, is_inside

    known = [os.path.abspath(a) for a in [*albums, *removed]]
    return [root for root in album_roots(catalog) if not any(is_inside(root, a) for a in known)]


def face_model_view(catalog, models_dir: str | Path | None) -> FaceModelView:
    from engine.catalog.face_model import recorded_model, unfinished_move
    from engine.faces.choice import installed_insightface_pack

    pack = installed_insightface_pack(Path(models_dir)) if models_dir else None
    with catalog.session() as session:
        photos = len(photo_rows(session))
        return FaceModelView(recorded_model(session), pack, photos, unfinished_move(session))


def library_view(catalog, albums: list[str], removed: list[str], selected: str, models_dir: str | None
                 ) -> LibraryView:
    """The Library's albums scanned elsewhere, the photos of `selected` (an album folder; "": every album,
    the app's and those scanned elsewhere), and the catalog's face model."""
    outside = outside_albums(catalog, albums, removed)
    roots = [selected] if selected else [*albums, *outside]
    photos = list_photos(catalog, roots) if roots else []
    return LibraryView(outside, photos, face_model_view(catalog, models_dir))


def photo_pixels(path: Path):
    """A photo's upright RGB pixels (for the viewer)."""
    from engine.imageio import read_image

    return read_image(path).pixels
