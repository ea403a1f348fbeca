"""A person's timeline: their faces by year (or age), the references marked, and the eras that lack one.

Eras are ages (child, teen, adult: engine.people.ages.ERAS) when the person's birth year is known or
estimated, else decades. An era lacks a reference when none of the person's picks is in it (with picks),
or none of its faces is large enough to be one (without picks: the plan then chooses among the faces of
the face's age); each era offers suggestions (`faceme people refs PERSON --set IMG --era ERA`). Never
touches files: the pages and `faceme people show --timeline` show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.catalog.models import Face, Person, Reference
from engine.people.ages import era_of, era_range, person_times
from engine.people.references import (MIN_REFERENCE_SIZE, ReferenceChoice, choose_references, load_photos,
                                      person_faces, suggest)

#: suggestions offered per era that lacks a reference
SUGGESTED_PER_ERA = 2


@dataclass(frozen=True)
class TimelineFace:
    face_id: int
    photo: str
    year: float | None
    age: float | None
    how: str
    era: str | None
    reference: bool
    contradiction: str | None = None


@dataclass(frozen=True)
class TimelineEra:
    name: str  # "child", "teen", "adult", "1970s" or "undated"
    faces: int
    references: int
    suggested: tuple[ReferenceChoice, ...] = ()

    @property
    def lacks_reference(self) -> bool:
        return self.faces > 0 and self.references == 0 and self.name != "undated"


@dataclass
class PersonTimeline:
    person_id: int
    name: str
    birth_year: float | None
    birth_estimated: bool
    faces: list[TimelineFace] = field(default_factory=list)
    eras: list[TimelineEra] = field(default_factory=list)
    #: the user picked references (eras count picks), else eras count faces large enough to be one
    picked: bool = False

    def lines(self) -> list[str]:
        """The timeline in words (`faceme people show --timeline`)."""
        born = "unknown" if self.birth_year is None else (
            f"about {self.birth_year:.0f} (estimated from dated faces and apparent ages)" if self.birth_estimated
            else f"{self.birth_year:.0f}")
        out = [f"timeline of {self.name} (born {born}):"]
        for face in self.faces:
            when = face.year is not None and f"{face.year:.0f}" or (f"age {face.age:.0f}" if face.age is not None
                                                                     else "undated")
            age = f", age {face.age:.0f}" if face.age is not None and face.year is not None else ""
            mark = "  [reference]" if face.reference else ""
            how = f" ({face.how})" if face.how else ""
            out.append(f"  {when:>8}{age}  #{face.face_id} {face.photo}{how}{mark}")
            if face.contradiction:
                out.append(f"           ! {face.contradiction}")
        for era in self.eras:
            status = (f"{era.references} {'picked' if self.picked else 'usable as'} reference(s)" if era.references
                      else "NO REFERENCE")
            out.append(f"  era {era.name}: {era.faces} face(s), {status}")
            if era.lacks_reference and era.suggested:
                offers = ", ".join(f"#{c.face.id} {c.face.photo.path}" for c in era.suggested)
                out.append(f"    suggested: {offers} (faceme people refs {self.person_id} --set IMG --era {era.name})")
        return out


def _era(name_by_age: bool, year: float | None, age: float | None) -> str:
    if name_by_age and age is not None:
        return era_of(age) or "undated"
    if year is not None:
        return f"{int(year) // 10 * 10}s"
    return "undated"


def person_timeline(session: Session, person: Person) -> PersonTimeline:
    members = person_faces(session, person)
    faces = [c[0] for c in members]
    load_photos(session, faces)
    times = person_times(person, faces)
    by_age = times.birth_year is not None
    references = session.scalars(select(Reference).where(Reference.person_id == person.id)).all()
    picked = {r.face_id: r.era for r in references if r.picked_by_user}
    # the references as a plan without dates takes them: the picks, else the stored suggestions, else fresh ones
    marked = set(picked) or {r.face_id for r in references} or {c.face.id for c in suggest(session, person)}
    timeline = PersonTimeline(person.id, person.label, times.birth_year, times.birth_estimated, picked=bool(picked))
    eras: dict[str, list[tuple[Face, bool, str]]] = {}
    for candidate in members:
        face = candidate[0]
        when = times.of(face)
        era = _era(by_age, when.year, when.age)
        eras.setdefault(era, []).append(candidate)
        timeline.faces.append(TimelineFace(face.id, face.photo.path, when.year, when.age, when.how, era,
                                           face.id in marked, when.contradiction))
    timeline.faces.sort(key=lambda f: (f.year is None and f.age is None, f.year if f.year is not None else 0.0,
                                       f.age if f.age is not None else 0.0, f.face_id))

    def order(name: str):
        span = era_range(name)
        return (name == "undated", span[0] if span else 0, name)

    for name in sorted(eras, key=order):
        in_era = eras[name]
        large = [c for c in in_era if max(c[0].x2 - c[0].x1, c[0].y2 - c[0].y1) >= MIN_REFERENCE_SIZE]
        count = sum(1 for c in in_era if c[0].id in picked) if picked else len(large)
        suggested = tuple(choose_references(large, SUGGESTED_PER_ERA)) if count == 0 else ()
        timeline.eras.append(TimelineEra(name, len(in_era), count, suggested))
    return timeline
