"""`faceme people`: list people and correct them. Every correction is kept across re-scans.

    faceme people list [--json] [--all]
    faceme people rename PERSON NAME
    faceme people merge PERSON OTHER...
    faceme people split PERSON FACE... [--name NAME]
    faceme people confirm PERSON FACE...
    faceme people new NAME FACE...
    faceme people reject PERSON FACE...
    faceme people hide PERSON [--undo]
    faceme people refs PERSON [--set IMG...] [--era ERA] [--clear]
    faceme people set PERSON --born YEAR|unknown
    faceme people show PERSON [--timeline] [--json]
    faceme people learn PERSON [--method identity|adapter|both] [--steps N]

PERSON is a person's id or name. FACE is a face id (#12, as `people list` shows), a photo path (its
faces in that person, or all its faces), or PATH#N (the photo's N-th largest face).

References are chosen per face by age where the album knows when photos were taken (their EXIF, folder
and file names, `faceme photos set-date`) or how old faces look: a person's birth year (`set --born`)
ties the two. `refs --set IMG... --era child|teen|adult|YEAR` curates one era's references and keeps the
other eras'. `show --timeline` lists the person's faces by year, the references, and the eras that
have none (with suggestions).
"""

from __future__ import annotations

import json

from engine.cli.options import add_command_group
from engine.cli.printable import printable
from engine.cli.scan import add_catalog_argument, open_catalog_from
from engine.errors import UsageError
from engine.text import plural


def add_parser(subparsers) -> None:
    sub = add_command_group(subparsers, "people", "list people and correct them (rename, merge, split, …)", __doc__)

    q = sub.add_parser("list", help="people and their faces")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.add_argument("--all", action="store_true", help="include hidden people")
    q.set_defaults(handler=run_list)

    q = sub.add_parser("rename", help="give a person a name")
    q.add_argument("person")
    q.add_argument("name")
    q.set_defaults(handler=run_rename)

    q = sub.add_parser("merge", help="merge people into the first one")
    q.add_argument("person")
    q.add_argument("others", nargs="+")
    q.set_defaults(handler=run_merge)

    q = sub.add_parser("split", help="move the chosen faces out of a person into a new person")
    q.add_argument("person")
    q.add_argument("faces", nargs="+", metavar="FACE")
    q.add_argument("--name", help="name of the new person")
    q.set_defaults(handler=run_split)

    q = sub.add_parser("confirm", help="these faces are this person (never moved again)")
    q.add_argument("person")
    q.add_argument("faces", nargs="+", metavar="FACE")
    q.set_defaults(handler=run_confirm)

    q = sub.add_parser("new", help="a new person made of these faces (confirmed)")
    q.add_argument("name")
    q.add_argument("faces", nargs="+", metavar="FACE")
    q.set_defaults(handler=run_new)

    q = sub.add_parser("reject", help="these faces are not this person (never put back)")
    q.add_argument("person")
    q.add_argument("faces", nargs="+", metavar="FACE")
    q.set_defaults(handler=run_reject)

    q = sub.add_parser("hide", help="hide a person from lists (strangers in the background)")
    q.add_argument("person")
    q.add_argument("--undo", action="store_true", help="show the person again")
    q.set_defaults(handler=run_hide)

    q = sub.add_parser("refs", help="a person's reference photos (suggested, or your picks)")
    q.add_argument("person")
    q.add_argument("--set", nargs="+", metavar="IMG", dest="images", help="use these photos' faces as references")
    q.add_argument("--clear", action="store_true", help="forget your picks, go back to suggestions")
    q.add_argument("--era", help="the era these picks stand for (child, teen, adult or a year such as 1978): "
                                 "they replace that era's picks only")
    q.set_defaults(handler=run_refs)

    q = sub.add_parser("set", help="facts about a person: the year they were born")
    q.add_argument("person")
    q.add_argument("--born", required=True, metavar="YEAR", help="birth year (unknown: forget it)")
    q.set_defaults(handler=run_set)

    q = sub.add_parser("show", help="one person: faces, birth year, references (--timeline: by year)")
    q.add_argument("person")
    q.add_argument("--timeline", action="store_true", help="faces by year, references marked, eras without one")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(handler=run_show)
    q = sub.add_parser("recluster", help="re-try every face in no person (scans only cluster what they added)")
    q.add_argument("--faces", metavar="MODEL", help="only this embedding model (default: every model in the catalog)")
    q.set_defaults(handler=run_recluster)
    from engine.cli.learn import add_learn_parser

    add_learn_parser(sub)
    for parser in sub.choices.values():
        add_catalog_argument(parser)


