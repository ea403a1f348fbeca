"""What the user chose in Settings, kept in a small JSON file (Qt-free, so tests can read it)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import platformdirs

from engine.settings import APP_NAME, Settings, default_catalog_url, default_models_dir

log = logging.getLogger(__name__)

#: the default Save folder, beside the albums
RESTORED_FOLDER = "Restored"

NAMING_HELP = "{stem} is the photo's name without extension; the extension is kept"


def default_config_path() -> Path:
    env = os.environ.get("FACEME_CONFIG_DIR")
    folder = Path(env) if env else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
    return folder / "studio.json"


@dataclass
class Preferences:
    device: str = "auto"
    #: GPU memory mode: auto, full, balanced, low (engine.faceme.memory)
    memory: str = "auto"
    models_dir: str = field(default_factory=lambda: str(default_models_dir()))
    catalog_url: str = field(default_factory=default_catalog_url)
    #: empty: a "Restored" folder beside the albums (never inside one: a scan would catalogue the outputs)
    output_dir: str = ""
    naming: str = "{stem}_restored"
    guidance: float = 5.0
    steps: int = 50
    color_fix: bool = True
    #: check that each restored face still looks like the person (engine.restore.identity_check)
    identity_check: bool = True
    #: best of N by identity: seeds per face (1: one restoration per face)
    tries: int = 1
    #: album folders the user added (scanned into the catalog)
    albums: list[str] = field(default_factory=list)
    #: album folders the user removed from the Library: their photos stay in the catalog, and the
    #: Library does not list them again as albums scanned elsewhere
    removed_albums: list[str] = field(default_factory=list)
    #: the InsightFace pack of a re-analysis the user started and that has not finished (stopped, or the
    #: app closed): the Library offers to continue it, and holds scans back until it is done
    reanalysis_pending: str = ""
    #: processes analysing photos during a scan; 0: one per core
    scan_workers: int = 0

    def engine_settings(self) -> Settings:
        return Settings(models_dir=Path(self.models_dir), catalog_url=self.catalog_url, device=self.device,
                        memory=self.memory)

    def album_of(self, photo: Path) -> Path | None:
        """The outermost album folder holding the photo, if any."""
        photo = Path(os.path.abspath(photo))
        holding = [Path(os.path.abspath(a)) for a in self.albums if photo.is_relative_to(os.path.abspath(a))]
        return min(holding, key=lambda a: len(a.parts)) if holding else None

    def output_path_for(self, photo: Path) -> Path:
        """Where Save writes: the chosen folder; by default, for an album photo, a "Restored" folder beside
        the album (Restored/<album>/<its sub-folders>), else a "restored" folder beside the photo."""
        album = self.album_of(photo)
        if self.output_dir:
            folder = Path(self.output_dir)
        elif album is not None:
            relative = Path(os.path.abspath(photo)).parent.relative_to(album)
            folder = album.parent / RESTORED_FOLDER / album.name / relative
        else:
            folder = photo.parent / "restored"
        stem = self.naming.format(stem=photo.stem) if "{stem}" in self.naming else f"{photo.stem}{self.naming}"
        return folder / f"{stem}{photo.suffix}"

    def batch_output_for(self, roots: list[str]) -> Path:
        """Where a new batch writes by default: the chosen folder; else the "Restored" folder beside the
        first album that a single photo's Save uses (a batch of one album writes Restored/<album>/…, of
        several Restored/<each album>/…: for albums side by side, where their single photos are saved)."""
        if self.output_dir:
            return Path(self.output_dir)
        first = Path(os.path.abspath(roots[0]))
        restored = first.parent / RESTORED_FOLDER
        return restored / first.name if len(roots) == 1 else restored

    @classmethod
    def load(cls, path: Path) -> Preferences:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("settings file %s unreadable (%s); using defaults", path, exc)
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        tmp.replace(path)
