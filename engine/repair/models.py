"""The repair models of a model pack, each loaded once per process and handed to the steps.

A part's files are checked against its install record before its weights are read
(`engine.models.layout.check_before_loading`: a missing part is a ModelPackError naming how to get it).
`repair_models_for(models_dir, device)` is the process's cache, one per models folder and device, like
the restoration service's; the steps take what it loads.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from engine.models.layout import PARTS, check_before_loading, find_file

log = logging.getLogger(__name__)

#: the upscaler used for each factor unless the recipe names another part
DEFAULT_UPSCALERS = {2: "realesrgan-x2", 4: "realesrgan-x4"}
UPSCALER_PARTS = ("realesrgan-x2", "realesrgan-x4", "swinir-x4")


class RepairModels:
    """Lazily loaded repair models of the pack in `models_dir`, on `device`."""

    def __init__(self, models_dir: str | Path, device: str = "cpu"):
        self.models_dir = Path(models_dir)
        self.device = _torch_device(device)
        self._loaded: dict[str, object] = {}
        self._lock = threading.Lock()

    def checkpoint(self, part: str) -> Path:
        """The part's checkpoint file, checked against its install record first."""
        check_before_loading(self.models_dir, (part,))
        path = find_file(self.models_dir, part, PARTS[part].files[0])
        assert path is not None  # check_before_loading refuses a part without its file
        return path

    def _get(self, part: str, load):
        with self._lock:
            if part not in self._loaded:
                self._loaded[part] = load(self.checkpoint(part))
            return self._loaded[part]

    def upscaler(self, part: str):
        from engine.repair.spandrel_loading import load_descriptor

        if part not in UPSCALER_PARTS:
            from engine.errors import UsageError

            raise UsageError(f"{part!r} is not an upscaler; choose one of {', '.join(UPSCALER_PARTS)}")
        return self._get(part, lambda path: load_descriptor(path, "upscale", part, self.device))

    def inpainter(self):
        from engine.repair.spandrel_loading import load_descriptor

        return self._get("lama", lambda path: load_descriptor(path, "inpaint", "lama", self.device))

    def colouriser(self):
        from engine.repair.spandrel_loading import load_descriptor

        return self._get("ddcolor", lambda path: load_descriptor(path, "colourise", "ddcolor", self.device))

    def scratch_detector(self):
        from engine.repair.scratch_detector import load_scratch_detector

        return self._get("scratch-detector", lambda path: load_scratch_detector(path, self.device))


def _torch_device(device: str | None) -> str:
    if device in (None, "", "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


_CACHE: dict[tuple[str, str], RepairModels] = {}
_CACHE_LOCK = threading.Lock()


def repair_models_for(models_dir: str | Path, device: str | None = None) -> RepairModels:
    """The process's repair models for this models folder and device (loaded on first use)."""
    key = (str(Path(models_dir).resolve()), _torch_device(device))
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = RepairModels(key[0], key[1])
        return _CACHE[key]
