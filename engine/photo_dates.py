"""When a photo was taken, as far as the album can tell, where that came from and how sure it is.

The rules, first that applies:
- the user's date (`faceme photos set-date`): always kept, never replaced by a scan or a re-analysis;
- a year, decade or date in the file's name ("Christmas 1992.jpg", "1978-12-25 tree.jpg") or, if the
  name has none, in a folder's name above it, the innermost first ("1970s/Ann", "1978/summer");
  camera counters ("IMG_1985.JPG", "DSC_2001.jpg", "scan0001.jpg") are not years;
- EXIF DateTimeOriginal of a camera photo — unless a name says an earlier year: then the photo is a
  camera's picture of an old print and the name's year is the one that counts;
- a scanner's EXIF date (the make, model or software of a scanner, or no DateTimeOriginal but only the
  digitised / modified date) is the scanning day, not when the picture was taken: it is stored, with
  source "scan-exif" and confidence 0, and never used for ages.

A date has a precision (day, month, year, decade: `year` is then the decade's first year) and a
confidence 0..1: user 1.0, camera EXIF 0.9, a full date in a name 0.8, a year in a name 0.7, a decade
0.5, a scanner's 0.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

log = logging.getLogger(__name__)

USER, EXIF, SCAN_EXIF, FOLDER, FILENAME = "user", "exif", "scan-exif", "folder", "filename"
SOURCES = (USER, EXIF, SCAN_EXIF, FOLDER, FILENAME)
PRECISIONS = ("day", "month", "year", "decade")
#: the earliest year a name is read as (earlier 4-digit numbers are counters, not years)
EARLIEST_YEAR = 1850
#: a camera's EXIF year this much later than a name's year: the camera photographed an old print
REPHOTOGRAPHED_AFTER_YEARS = 2

CONFIDENCE = {"user": 1.0, "exif": 0.9, "day": 0.8, "month": 0.75, "year": 0.7, "decade": 0.5, "scan-exif": 0.0}

#: words in EXIF Make / Model / Software that name a scanner or scanning software
SCANNER_WORDS = ("scan", "perfection", "coolscan", "opticfilm", "plustek", "vuescan", "silverfast", "fastfoto",
                 "photolife", "photomyne", "doxie", "flatbed", "reflecta", "pacific image", "film scanner")
#: names that start like a camera's or a scanner's file counter: their digits are not a year
_COUNTER = re.compile(r"^(img|dsc[nf]?|_dsc|pict|p|_mg|mvc|sam|cimg|dcp|imag|scan|pxl|mvimg|dji|gopr|hpim|kif|sdc)"
                      r"[_-]?\d", re.IGNORECASE)
_FULL_DATE = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)([-_.]?)(0[1-9]|1[0-2])\2(0[1-9]|[12]\d|3[01])(?!\d)")
_YEAR_MONTH = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)[-_.](0[1-9]|1[0-2])(?![\d])")
_DECADE = re.compile(r"(?<![\d])(1[89]\d0|20[0-9]0)'?s(?![a-z])", re.IGNORECASE)
_SHORT_DECADE = re.compile(r"(?<![\w])'?([2-9]0)'?s(?![a-z\d])", re.IGNORECASE)
_YEAR = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")


@dataclass(frozen=True)
class PhotoDate:
    """When a photo was taken: `year` (a decade's first year), `month` and `day` as far as `precision`
    says; `source` (one of SOURCES); `confidence` 0..1 (0: not to be used)."""

    year: int
    precision: str
    source: str
    confidence: float
    month: int | None = None
    day: int | None = None

    @property
    def usable(self) -> bool:
        """Whether ages may be worked out from it (a scanner's date may not)."""
        return self.confidence > 0.0

    @property
    def middle(self) -> float:
        """The year it most likely means (a decade's middle)."""
        return self.year + 5.0 if self.precision == "decade" else float(self.year)

    @property
    def spread(self) -> float:
        """How far either side of `middle` the photo may have been taken (years)."""
        return 5.0 if self.precision == "decade" else 0.0

    def describe(self) -> str:
        """"1978", "the 1970s", "1978-12", "1978-12-25"."""
        if self.precision == "decade":
            return f"the {self.year}s"
        if self.precision == "day" and self.month and self.day:
            return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"
        if self.precision == "month" and self.month:
            return f"{self.year:04d}-{self.month:02d}"
        return str(self.year)

    def where_from(self) -> str:
        return {USER: "set by you", EXIF: "camera EXIF", SCAN_EXIF: "scanner EXIF (the scanning day, not used)",
                FOLDER: "folder name", FILENAME: "file name"}.get(self.source, self.source)


@dataclass(frozen=True)
class ExifDates:
    """The EXIF facts a photo's date is judged by."""

    original: datetime | None = None   # DateTimeOriginal
    digitized: datetime | None = None  # DateTimeDigitized
    modified: datetime | None = None   # IFD0 DateTime
    make: str | None = None
    model: str | None = None
    software: str | None = None

    @property
    def from_scanner(self) -> bool:
        """A scanner made the file: its make, model or software says so, or it has a digitised or
        modified date but no DateTimeOriginal (what scanning software writes)."""
        words = " ".join(v for v in (self.make, self.model, self.software) if v).lower()
        if any(word in words for word in SCANNER_WORDS):
            return True
        return self.original is None and (self.digitized is not None or self.modified is not None)


def read_exif_dates(path: str | Path) -> ExifDates:
    """The EXIF dates, make, model and software of `path` (header only; damaged or absent EXIF: none)."""
    import exifread

    # the one EXIF date parser (offsets, sub-seconds), and the filter of exifread's "no EXIF" noise
    from engine.imageio import _parse_exif_datetime, _quiet_exifread_missing_exif

    _quiet_exifread_missing_exif()

    def text(tags, key: str) -> str | None:
        value = tags.get(key)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str):
            return None
        return value.replace("\x00", "").strip() or None

    try:
        with open(path, "rb") as fp:
            tags = exifread.process_file(fp, details=False, extract_thumbnail=False, builtin_types=True)
    except Exception as exc:  # exifread raises many types on damaged blocks; an unreadable file is the scan's
        log.debug("%s: EXIF unreadable: %s", path, exc)
        return ExifDates()

    def when(key: str) -> datetime | None:
        moment = _parse_exif_datetime(text(tags, key))
        return moment.replace(tzinfo=None) if moment is not None else None

    return ExifDates(original=when("EXIF DateTimeOriginal"), digitized=when("EXIF DateTimeDigitized"),
                     modified=when("Image DateTime"), make=text(tags, "Image Make"),
                     model=text(tags, "Image Model"), software=text(tags, "Image Software"))


def _this_year() -> int:
    return date.today().year


def date_in_name(name: str, source: str) -> PhotoDate | None:
    """The date a file or folder name gives ("1978", "1980s", "'70s", "Christmas 1992", "1978-12-25",
    "19781225"), or None. A file name like a camera's counter ("IMG_1985") gives none."""
    stem = os.path.splitext(name)[0] if source == FILENAME else name
    if _COUNTER.match(stem):
        return None
    latest = _this_year()
    match = _FULL_DATE.search(stem)
    if match and EARLIEST_YEAR <= int(match.group(1)) <= latest:
        year, month, day = int(match.group(1)), int(match.group(3)), int(match.group(4))
        try:
            date(year, month, day)
        except ValueError:
            pass
        else:
            return PhotoDate(year, "day", source, CONFIDENCE["day"], month, day)
    match = _YEAR_MONTH.search(stem)
    if match and EARLIEST_YEAR <= int(match.group(1)) <= latest:
        return PhotoDate(int(match.group(1)), "month", source, CONFIDENCE["month"], int(match.group(2)))
    match = _DECADE.search(stem)
    if match and EARLIEST_YEAR <= int(match.group(1)) <= latest:
        return PhotoDate(int(match.group(1)), "decade", source, CONFIDENCE["decade"])
    years = [int(y) for y in _YEAR.findall(stem) if EARLIEST_YEAR <= int(y) <= latest]
    if len(years) == 1:  # "1978 to 1982" is a span, not a date
        return PhotoDate(years[0], "year", source, CONFIDENCE["year"])
    match = _SHORT_DECADE.search(stem)
    if match:
        return PhotoDate(1900 + int(match.group(1)), "decade", source, CONFIDENCE["decade"])
    return None


def date_from_names(path: str | Path) -> PhotoDate | None:
    """The date the file's name gives, else the innermost folder's above it that gives one."""
    path = Path(path)
    found = date_in_name(path.name, FILENAME)
    if found is not None:
        return found
    for folder in path.parents:
        if not folder.name:
            break
        found = date_in_name(folder.name, FOLDER)
        if found is not None:
            return found
    return None


def _from_moment(moment: datetime, source: str) -> PhotoDate:
    return PhotoDate(moment.year, "day", source, CONFIDENCE[source], moment.month, moment.day)


def judge(path: str | Path, exif: ExifDates) -> PhotoDate | None:
    """The date of the photo at `path` by the module's rules (the user's date aside)."""
    named = date_from_names(path)
    if exif.from_scanner:
        scanned = exif.original or exif.digitized or exif.modified
        if named is not None:
            return named
        return _from_moment(scanned, SCAN_EXIF) if scanned is not None else None
    if exif.original is not None:
        if named is not None and named.middle + named.spread < exif.original.year - REPHOTOGRAPHED_AFTER_YEARS:
            return named  # a camera's picture of an older print: the print's year counts
        return _from_moment(exif.original, EXIF)
    return named


def date_of_file(path: str | Path) -> PhotoDate | None:
    """The date of the photo file at `path` (reads its EXIF header)."""
    return judge(path, read_exif_dates(path))


def date_from_catalog(path: str, date_taken: datetime | None, camera: str | None) -> PhotoDate | None:
    """The date of a photo catalogued before dates were kept, from what the catalog recorded of it (its
    EXIF date — DateTimeOriginal, else the digitised date — and camera), without reading the file."""
    if date_taken is not None:
        exif = ExifDates(original=date_taken.replace(tzinfo=None), make=camera)
    else:
        exif = ExifDates(make=camera)
    return judge(path, exif)


def set_on_photo(photo, found: PhotoDate | None) -> None:
    """Store `found` on a `Photo` row (None clears it) — unless the user set the photo's date."""
    if photo.taken_source == USER:
        return
    store(photo, found)


def store(photo, found: PhotoDate | None) -> None:
    """Store `found` on a `Photo` row as it is (None clears it)."""
    if found is None:
        photo.taken_year = photo.taken_month = photo.taken_day = None
        photo.taken_precision = photo.taken_source = photo.taken_confidence = None
        return
    photo.taken_year, photo.taken_month, photo.taken_day = found.year, found.month, found.day
    photo.taken_precision, photo.taken_source, photo.taken_confidence = (found.precision, found.source,
                                                                          found.confidence)


def of_photo(photo) -> PhotoDate | None:
    """The stored date of a `Photo` row (None: none known)."""
    if photo.taken_year is None or photo.taken_precision is None:
        return None
    return PhotoDate(int(photo.taken_year), photo.taken_precision, photo.taken_source or "",
                     float(photo.taken_confidence or 0.0), photo.taken_month, photo.taken_day)


def after_move(photo, new_path: str) -> None:
    """A photo moved (or copied) to `new_path`: a date that came from its old names is read from the new
    ones; a user's or camera's date stays (a camera date gives way to an earlier name, as in `judge`)."""
    current = of_photo(photo)
    if current is not None and current.source == USER:
        return
    named = date_from_names(new_path)
    if current is not None and current.source == EXIF:
        if named is not None and named.middle + named.spread < current.year - REPHOTOGRAPHED_AFTER_YEARS:
            store(photo, named)
        return
    if named is not None:
        store(photo, named)
    elif current is not None and current.source in (FOLDER, FILENAME):
        store(photo, None)


def user_date(year: int | None = None, decade: str | None = None, day: str | None = None) -> PhotoDate:
    """The user's date from one of: a year (1978), a decade ("1970s", "1970") or a day ("1978-12-25").
    ValueError with a plain message when it can't be read."""
    given = [v for v in (year, decade, day) if v is not None]
    if len(given) != 1:
        raise ValueError("give one of a year, a decade or a date")
    latest = _this_year()
    if day is not None:
        try:
            moment = date.fromisoformat(str(day))
        except ValueError:
            raise ValueError(f"{day!r} is not a date (YYYY-MM-DD)") from None
        if not EARLIEST_YEAR <= moment.year <= latest:
            raise ValueError(f"{day!r}: the year must be between {EARLIEST_YEAR} and {latest}")
        return PhotoDate(moment.year, "day", USER, CONFIDENCE[USER], moment.month, moment.day)
    if decade is not None:
        match = re.fullmatch(r"\s*(\d{3})0'?s?\s*", str(decade))
        if not match:
            raise ValueError(f"{decade!r} is not a decade (like 1970s)")
        first = int(match.group(1)) * 10
        if not EARLIEST_YEAR - 10 < first <= latest:
            raise ValueError(f"{decade!r}: the decade must be between the {EARLIEST_YEAR}s and the "
                             f"{latest // 10 * 10}s")
        return PhotoDate(first, "decade", USER, CONFIDENCE[USER])
    if not EARLIEST_YEAR <= int(year) <= latest:
        raise ValueError(f"{year}: the year must be between {EARLIEST_YEAR} and {latest}")
    return PhotoDate(int(year), "year", USER, CONFIDENCE[USER])


def set_user_dates(session, paths, found: PhotoDate | None) -> list:
    """Set the user's date `found` on the catalogued photos at `paths` (files, or folders: every photo
    under them); None returns each to the date its EXIF and names give (the file is read again where it
    is there). Returns the `Photo` rows changed; UsageError naming a path that holds no catalogued photo."""
    changed = photos_at(session, paths)
    for photo in changed:
        if found is not None:
            store(photo, found)
        else:
            store(photo, date_of_file(photo.path) if os.path.isfile(photo.path)
                  else date_from_catalog(photo.path, photo.date_taken, photo.camera))
    session.flush()
    return changed


def photos_at(session, paths) -> list:
    """The catalogued `Photo` rows at `paths` (files, or folders: every photo under them), by path;
    UsageError naming a path that holds none."""
    from sqlalchemy import select

    from engine.catalog.models import Photo
    from engine.errors import UsageError

    found: dict[int, object] = {}
    for given in paths:
        path = os.path.abspath(os.fspath(given))
        prefix = path.rstrip(os.sep) + os.sep
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = session.scalars(select(Photo).where((Photo.path == path)
                                                   | Photo.path.like(escaped + "%", escape="\\"))).all()
        if not rows:
            raise UsageError("no catalogued photo here (scan it first: faceme scan FOLDER)", path)
        for photo in rows:
            found[photo.id] = photo
    return sorted(found.values(), key=lambda p: p.path)
