"""The People and References pages' actions, each one engine call in one catalog transaction.

Run in workers; every function takes the open catalog first. The user's word goes through
engine.people.corrections / engine.people.references, so the CLI and the app share one behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import UsageError
from engine.people.corrections import faces_by_id, person_by_id
from engine.people.listing import FaceRow, ReferenceRow


def rename(catalog, person_id: int, name: str) -> list[int]:
    """Rename a person; returns the ids of the other people with that name (a merge to offer)."""
    from engine.people import corrections

    with catalog.transaction() as session:
        person = corrections.rename(session, person_by_id(session, person_id), name)
        return [other.id for other in corrections.namesakes(session, person)]


def merge(catalog, into_id: int, other_ids: list[int]) -> None:
    from engine.people import corrections

    with catalog.transaction() as session:
        into = person_by_id(session, into_id)
        corrections.merge(session, into, [person_by_id(session, i) for i in other_ids if i != into_id])


def split(catalog, person_id: int, face_ids: list[int], name: str | None = None) -> int:
    from engine.people import corrections

    with catalog.transaction() as session:
        return corrections.split(session, person_by_id(session, person_id), faces_by_id(session, face_ids), name).id


def reject(catalog, person_id: int, face_ids: list[int]) -> None:
    from engine.people import corrections

    with catalog.transaction() as session:
        corrections.reject(session, person_by_id(session, person_id), faces_by_id(session, face_ids))


def confirm(catalog, person_id: int, face_ids: list[int]) -> None:
    from engine.people import corrections

    with catalog.transaction() as session:
        corrections.confirm(session, person_by_id(session, person_id), faces_by_id(session, face_ids))


def new_person_from(catalog, face_ids: list[int], name: str | None = None) -> int:
    """Unknown faces → a new person (confirmed)."""
    from engine.people import corrections

    with catalog.transaction() as session:
        faces = faces_by_id(session, face_ids)
        if not faces:
            raise UsageError("choose at least one face")
        person = corrections.new_person(session, faces[0].embedding_model, name)
        corrections.confirm(session, person, faces)
        return person.id


def hide(catalog, person_id: int, hidden: bool = True) -> None:
    from engine.people import corrections

    with catalog.transaction() as session:
        corrections.hide(session, person_by_id(session, person_id), hidden)


def references(catalog, person_id: int) -> tuple[list[ReferenceRow], list[ReferenceRow]]:
    """(the user's picks, the suggestions) of a person (suggestions are stored when they are in use)."""
    from engine.people.listing import reference_rows

    with catalog.transaction() as session:
        return reference_rows(session, person_by_id(session, person_id))


def set_references(catalog, person_id: int, face_ids: list[int]) -> None:
    from engine.people import references as refs

    with catalog.transaction() as session:
        refs.set_references(session, person_by_id(session, person_id), faces_by_id(session, face_ids))


def reference_file_faces(catalog, person_id: int, path: Path, progress=None, cancel=None) -> list[FaceRow]:
    """Any photo file as a reference, step 1: scanned into the catalog; its faces (left to right), from
    which the user picks the person's when there are several."""
    from engine.catalog.scanner import scan
    from engine.people import references as refs
    from engine.people.listing import face_row

    path = Path(path).resolve()
    scan(catalog, [path], progress=progress, cancel=cancel, cluster=False)
    with catalog.session() as session:
        faces = refs.reference_candidates(session, person_by_id(session, person_id), path)
        return [face_row(f, f.photo) for f in faces]


def likeliest_face(catalog, person_id: int, face_ids: list[int]) -> int | None:
    """Of one photo's faces, the one most like the person: the highest cosine similarity of its embedding
    to the mean of the person's own faces (confirmed or grouped; not those the user said are someone
    else). None when the person has no faces to compare with. Only a first choice: the user confirms."""
    import numpy as np

    from engine.restore.matching import normalise

    with catalog.session() as session:
        person = person_by_id(session, person_id)
        own = [a.face.vector for a in person.assignments
               if a.origin.value != "rejected" and a.face_id not in face_ids]
        if not own:
            return None
        centre = normalise(np.mean(own, axis=0))
        faces = faces_by_id(session, face_ids)
        return max(faces, key=lambda face: float(normalise(face.vector) @ centre)).id if faces else None


def add_reference_file(catalog, person_id: int, path: Path, current_picks: list[int],
                       progress=None, cancel=None, face_id: int | None = None) -> int:
    """Any photo file as a reference: scanned into the catalog, its face (the only one, or `face_id`:
    the one the user picked) confirmed as the person and added to the picks. A photo of several people
    without a pick is refused (UsageError naming the file and the count). Returns the face id."""
    from engine.catalog.scanner import scan
    from engine.people import corrections
    from engine.people import references as refs

    path = Path(path).resolve()
    scan(catalog, [path], progress=progress, cancel=cancel, cluster=False)
    with catalog.transaction() as session:
        person = person_by_id(session, person_id)
        face = refs.face_for_reference(session, person, path, face_id)
        corrections.confirm(session, person, [face])
        picks = faces_by_id(session, current_picks) + [face]
        refs.set_references(session, person, picks)
        return face.id


def scan_albums(catalog, roots: list[str], progress=None, cancel=None, workers: int = 0,
                models_dir: str | None = None):
    """Scan the album folders into the catalog (new and changed photos only; people regrouped):
    `workers` processes (0: one per core), faces with the catalog's own face model (a new catalog: an
    installed InsightFace pack in `models_dir`, else dlib). Installing a pack never re-analyses an
    album by itself: that is `faceme catalog reanalyse` (engine.catalog.face_model)."""
    from engine.catalog.face_model import analyzer_for_catalog
    from engine.catalog.scanner import scan

    analyzer = analyzer_for_catalog(catalog, models_dir)
    return scan(catalog, roots, analyzer=analyzer, progress=progress, cancel=cancel, workers=workers or None)


def reanalyse_album(catalog, pack: str, models_dir: str, progress=None, cancel=None, workers: int = 0):
    """The user's explicit move (Library → Re-analyse) of every photo of the catalog to the InsightFace
    pack `pack`: each face's person, name, confirmation, rejection and reference carried over to the
    face found at the same place, then `pack` is the catalog's model. A stop keeps what was done; called
    again, it goes on where it stopped (engine.catalog.scanner.reanalyse_album)."""
    from engine.catalog import scanner
    from engine.faces.choice import make_face_analyzer

    analyzer = make_face_analyzer(pack, Path(models_dir))
    return scanner.reanalyse_album(catalog, scanner.album_roots(catalog), analyzer, progress=progress, cancel=cancel,
                                   workers=workers or None)


# --- learning a person (issue 21) and their timeline (issue 23) ---------------------------------------

@dataclass(frozen=True)
class LearnOutcome:
    """What a learning did, in the words `faceme people learn` prints (figures and decision)."""

    person_id: int
    lines: list[str]
    #: "fitted", "adapter" or None: what restorations use from now on (None: the references alone)
    chosen: str | None


def check_learnable(catalog, person_id: int, without: tuple[int, ...] = ()) -> int:
    """Before the model is loaded (minutes on a first use): the person has references to start from and
    enough usable faces, else UsageError / NotEnoughFacesError, the very checks learning makes first.
    Returns the number of faces the fit will use."""
    from engine.learn.faces import choose_faces
    from engine.restore.album import person_identity

    with catalog.session() as session:
        person = person_by_id(session, person_id)
        identity = person_identity(session, person)
        if identity is None:
            raise UsageError(f"{person.label} has no reference photos to start from (choose some in References)")
        return len(choose_faces(session, person, [f.face_id for f in identity.faces], without).fit)


def learn(catalog, service, person_id: int, settings=None, progress=None, cancel=None) -> LearnOutcome:
    """Learn the person with the loaded RestorationService `service` (engine.learn.learning.learn_person,
    as `faceme people learn`). A cancel stops at the next step and keeps the checkpoint: learning again
    resumes it (CancelledError)."""
    from engine.learn.learning import LearnSettings, learn_person

    result = learn_person(catalog, person_id, service.pipeline, service.fingerprint, service.identity_check,
                          settings or LearnSettings(), progress=progress, cancel=cancel)
    return LearnOutcome(person_id, result.lines(), result.chosen)


def learned_in_use(catalog, models_dir: str | Path | None) -> dict[int, str]:
    """Person id → the learned identity restorations use for them ("fitted v2"): accepted and not stale
    for the pack in `models_dir` (no pack there: staleness by faces and references only)."""
    from engine.learn.store import labels_in_use

    with catalog.session() as session:
        return labels_in_use(session, lambda: _pack_fingerprint(models_dir))


def _pack_fingerprint(models_dir: str | Path | None) -> str | None:
    from engine.models.layout import check_part
    from engine.restore.identity import IDENTITY_PARTS, pack_fingerprint

    if not models_dir or not all(check_part(Path(models_dir), part).ok for part in IDENTITY_PARTS):
        return None
    return pack_fingerprint(models_dir)


@dataclass(frozen=True)
class TimelineYear:
    """One row of a person's timeline: a year (or "age 30", or "undated") and its faces."""

    when: str
    age: str
    era: str
    face_ids: tuple[int, ...]
    references: int
    photos: tuple[str, ...]


@dataclass(frozen=True)
class TimelineEraRow:
    name: str
    faces: int
    references: int
    lacks_reference: bool
    #: photos offered as references for an era that lacks one
    suggested: tuple[str, ...] = ()


@dataclass(frozen=True)
class TimelineView:
    """A person's timeline for the People page (engine.people.timeline, as `faceme people show --timeline`)."""

    person_id: int
    name: str
    #: the year the user set (None: unknown)
    born: int | None
    #: the year estimated from dated faces and apparent ages when the user set none
    estimated_born: int | None
    years: list[TimelineYear]
    eras: list[TimelineEraRow]
    lines: list[str]


def timeline(catalog, person_id: int) -> TimelineView:
    from engine.people.timeline import person_timeline

    with catalog.session() as session:
        person = person_by_id(session, person_id)
        line = person_timeline(session, person)
        rows: dict[str, list] = {}
        for face in line.faces:
            when = (f"{face.year:.0f}" if face.year is not None
                    else f"age {face.age:.0f}" if face.age is not None else "undated")
            rows.setdefault(when, []).append(face)
        years = []
        for when, faces in rows.items():
            ages = sorted({f"{f.age:.0f}" for f in faces if f.age is not None and f.year is not None})
            years.append(TimelineYear(when, ", ".join(ages), faces[0].era or "undated", tuple(f.face_id for f in faces),
                                      sum(f.reference for f in faces), tuple(Path(f.photo).name for f in faces)))
        eras = [TimelineEraRow(e.name, e.faces, e.references, e.lacks_reference,
                               tuple(c.face.photo.path for c in e.suggested) if e.lacks_reference else ())
                for e in line.eras]
        estimated = round(line.birth_year) if line.birth_estimated and line.birth_year is not None else None
        return TimelineView(person.id, person.label, person.birth_year, estimated, years, eras, line.lines())


def set_birth_year(catalog, person_id: int, year: int | None) -> None:
    """The person's birth year as `faceme people set --born` sets it (None: unknown)."""
    from engine.people.ages import set_birth_year as set_year

    with catalog.transaction() as session:
        set_year(person_by_id(session, person_id), year)
