"""Record what the engine produces for a fixed set of runs, to prove a refactor changed nothing.

    python tools/record_outputs.py OUT.json [--compare BASELINE.json] [--pack DIR] [--work DIR]

Runs, in this process, through the `faceme` command's own code (engine.cli.main), with the tiny model
pack (engine.testing.tiny_pack, seeded weights; built under the temporary folder on first use unless
--pack names one), real photos from ../shared/data, fixed seeds and 2 denoising steps:

- `scan`: `faceme scan` of a small album (dlib faces, as a catalog without an InsightFace pack): every
  face row (box, score, landmarks, embedding, model) and every person assignment, hashed;
- `restore/*`: `faceme restore` ad hoc (`--person`, the match threshold forced low so faces are
  restored with the people's references and checked; one run with `--tries 2`; one without the colour
  fix; one PNG) and `--catalog` (the album's plan for one photo);
- `batch`: `faceme batch` of the album (a photo without a face included), each output file and the
  job's per-face records (`--json`, times and temporary paths left out).

Each output is recorded by the SHA-256 of its bytes (`sha256`) and of its decoded pixels
(`pixels_sha256`: shape and RGB(A) bytes as engine.imageio reads them), so that a change of encoder
settings that keeps every pixel is told apart from a change of pixels; each run's printed records
(seeds, people, reasons, identity-check figures) by `records_sha256`, with the records themselves kept
beside it for reading. With --compare, prints which entries differ from the baseline and how
("bytes only" / "pixels" / "records" / "missing"), and exits 1 when any does.

Takes one to three minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("FACEME_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"

log = logging.getLogger("record_outputs")

#: the album scanned and restored in a batch: one person in three photos (so the album groups them and
#: has references), a small group photo, a PNG with a face and a photo without any face
ALBUM = {
    "people/a1.jpg": "deepface_ids/images/person_01/img5.jpg",
    "people/a2.jpg": "deepface_ids/images/person_01/img10.jpg",
    "people/a3.jpg": "deepface_ids/images/person_01/img11.jpg",
    "group/g1.jpg": "group_photos/images/dlib_2008_001009.jpg",
    "old/b.png": "realworld_degraded/whole/bop_old_b.png",
    "old/noface.png": "realworld_degraded/whole/bop_old_e.png",
}
COUPLE = DATA / "group_photos/images/deepface_couple.jpg"
GROUP = DATA / "group_photos/images/dlib_2007_007763.jpg"
REFERENCE_A = DATA / "deepface_ids/images/person_01/img5.jpg"
REFERENCE_B = DATA / "deepface_ids/images/person_03/img50.jpg"
STEPS = "2"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pixels_sha256(path: Path) -> str:
    """SHA-256 of the decoded pixels (shape, then bytes) as the engine reads the file."""
    from engine.imageio import read_image

    loaded = read_image(path)
    digest = hashlib.sha256(repr(loaded.pixels.shape).encode())
    digest.update(loaded.pixels.tobytes())
    if loaded.alpha is not None:
        digest.update(b"alpha")
        digest.update(loaded.alpha.tobytes())
    return digest.hexdigest()


def records_sha256(records) -> str:
    return hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()


def output_entry(path: Path, records=None) -> dict:
    entry = {"sha256": file_sha256(path), "pixels_sha256": pixels_sha256(path)}
    if records is not None:
        entry["records_sha256"] = records_sha256(records)
        entry["records"] = records
    return entry


def faceme(*args) -> dict | None:
    """Run `faceme ARGS --json` in-process; the printed JSON (None when it printed none). Raises on a
    non-zero exit."""
    from engine.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in args])
    if code != 0:
        raise RuntimeError(f"faceme {' '.join(map(str, args))} exited {code}")
    text = out.getvalue().strip()
    return json.loads(text) if text.startswith("{") else None


def scrub(value, work: Path):
    """`value` with the temporary work folder's path replaced by a fixed name (paths differ per run)."""
    if isinstance(value, str):
        return value.replace(str(work), "<work>")
    if isinstance(value, list):
        return [scrub(v, work) for v in value]
    if isinstance(value, dict):
        return {k: scrub(v, work) for k, v in value.items()}
    return value


def tiny_pack(folder: Path | None) -> Path:
    """The tiny pack at `folder`, built there when missing (default: one per user under the temporary
    folder, reused by later runs)."""
    from engine.testing.tiny_pack import write_tiny_pack

    folder = folder or Path(tempfile.gettempdir()) / f"faceme-record-outputs-pack-{os.getuid()}"
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        log.info("building the tiny pack in %s", folder)
        write_tiny_pack(folder, SHARED / "models/insightface_scrfd/det_500m.onnx", "tiny")
        (folder / ".complete").write_text("ok\n")
    return folder