def _with_session(args, work):
    catalog = open_catalog_from(args)
    try:
        with catalog.transaction() as session:
            return work(session)
    finally:
        catalog.close()


def run_list(args) -> int:
    from engine.people.listing import people_listing

    def work(session):
        return people_listing(session, include_hidden=args.all, with_ids=True)

    listing = _with_session(args, work)
    if args.json:
        print(json.dumps(listing, indent=2, ensure_ascii=False))
        return 0
    if not listing["people"] and not listing["unassigned"]:
        print("no faces in the catalog yet (faceme scan FOLDER)")
    for person in listing["people"]:
        hidden = " (hidden)" if person.get("hidden") else ""
        name = printable(person["name"]) if person["name"] else "(unnamed)"
        print(f"{person['id']:>5}  {name}{hidden}: {plural(len(person['faces']), 'face')}")
        for face in person["faces"]:
            mark = " confirmed" if face["confirmed"] else ""
            print(f"         #{face['face_id']:<6} {printable(face['photo'])}  {face['box']}{mark}")
    for name, ids in _namesakes(listing["people"]).items():
        print(f"{len(ids)} people are named {printable(name)} ({', '.join(map(str, ids))}): if they are one person, "
              f"`faceme people merge {' '.join(map(str, ids))}` makes them one")
    if listing["unassigned"]:
        print(f"unknown: {plural(len(listing['unassigned']), 'face')}")
        for face in listing["unassigned"]:
            print(f"         #{face['face_id']:<6} {printable(face['photo'])}  {face['box']}")
    return 0


def _namesakes(people: list[dict]) -> dict[str, list[int]]:
    """{name: ids} of the names that more than one listed person has."""
    by_name: dict[str, list[int]] = {}
    for person in people:
        if person["name"]:
            by_name.setdefault(person["name"], []).append(person["id"])
    return {name: sorted(ids) for name, ids in by_name.items() if len(ids) > 1}


def run_rename(args) -> int:
    from engine.people import corrections

    def work(session):
        person = corrections.rename(session, corrections.find_person(session, args.person), args.name)
        said = f"person {person.id} is now {printable(person.name)}"
        for other in corrections.namesakes(session, person):
            said += (f"\nperson {other.id} is also named {printable(other.name)}: if they are the same person, "
                     f"`faceme people merge {other.id} {person.id}` makes them one")
        return said

    print(_with_session(args, work))
    return 0


def run_merge(args) -> int:
    from engine.people import corrections

    def work(session):
        into = corrections.find_person(session, args.person)
        others = [corrections.find_person(session, o) for o in args.others]
        same = [o for o, person in zip(args.others, others) if person.id == into.id]
        if same:  # merging a person into itself would report a merge that changed nothing
            raise UsageError(f"{', '.join(same)} is {into.label} itself; name two different people to merge")
        corrections.merge(session, into, others)
        return f"merged {', '.join(o for o in args.others)} into {into.label}"

    print(_with_session(args, work))
    return 0


def run_split(args) -> int:
    from engine.people import corrections

    def work(session):
        person = corrections.find_person(session, args.person)
        new = corrections.split(session, person, args.faces, name=args.name)
        return f"split {plural(len(new.assignments), 'face')} out of {person.label} into {new.label}"

    print(_with_session(args, work))
    return 0


def run_confirm(args) -> int:
    from engine.people import corrections

    def work(session):
        person = corrections.find_person(session, args.person)
        faces = corrections.confirm(session, person, args.faces)
        return f"confirmed {plural(len(faces), 'face')} as {person.label}"

    print(_with_session(args, work))
    return 0


def run_new(args) -> int:
    from engine.people import corrections

    def work(session):
        faces = list({f.id: f for ref in args.faces for f in corrections.find_faces(session, ref)}.values())
        person = corrections.new_person(session, faces[0].embedding_model, args.name)
        corrections.confirm(session, person, faces)
        return f"new person {person.label} (#{person.id}) with {plural(len(faces), 'confirmed face')}"

    print(_with_session(args, work))
    return 0


def run_reject(args) -> int:
    from engine.people import corrections

    def work(session):
        person = corrections.find_person(session, args.person)
        faces = corrections.reject(session, person, args.faces)
        return f"{plural(len(faces), 'face')} {'is' if len(faces) == 1 else 'are'} not {person.label}"

    print(_with_session(args, work))
    return 0


