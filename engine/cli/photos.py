"""`faceme photos`: when the album's photos were taken.

    faceme photos dates PATH... [--json]
    faceme photos set-date PATH... --year 1978 | --decade 1970s | --date 1978-12-25 | --clear

PATH is a catalogued photo or a folder (every catalogued photo under it). A scan dates each photo by
its camera's EXIF date, else a year, decade or date in its file or folder names ("1978", "1980s",
"Christmas 1992"); a scanner's EXIF date is the scanning day and is not used. The date you set wins
over all of them and is kept by rescans and re-analyses; --clear returns to the scan's rules.
References are chosen by age from these dates (`faceme people set PERSON --born YEAR`).
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.cli.options import add_command_group
from engine.cli.printable import printable
from engine.cli.scan import add_catalog_argument, open_catalog_from
from engine.errors import UsageError
from engine.text import plural


def add_parser(subparsers) -> None:
    sub = add_command_group(subparsers, "photos", "when photos were taken (dates by EXIF, names, or yours)", __doc__)
    q = sub.add_parser("dates", help="each photo's date, where it came from and how sure it is")
    q.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(handler=run_dates)
    q = sub.add_parser("set-date", help="set when photos were taken (a photo, several, or a folder)")
    q.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    which = q.add_mutually_exclusive_group(required=True)
    which.add_argument("--year", type=int, help="the year (1978)")
    which.add_argument("--decade", help="the decade (1970s)")
    which.add_argument("--date", dest="day", metavar="YYYY-MM-DD", help="the day")
    which.add_argument("--clear", action="store_true", help="forget your date: the scan's rules again")
    q.set_defaults(handler=run_set_date)
    for parser in sub.choices.values():
        add_catalog_argument(parser)


def _describe(photo) -> str:
    from engine import photo_dates

    found = photo_dates.of_photo(photo)
    if found is None:
        return "date unknown"
    sure = f"{found.confidence:.0%} sure" if found.usable else "not used"
    return f"{found.describe()} ({found.where_from()}, {sure})"


def run_dates(args) -> int:
    from engine import photo_dates

    catalog = open_catalog_from(args)
    try:
        with catalog.session() as session:
            rows = photo_dates.photos_at(session, args.paths)
            if args.json:
                out = []
                for photo in rows:
                    date = photo_dates.of_photo(photo)
                    out.append({"photo": photo.path, "date": date.describe() if date else None,
                                "source": date.source if date else None,
                                "confidence": date.confidence if date else None})
                print(json.dumps(out, indent=2, ensure_ascii=False))
                return 0
            for photo in rows:
                print(f"{printable(photo.path)}: {_describe(photo)}")
    finally:
        catalog.close()
    return 0


def run_set_date(args) -> int:
    from engine import photo_dates

    found = None
    if not args.clear:
        try:
            found = photo_dates.user_date(year=args.year, decade=args.decade, day=args.day)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    catalog = open_catalog_from(args)
    try:
        with catalog.transaction() as session:
            changed = photo_dates.set_user_dates(session, args.paths, found)
            lines = [f"{printable(p.path)}: {_describe(p)}" for p in changed]
    finally:
        catalog.close()
    said = f"dated {plural(len(changed), 'photo')} {found.describe()}" if found else \
        f"{plural(len(changed), 'photo')} dated by the scan's rules again"
    print(said)
    for line in lines:
        print(line)
    return 0
