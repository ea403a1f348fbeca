"""Licence consent: each part's licence is shown and accepted once, and the acceptance is recorded.

Acceptances live in `<models>/licenses.json` (part, licence name, URL, time, how it was given). An
acceptance is tied to the licence name, so a manifest that changes a part's licence asks again. The
engine never prompts: the CLI asks on a TTY (or takes `--accept-licenses`), the GUI shows a dialog,
and both call `record_acceptance`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import FaceMeError, LicenseNotAcceptedError
from engine.models.integrity import now_iso
from engine.models.manifest import PartManifest

LICENSES_NAME = "licenses.json"


@dataclass(frozen=True)
class Acceptance:
    part: str
    license: str
    url: str
    accepted_at: str
    how: str


def _path(models_dir: Path) -> Path:
    return Path(models_dir) / LICENSES_NAME


def read_acceptances(models_dir: Path) -> list[Acceptance]:
    path = _path(models_dir)
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [Acceptance(**entry) for entry in data.get("accepted", [])]
    except (OSError, ValueError, TypeError) as exc:
        raise FaceMeError(f"the licence record is damaged ({exc}); delete it to be asked again", path) from exc


def is_accepted(models_dir: Path, part: PartManifest) -> bool:
    return any(a.part == part.name and a.license == part.license.name for a in read_acceptances(models_dir))


def missing_acceptances(models_dir: Path, parts: list[PartManifest]) -> list[PartManifest]:
    accepted = {(a.part, a.license) for a in read_acceptances(models_dir)}
    return [p for p in parts if (p.name, p.license.name) not in accepted]


def record_acceptance(models_dir: Path, parts: list[PartManifest], how: str) -> None:
    """Record that the user accepted these parts' licences (idempotent)."""
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    entries = read_acceptances(models_dir)
    have = {(a.part, a.license) for a in entries}
    stamp = now_iso()
    for part in parts:
        if (part.name, part.license.name) not in have:
            entries.append(Acceptance(part.name, part.license.name, part.license.url, stamp, how))
    path = _path(models_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"accepted": [a.__dict__ for a in entries]}, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def license_text(part: PartManifest) -> str:
    """The lines shown before asking: what the part is licensed under, in plain words."""
    lic = part.license
    head = f"{part.name}: {lic.name}"
    if lic.non_commercial:
        head += "  [NON-COMMERCIAL USE ONLY]"
    lines = [head, f"    {lic.summary}" if lic.summary else "", f"    full text: {lic.url}"]
    return "\n".join(line for line in lines if line)


def require_acceptance(models_dir: Path, parts: list[PartManifest]) -> None:
    """Raise LicenseNotAcceptedError listing every part whose licence has not been accepted yet."""
    missing = missing_acceptances(models_dir, parts)
    if missing:
        listing = "\n".join(license_text(p) for p in missing)
        raise LicenseNotAcceptedError(
            "these licences must be accepted before anything is downloaded:\n" + listing
            + "\nRead them, then run again with --accept-licenses (or answer yes when asked).")