def run_hide(args) -> int:
    from engine.people import corrections

    def work(session):
        person = corrections.hide(session, corrections.find_person(session, args.person), not args.undo)
        return f"{person.label} is {'hidden' if person.hidden else 'shown'}"

    print(_with_session(args, work))
    return 0


def run_refs(args) -> int:
    from engine.people import corrections, references

    def work(session):
        person = corrections.find_person(session, args.person)
        if args.era and not args.images:
            raise UsageError("--era goes with --set IMG... (the picks for that era)")
        if args.clear:
            references.set_references(session, person, [])
        if args.images:
            faces = []
            for image in args.images:
                found = corrections.find_faces(session, image, person)
                mine = [f for f in found if (p := corrections.person_of(session, f)) and p.id == person.id]
                faces.extend(mine or found[:1])
            choices = references.set_references(session, person, faces, era=args.era)
        else:
            choices = references.references(session, person)
        lines = [f"references of {printable(person.label)}:"]
        if not choices:
            lines.append("  none (no face of this person is large enough)")
        for choice in choices:
            box = [round(v) for v in choice.face.box]
            lines.append(f"  #{choice.face.id} {printable(choice.face.photo.path)} {box}: {choice.reason}")
        return "\n".join(lines)

    print(_with_session(args, work))
    return 0


def run_recluster(args) -> int:
    from sqlalchemy import select

    from engine.catalog.models import Face
    from engine.people.clustering import cluster_catalog

    catalog = open_catalog_from(args)
    try:
        with catalog.session() as session:
            models = [args.faces] if args.faces else sorted(session.scalars(select(Face.embedding_model).distinct()))
        for model in models:
            c = cluster_catalog(catalog, model, scope="all", on_wait=lambda message: print(message, flush=True))
            print(f"{model}: {plural(c.faces_considered, 'face')} re-tried, {c.joined} joined people, "
                  f"{plural(c.new_people, 'new person', 'new people')}, {c.unknown} unknown")
    finally:
        catalog.close()
    return 0


def run_set(args) -> int:
    from engine.people import corrections
    from engine.people.ages import set_birth_year

    text = args.born.strip().lower()
    if text in ("unknown", "none", ""):
        year = None
    elif text.isdigit():
        year = int(text)
    else:
        raise UsageError(f"--born {args.born!r}: give a year (1972) or unknown")

    def work(session):
        person = corrections.find_person(session, args.person)
        set_birth_year(person, year)
        return f"{person.label} was born in {year}" if year is not None else f"{person.label}'s birth year is unknown"

    print(printable(_with_session(args, work)))
    return 0


def run_show(args) -> int:
    from dataclasses import asdict

    from engine.people import corrections, references
    from engine.people.timeline import person_timeline

    def work(session):
        person = corrections.find_person(session, args.person)
        timeline = person_timeline(session, person)
        choices = references.references(session, person, refresh=False) or references.suggest(session, person)
        return person, timeline, choices

    def as_text(session) -> list[str] | dict:
        person, timeline, choices = work(session)
        if args.json:
            data = {"person_id": timeline.person_id, "name": timeline.name, "birth_year": timeline.birth_year,
                    "birth_estimated": timeline.birth_estimated, "faces": [asdict(f) for f in timeline.faces]}
            data["eras"] = [{"name": e.name, "faces": e.faces, "references": e.references,
                             "lacks_reference": e.lacks_reference, "suggested": [c.face.id for c in e.suggested]}
                            for e in timeline.eras]
            data["references"] = [{"face_id": c.face.id, "photo": c.face.photo.path, "reason": c.reason,
                                   "picked_by_user": c.picked_by_user} for c in choices]
            return data
        born = "unknown" if person.birth_year is None else str(person.birth_year)
        if person.birth_year is None and timeline.birth_year is not None:
            born += f" (about {timeline.birth_year:.0f} by dated faces and apparent ages)"
        lines = [f"{person.id}  {person.label}{' (hidden)' if person.hidden else ''}: "
                 f"{plural(len(timeline.faces), 'face')}, born {born}", "references:"]
        lines += [f"  #{c.face.id} {c.face.photo.path}: {c.reason}" for c in choices] or ["  none"]
        from engine.cli.learn import learned_lines, pack_fingerprint_or_none

        lines += learned_lines(session, person, pack_fingerprint_or_none())
        if args.timeline:
            lines += timeline.lines()
        return lines

    out = _with_session(args, as_text)
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        for line in out:
            print(printable(line))  # a newline in a file name must not split a line
    return 0
