"""What the Models page shows and does, as plain functions over engine.models (no Qt)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from engine.errors import FaceMeError
from engine.models.layout import PARTS, RESTORATION_PARTS, verify_pack
from engine.progress import CancelCheck, ProgressCallback

log = logging.getLogger(__name__)


def restoration_download_size() -> str:
    """What restoring needs to download, from the manifest ("about 13.4 GB"): the figure `faceme info` and
    README show."""
    from engine.models.fetch import human_bytes
    from engine.models.manifest import load_manifest

    try:
        return f"about {human_bytes(sum(load_manifest().part(n).download_size for n in RESTORATION_PARTS))}"
    except (FaceMeError, OSError, ValueError) as exc:  # the app still starts; the Models page lists the parts
        log.warning("model manifest unavailable: %s", exc)
        return "many GB"


WHY_TEXT = (
    f"Restoring a face needs the FaceMe model: {restoration_download_size()} of weights from four "
    "places — the RealVisXL "
    "image model, PhotoMaker's image encoder, FaceMe's own ControlNet and identity fusion, and "
    "InsightFace's face detector and recogniser. They are not included with the app because of their "
    "size and licences. Albums and people work without them.")


@dataclass(frozen=True)
class PartRow:
    name: str
    title: str
    state: str  # present | missing | invalid
    detail: str
    where_to_get: str
    license_name: str
    license_url: str
    license_summary: str
    non_commercial: bool
    required: bool
    size_bytes: int | None
    license_accepted: bool


def human_size(n: int | None) -> str:
    if not n:
        return "—"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit in ("B", "KB") else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _manifest_parts() -> dict:
    try:
        from engine.models.manifest import load_manifest

        return load_manifest().parts
    except (ImportError, FaceMeError, OSError, ValueError) as exc:
        log.warning("model manifest unavailable: %s", exc)
        return {}


def pack_rows(models_dir: Path) -> list[PartRow]:
    """Every part of the pack with its state and licence (reads headers only)."""
    manifest = _manifest_parts()
    accepted: set[tuple[str, str]] = set()
    try:
        from engine.models.licenses import read_acceptances

        accepted = {(a.part, a.license) for a in read_acceptances(models_dir)}
    except (ImportError, FaceMeError) as exc:
        log.warning("licence record unavailable: %s", exc)
    rows = []
    for status in verify_pack(models_dir, tuple(PARTS)):
        part = PARTS[status.name]
        entry = manifest.get(status.name)
        summary = entry.license.summary if entry is not None else ""
        size = entry.download_size if entry is not None else None
        rows.append(PartRow(
            name=part.name, title=part.title, state=status.state, detail=status.detail,
            where_to_get=part.where_to_get, license_name=part.license_name, license_url=part.license_url,
            license_summary=summary, non_commercial=part.non_commercial,
            required=part.required_for_restoration, size_bytes=size,
            license_accepted=(part.name, entry.license.name if entry else part.license_name) in accepted))
    return rows


@dataclass(frozen=True)
class PackMissing:
    """A job's answer when the pack is incomplete: the parts that are missing or broken."""

    parts: list[str]


def restoration_ready(models_dir: Path) -> tuple[bool, list[str]]:
    """(ready, names of the missing or broken parts) for restoring faces."""
    problems = [s.name for s in verify_pack(models_dir, RESTORATION_PARTS) if not s.ok]
    return not problems, problems


def accept_licences(models_dir: Path, names: list[str]) -> None:
    from engine.models.licenses import record_acceptance
    from engine.models.manifest import load_manifest

    manifest = load_manifest()
    record_acceptance(models_dir, [manifest.part(n) for n in names], how="accepted in FaceMe Studio")


def _install_module():
    try:
        from engine.models import install
    except ImportError:
        return None
    return install


def can_download() -> bool:
    module = _install_module()
    return module is not None and hasattr(module, "download_parts")


def can_import() -> bool:
    module = _install_module()
    return module is not None and hasattr(module, "import_part")


def download(models_dir: Path, names: list[str], progress: ProgressCallback | None = None,
             cancel: CancelCheck | None = None) -> None:
    module = _install_module()
    if module is None or not hasattr(module, "download_parts"):
        raise FaceMeError("downloading is not available in this version; use `faceme models download` "
                          "or import a folder you already have")
    module.download_parts(models_dir, names, progress=progress, cancel=cancel)


def import_from(models_dir: Path, name: str, source: Path, progress: ProgressCallback | None = None,
                cancel: CancelCheck | None = None) -> None:
    module = _install_module()
    if module is None or not hasattr(module, "import_part"):
        raise FaceMeError("importing is not available in this version; copy the folder into "
                          f"{models_dir / PARTS[name].folder} by hand", source)
    module.import_part(models_dir, name, source, progress=progress, cancel=cancel)
