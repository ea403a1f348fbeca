"""Read-only views of the catalog that the pages display, read in workers.

The rows are the engine's (engine.catalog.views, engine.people.listing); this module only opens a
session for them. Writes (rename, merge, split, reject, references, batch jobs) go through
`people_actions` and `batch_flow`.
"""

from __future__ import annotations

from pathlib import Path

from engine.catalog.views import PhotoRow, photo_rows
from engine.people.listing import FaceRow, PersonCard, ReferenceRow, people_cards

__all__ = ["FaceRow", "PersonCard", "PhotoRow", "ReferenceRow", "list_people", "list_photos"]


def list_photos(catalog, roots: list[str]) -> list[PhotoRow]:
    """Photos under the album folders (all photos when `roots` is empty), by path."""
    with catalog.session() as session:
        return photo_rows(session, roots)


def list_people(catalog, include_hidden: bool = False, faces_per_person: int | None = None) -> list[PersonCard]:
    """People (largest first) and, last, the unknown bucket of faces in no person."""
    with catalog.session() as session:
        return people_cards(session, include_hidden, faces_per_person)



def photo_pixels(path: Path):
    """A photo's upright RGB pixels (for the viewer)."""
    from engine.imageio import read_image

    return read_image(path).pixels