def scan_entry(catalog: Path, album: Path) -> dict:
    """The catalog's faces and people assignments, hashed (rows ordered by photo path and box)."""
    db = sqlite3.connect(catalog)
    try:
        faces = db.execute(
            "SELECT photos.path, faces.id, faces.x1, faces.y1, faces.x2, faces.y2, faces.score, faces.landmarks, "
            "faces.embedding, faces.embedding_model FROM faces JOIN photos ON photos.id = faces.photo_id "
            "ORDER BY photos.path, faces.x1, faces.y1").fetchall()
        assignments = db.execute(
            "SELECT assignments.face_id, assignments.person_id, assignments.origin, people.name "
            "FROM assignments JOIN people ON people.id = assignments.person_id "
            "ORDER BY assignments.face_id, assignments.person_id").fetchall()
    finally:
        db.close()
    digest = hashlib.sha256()
    rows = []
    for path, face_id, x1, y1, x2, y2, score, landmarks, embedding, model in faces:
        relative = str(Path(path).relative_to(album))
        digest.update(repr((relative, face_id, x1, y1, x2, y2, score, str(landmarks), model)).encode())
        digest.update(bytes(embedding) if embedding is not None else b"-")
        rows.append([relative, face_id, [round(v, 2) for v in (x1, y1, x2, y2)], model])
    people = [list(a) for a in assignments]
    digest.update(json.dumps(people).encode())
    return {"rows_sha256": digest.hexdigest(), "records": {"faces": rows, "assignments": people}}


def record(work: Path, pack: Path) -> dict:
    album = work / "album"
    for name, source in ALBUM.items():
        (album / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(DATA / source, album / name)
    catalog = work / "catalog.db"
    out = work / "out"
    out.mkdir()
    common = ("--models", pack, "--steps", STEPS)
    entries: dict[str, dict] = {}

    faceme("scan", album, "--catalog", catalog, "--faces", "dlib", "--workers", "1")
    entries["scan"] = scan_entry(catalog, album)

    people = ("--person", f"anna={REFERENCE_A}", "--person", f"bo={REFERENCE_B}", "--match-threshold", "-1")
    runs = {
        "restore/adhoc-people": (COUPLE, "couple.jpg", (*people, "--seed", "7")),
        "restore/adhoc-tries": (COUPLE, "couple-tries.jpg", (*people, "--seed", "8", "--tries", "2",
                                                              "--max-faces", "1")),
        "restore/adhoc-no-colour-fix": (GROUP, "group-nofix.jpg", ("--seed", "9", "--no-color-fix",
                                                                   "--no-identity-check")),
        "restore/adhoc-png": (album / "old/b.png", "b.png", ("--seed", "10",)),
        "restore/catalog": (album / "group/g1.jpg", "g1-catalog.jpg", ("--catalog", catalog, "--seed", "11")),
    }
    for name, (photo, output, extra) in runs.items():
        printed = faceme("restore", photo, "-o", out / output, *common, *extra, "--json")
        entries[name] = output_entry(out / output, scrub(printed, work))

    batch_out = work / "batch"
    summary = faceme("batch", album, "--out", batch_out, "--catalog", catalog, *common, "--seed", "12", "--json")
    summary.pop("seconds", None)
    summary.pop("job", None)
    entries["batch"] = {"records_sha256": records_sha256(scrub(summary, work)), "records": scrub(summary, work)}
    for path in sorted(p for p in batch_out.rglob("*") if p.is_file()):
        entries[f"batch/{path.relative_to(batch_out)}"] = output_entry(path)
    return entries


def compare(entries: dict, baseline: dict) -> list[str]:
    """One line per entry that differs from `baseline` (or is in only one of them)."""
    lines = []
    for name in sorted(set(entries) | set(baseline)):
        now, before = entries.get(name), baseline.get(name)
        if now is None or before is None:
            lines.append(f"{name}: missing {'now' if now is None else 'in the baseline'}")
            continue
        how = []
        if now.get("pixels_sha256") != before.get("pixels_sha256"):
            how.append("pixels")
        elif now.get("sha256") != before.get("sha256"):
            how.append("bytes only (same decoded pixels)")
        if now.get("records_sha256") != before.get("records_sha256"):
            how.append("records")
        if now.get("rows_sha256") != before.get("rows_sha256"):
            how.append("catalog rows")
        if how:
            lines.append(f"{name}: {', '.join(how)} differ")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="JSON file to write the record to")
    parser.add_argument("--compare", type=Path, metavar="BASELINE", help="a record to compare with")
    parser.add_argument("--pack", type=Path, help="tiny model pack folder (built there when missing)")
    parser.add_argument("--work", type=Path, help="keep the runs' files in this (new) folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not DATA.is_dir():
        parser.error(f"{DATA} is not there (the shared data folder beside the project)")
    work = args.work or Path(tempfile.mkdtemp(prefix="faceme-record-outputs-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["FACEME_CACHE"] = str(work / "cache")  # the prompt-embedding cache of this run only
    try:
        entries = record(work, tiny_pack(args.pack))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    args.out.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    log.info("%d entries recorded in %s", len(entries), args.out)
    if args.compare is None:
        return 0
    differences = compare(entries, json.loads(args.compare.read_text()))
    for line in differences:
        print(line)
    print(f"{len(differences)} of {len(entries)} entries differ from {args.compare}")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
