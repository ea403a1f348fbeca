"""Reading released restoration checkpoints with spandrel (MIT), which detects their architecture.

spandrel imports every architecture it knows when it is imported, and two of them import torchvision
at module level: LaMa (`rotate`, `InterpolationMode`, used only by a learnable spatial transform that
the released big-lama does not enable) and RestoreFormer (`normalize`, an architecture the engine
never loads). torchvision does not import beside the project's pinned CPU torch (docs: package facts).
So, when torchvision is not installed, spandrel is imported with a stand-in for exactly those three
names in `sys.modules`, removed again right after the import: nothing else in the process (transformers
checks whether torchvision is installed) ever sees it. The stand-in's `rotate` refuses to run, so a
checkpoint that would need it fails loudly instead of computing something else.

Only the architectures listed in `ARCHITECTURES` are accepted: a file of any other architecture is
refused with a ModelPackError naming it, whatever spandrel could load.
"""

from __future__ import annotations

import enum
import importlib.util
import logging
import sys
import threading
import types
from pathlib import Path

from engine.errors import ModelPackError

log = logging.getLogger(__name__)

#: the architectures each kind of repair model may have (spandrel's architecture ids)
ARCHITECTURES = {
    "upscale": ("ESRGAN", "RealCUGAN", "Compact", "SwinIR", "HAT"),
    "inpaint": ("LaMa",),
    "colourise": ("DDColor",),
}

_IMPORT_LOCK = threading.Lock()
_REGISTRY = None


class InterpolationMode(enum.Enum):
    """The values LaMa's module names at import (torchvision.transforms.InterpolationMode's)."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


def _rotate_unavailable(*_args, **_kwargs):
    raise ModelPackError("this LaMa checkpoint uses a learnable spatial transform, which needs torchvision "
                         "(not installable beside the pinned torch); use the released big-lama")


def _normalize(tensor, mean, std, inplace=False):
    import torch

    mean_t = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    return tensor.sub_(mean_t).div_(std_t) if inplace else (tensor - mean_t) / std_t


def _torchvision_stand_in() -> dict[str, types.ModuleType]:
    root = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = InterpolationMode
    functional.rotate = _rotate_unavailable
    functional.normalize = _normalize
    transforms.functional = functional
    transforms.InterpolationMode = InterpolationMode
    root.transforms = transforms
    return {"torchvision": root, "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional}


def import_spandrel():
    """The `spandrel` module (and `spandrel_extra_arches` loaded), importing them once."""
    with _IMPORT_LOCK:
        if "spandrel" in sys.modules and "spandrel_extra_arches" in sys.modules:
            return sys.modules["spandrel"]
        stand_in = {}
        if importlib.util.find_spec("torchvision") is None:
            stand_in = {name: module for name, module in _torchvision_stand_in().items() if name not in sys.modules}
        sys.modules.update(stand_in)
        try:
            import spandrel

            importlib.import_module("spandrel_extra_arches")  # DDColor lives there
        except ImportError as exc:
            raise ModelPackError(f"the repair models need the `spandrel` package ({exc}); run the setup again "
                                 "(python3 scripts/dev.py start)") from exc
        finally:
            for name, module in stand_in.items():
                if sys.modules.get(name) is module:
                    del sys.modules[name]
        return spandrel


def registry():
    """spandrel's architectures that the repair steps accept (ARCHITECTURES), detection order kept."""
    global _REGISTRY
    spandrel = import_spandrel()
    with _IMPORT_LOCK:
        if _REGISTRY is None:
            import spandrel_extra_arches

            wanted = {arch for archs in ARCHITECTURES.values() for arch in archs}
            chosen = spandrel.ArchRegistry()
            known = [*spandrel.MAIN_REGISTRY.architectures("detection"), *spandrel_extra_arches.EXTRA_REGISTRY]
            chosen.add(*(support for support in known if str(support.architecture.id) in wanted))
            _REGISTRY = chosen
        return _REGISTRY


def load_descriptor(path: str | Path, kind: str, part: str, device: str = "cpu"):
    """The spandrel model descriptor of the checkpoint at `path`, in eval mode on `device`.
    ModelPackError (naming the file and part) when it cannot be read or is not of an architecture
    `kind` accepts."""
    spandrel = import_spandrel()
    path = Path(path)
    loader = spandrel.ModelLoader(device=device, registry=registry())
    try:
        if path.suffix == ".bin":  # the hub's PyTorchModelHubMixin name; spandrel reads .pth/.pt/.ckpt/.safetensors
            import torch

            descriptor = loader.load_from_state_dict(torch.load(path, map_location=device, weights_only=True))
        else:
            descriptor = loader.load_from_file(path)
    except spandrel.UnsupportedModelError as exc:
        raise ModelPackError(f"not a model the repair steps know (accepted for {kind}: "
                             f"{', '.join(ARCHITECTURES[kind])})", path, part=part) from exc
    except (OSError, RuntimeError, ValueError, KeyError, EOFError) as exc:
        raise ModelPackError(f"cannot be read as a model checkpoint ({exc.__class__.__name__}: {exc})", path,
                             part=part) from exc
    arch = str(descriptor.architecture.id)
    if arch not in ARCHITECTURES[kind]:
        raise ModelPackError(f"is a {arch} model; {kind} needs one of {', '.join(ARCHITECTURES[kind])}", path,
                             part=part)
    descriptor.eval()
    log.info("%s: %s (%s) loaded from %s", part, arch, ", ".join(descriptor.tags), path)
    return descriptor
