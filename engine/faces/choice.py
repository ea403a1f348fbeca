"""Which face analyser a scan uses: an installed InsightFace pack when there is one, else dlib.

With antelopev2 (which restoration needs anyway) or buffalo_l installed, grouping and matching use
the same face model as restoration (ArcFace embeddings, SCRFD faces); without a pack the embedded
dlib models need no download. An album scanned with one model moves to another with
`engine.catalog.scanner.reanalyse_album`, keeping its people.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

#: InsightFace packs usable for album faces, preferred first
INSIGHTFACE_PACKS = ("antelopev2", "buffalo_l")
FACE_MODEL_CHOICES = ("auto", "dlib", *INSIGHTFACE_PACKS)


def installed_insightface_pack(models_dir: Path | None) -> str | None:
    """The first of INSIGHTFACE_PACKS installed (present and valid) in `models_dir`, or None."""
    if models_dir is None:
        return None
    from engine.models.layout import check_part

    for name in INSIGHTFACE_PACKS:
        if check_part(Path(models_dir), name).ok:
            return name
    return None


def resolve_face_model(name: str = "auto", models_dir: Path | None = None) -> str:
    """`name` itself, or for "auto" the first installed InsightFace pack, else "dlib" (cheap: no model
    is loaded)."""
    if name not in FACE_MODEL_CHOICES:
        raise ValueError(f"unknown face model {name!r} (one of {', '.join(FACE_MODEL_CHOICES)})")
    if name != "auto":
        return name
    if models_dir is None:
        from engine.settings import Settings

        models_dir = Settings().models_dir
    name = installed_insightface_pack(models_dir) or "dlib"
    log.info("faces: %s", name)
    return name


def make_face_analyzer(name: str = "auto", models_dir: Path | None = None, device: str = "auto"):
    """The analyser for `name`: "dlib", an InsightFace pack name, or "auto" (a pack when installed).
    `device`: the user's `Settings.device`, passed down: an InsightFace pack runs on onnxruntime's CUDA
    provider where the device may be CUDA ("auto", "cuda", "cuda:N") and onnxruntime-gpu offers it,
    else on the CPU (engine.faces.insightface_backend.providers_for_device)."""
    name = resolve_face_model(name, models_dir)
    if name == "dlib":
        from engine.faces.dlib_backend import DlibFaceAnalyzer

        return DlibFaceAnalyzer()
    from engine.faces.insightface_backend import InsightFaceAnalyzer, providers_for_device
    from engine.models.layout import part_dir
    from engine.settings import Settings

    folder = Path(models_dir) if models_dir is not None else Path(Settings().models_dir)
    return InsightFaceAnalyzer(part_dir(folder, name), providers=providers_for_device(device))
