"""The manifest: where every part of the model pack comes from, as data.

`engine/models/manifest.json` (packaged with the engine) lists, per part of `layout.PARTS`: the source
(a Hugging Face hub repo + revision + subfolder + exact files, or a zip URL), each file's size and
SHA-256 where known, the licence (name, URL, non-commercial or not) and whether restoration needs the
part. Mirrors and tests pass their own manifest (a path or a `Manifest` object) to every function
that downloads; nothing reads a global.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from engine.errors import UsageError

DEFAULT_MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class ManifestFile:
    """One file the engine needs. `path` is relative to the part folder (and to the source's subfolder,
    or is the member's base name inside a zip). `fallbacks` are other names on the server to try when
    `path` does not exist there (e.g. the fp32 file when no fp16 variant was published)."""

    path: str
    size: int | None = None
    approx_size: int | None = None
    sha256: str | None = None
    fallbacks: tuple[str, ...] = ()

    @property
    def expected_size(self) -> int:
        """Bytes to plan for (exact when known, else the estimate, else 0)."""
        return self.size if self.size is not None else (self.approx_size or 0)


@dataclass(frozen=True)
class PartSource:
    kind: str  # "hub" | "zip" | "url" (one file fetched as it is, HTTP Range resume)
    repo: str | None = None
    revision: str = "main"
    subfolder: str = ""
    url: str | None = None
    #: for zips: the archive itself
    size: int | None = None
    approx_size: int | None = None
    sha256: str | None = None

    def describe(self) -> str:
        if self.kind == "hub":
            sub = f"/{self.subfolder}" if self.subfolder else ""
            return f"hf://{self.repo}@{self.revision}{sub}"
        return str(self.url)

    def hub_filename(self, path: str) -> str:
        return f"{self.subfolder}/{path}" if self.subfolder else path


@dataclass(frozen=True)
class License:
    name: str
    url: str
    non_commercial: bool
    summary: str = ""


@dataclass(frozen=True)
class PartManifest:
    name: str
    required: bool
    source: PartSource
    license: License
    files: tuple[ManifestFile, ...]
    provenance: str = ""

    def file(self, path: str) -> ManifestFile | None:
        return next((f for f in self.files if f.path == path or path in f.fallbacks), None)

    @property
    def download_size(self) -> int:
        """Bytes fetched over the network (the archive for zips)."""
        if self.source.kind == "zip":
            return self.source.size if self.source.size is not None else (self.source.approx_size or 0)
        return sum(f.expected_size for f in self.files)

    @property
    def installed_size(self) -> int:
        return sum(f.expected_size for f in self.files)


@dataclass(frozen=True)
class Manifest:
    parts: dict[str, PartManifest]
    origin: str = "<memory>"
    data: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def part(self, name: str) -> PartManifest:
        try:
            return self.parts[name]
        except KeyError:
            raise UsageError(f"unknown model part {name!r}; known parts: {', '.join(self.parts)}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "<memory>") -> Manifest:
        if data.get("format") != 1:
            raise UsageError(f"{origin}: unsupported manifest format {data.get('format')!r} (expected 1)")
        parts = {}
        for name, entry in data["parts"].items():
            src = entry["source"]
            files = tuple(
                ManifestFile(path=f["path"], size=f.get("size"), approx_size=f.get("approx_size"),
                             sha256=_norm_hash(f.get("sha256")), fallbacks=tuple(f.get("fallbacks", ())))
                for f in entry["files"]
            )
            lic = entry["license"]
            parts[name] = PartManifest(
                name=name,
                required=bool(entry.get("required", True)),
                source=PartSource(kind=src["kind"], repo=src.get("repo"), revision=src.get("revision", "main"),
                                  subfolder=src.get("subfolder", "").strip("/"), url=src.get("url"),
                                  size=src.get("size"), approx_size=src.get("approx_size"),
                                  sha256=_norm_hash(src.get("sha256"))),
                license=License(name=lic["name"], url=lic["url"], non_commercial=bool(lic["non_commercial"]),
                                summary=lic.get("summary", "")),
                files=files,
                provenance=entry.get("provenance", ""),
            )
            if parts[name].source.kind not in ("hub", "zip", "url"):
                raise UsageError(f"{origin}: part {name}: unknown source kind {src['kind']!r}")
        return cls(parts=parts, origin=origin, data=data)


def _norm_hash(value: str | None) -> str | None:
    return value.lower() if value else None


def load_manifest(source: str | Path | Manifest | dict | None = None) -> Manifest:
    """The packaged manifest (None), or one given as a path, a parsed dict or an object."""
    if isinstance(source, Manifest):
        return source
    if isinstance(source, dict):
        return Manifest.from_dict(source)
    if source is None:
        text = resources.files("engine.models").joinpath(DEFAULT_MANIFEST_NAME).read_text(encoding="utf-8")
        return Manifest.from_dict(json.loads(text), origin="engine/models/manifest.json")
    path = Path(source)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the manifest: {exc}", path) from exc
    return Manifest.from_dict(data, origin=str(path))
