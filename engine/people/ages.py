"""When each face of a person was taken and how old the person was in it.

A face's time comes from its photo's date (engine.photo_dates; a scanner's date is never used) and,
where the photo has none, from the age the face looks (the face pack's age estimator) and the person's
birth year. The birth year is the user's (`faceme people set Ann --born 1972`); without one it is
estimated from the faces that have both a date and an apparent age (their median year − age). Two
faces are compared by year when both have one, else by age when both have one; otherwise they can't
be compared. A face whose date and look disagree by more than CONTRADICTION_YEARS is flagged (the date
is probably a scanning day, or the folder is wrong).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from engine import photo_dates
from engine.catalog.models import Face, Person

#: a reference further than this from the face's time is "not of that age" (the plan says so)
WITHIN_YEARS = 10.0
#: a date and a look further apart than this contradict each other
CONTRADICTION_YEARS = 15.0
#: eras by age, for curating references and the timeline: (name, first age, first age after)
ERAS = (("child", 0, 13), ("teen", 13, 20), ("adult", 20, 1000))


@dataclass(frozen=True)
class FaceTime:
    """When a face was taken (`year`, may be a fraction: a decade's middle) and how old the person was
    (`age`), each None where unknown; `how` says where that came from ("1978, folder name", "looks
    34"); `contradiction` a sentence when the date and the look disagree."""

    face_id: int
    year: float | None = None
    age: float | None = None
    how: str = ""
    contradiction: str | None = None

    @property
    def known(self) -> bool:
        return self.year is not None or self.age is not None

    def label(self) -> str:
        """"1978", "age 6" — for keys and messages."""
        if self.year is not None:
            return f"{self.year:.0f}"
        return f"age {self.age:.0f}" if self.age is not None else "unknown"

    def distance(self, other: FaceTime) -> float | None:
        """Years between the two faces (None: they can't be compared)."""
        if self.year is not None and other.year is not None:
            return abs(self.year - other.year)
        if self.age is not None and other.age is not None:
            return abs(self.age - other.age)
        return None


def era_of(age: float | None) -> str | None:
    if age is None:
        return None
    for name, first, after in ERAS:
        if first <= age < after:
            return name
    return ERAS[-1][0]


def era_range(name: str) -> tuple[int, int] | None:
    """(first age, first age after) of an era name; None for others (a year era)."""
    for era, first, after in ERAS:
        if era == name:
            return first, after
    return None


def _face_date(face: Face) -> photo_dates.PhotoDate | None:
    found = photo_dates.of_photo(face.photo)
    return found if found is not None and found.usable else None


def estimated_birth_year(faces: Iterable[Face]) -> float | None:
    """The median of (date − apparent age) over faces that have both (None: no such face)."""
    guesses = [date.middle - face.apparent_age for face in faces
               if face.apparent_age is not None and (date := _face_date(face)) is not None]
    return float(statistics.median(guesses)) if guesses else None


@dataclass
class PersonTimes:
    """A person's birth year (given or estimated) and a FaceTime per face asked about."""

    birth_year: float | None
    birth_estimated: bool
    times: dict[int, FaceTime]

    def of(self, face: Face) -> FaceTime:
        if face.id not in self.times:
            self.times[face.id] = face_time(face, self.birth_year)
        return self.times[face.id]


def face_time(face: Face, birth_year: float | None) -> FaceTime:
    date = _face_date(face)
    looks = face.apparent_age
    if date is not None:
        how = f"{date.describe()}, {date.where_from()}"
        age = date.middle - birth_year if birth_year is not None else None
        contradiction = None
        if age is not None and looks is not None and abs(age - looks) > CONTRADICTION_YEARS + date.spread:
            contradiction = (f"dated {date.describe()} ({date.where_from()}), when the person was about {age:.0f}, "
                             f"but the face looks {looks:.0f}")
        return FaceTime(face.id, date.middle, age, how, contradiction)
    if looks is not None:
        year = birth_year + looks if birth_year is not None else None
        return FaceTime(face.id, year, looks, f"looks {looks:.0f}")
    return FaceTime(face.id)


def person_times(person: Person, faces: Iterable[Face]) -> PersonTimes:
    """The times of `faces` (the person's) with the person's birth year, given or estimated from them."""
    faces = list(faces)
    if person.birth_year is not None:
        times = PersonTimes(float(person.birth_year), False, {})
    else:
        birth = estimated_birth_year(faces)
        times = PersonTimes(birth, birth is not None, {})
    for face in faces:
        times.of(face)
    return times


def set_birth_year(person: Person, year: int | None) -> None:
    """The person's birth year as the user gives it (None: unknown). UsageError for a year that can't be."""
    from datetime import date

    from engine.errors import UsageError

    if year is not None and not photo_dates.EARLIEST_YEAR - 100 <= int(year) <= date.today().year:
        raise UsageError(f"{year} is not a birth year (between {photo_dates.EARLIEST_YEAR - 100} and "
                         f"{date.today().year})")
    person.birth_year = None if year is None else int(year)
