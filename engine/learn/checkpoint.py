"""Files of learning: written whole or not at all, and the fit's resumable checkpoint.

`atomic_write` writes beside the target under a temporary name, flushes it to disk and renames it into
place, so a kill at any moment leaves either the old file or the new one, never half of one (a
restoration can therefore never load a half-written adapter). A checkpoint is one safetensors file:
the trainable tensors, the optimizer's state tensors, and as metadata the step reached, the losses so
far and the key of the run it belongs to (settings and inputs); a checkpoint of another run, or one
that cannot be read, is ignored and the fit starts over.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import torch

log = logging.getLogger(__name__)

METADATA_KEY = "faceme_learning"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temporary path)` beside `path`, make it durable, and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(temporary))
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise
    if os.name != "nt":  # the rename itself made durable
        with suppress(OSError):
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)


@dataclass
class Checkpoint:
    """Where a fit stands: `tensors` (trainable by name), `optimizer` (torch's state_dict), `step`, `losses`."""

    key: dict
    step: int = 0
    losses: list[float] = field(default_factory=list)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    optimizer: dict | None = None


def _optimizer_tensors(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """torch's optimizer state_dict → (tensors by flat name, the JSON-able rest)."""
    tensors, plain = {}, {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "plain": plain}


def _optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, values in meta.get("plain", {}).items():
        state.setdefault(int(index), {}).update(values)
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    from safetensors.torch import save_file

    tensors = {f"trainable.{k}": v.detach().cpu().contiguous() for k, v in checkpoint.tensors.items()}
    optimizer_meta = None
    if checkpoint.optimizer is not None:
        optimizer_tensors, optimizer_meta = _optimizer_tensors(checkpoint.optimizer)
        tensors.update(optimizer_tensors)
    meta = {"key": checkpoint.key, "step": checkpoint.step, "losses": checkpoint.losses, "optimizer": optimizer_meta}
    atomic_write(path, lambda temporary: save_file(tensors, str(temporary),
                                                   metadata={METADATA_KEY: json.dumps(meta)}))
    log.debug("checkpoint at step %d: %s", checkpoint.step, path)


def load_checkpoint(path: Path, key: dict) -> Checkpoint | None:
    """The checkpoint at `path` when it is one of the run `key` names; None otherwise (missing, another
    run's, unreadable: the fit starts over, which costs time and loses nothing)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {})[METADATA_KEY])
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types for damaged files
        log.warning("the learning checkpoint %s cannot be read (%s); starting over", path, exc)
        return None
    if meta.get("key") != json.loads(json.dumps(key)):
        log.info("the checkpoint %s belongs to another run; starting over", path)
        return None
    trainable = {k[len("trainable."):]: v for k, v in tensors.items() if k.startswith("trainable.")}
    optimizer = None
    if meta.get("optimizer") is not None:
        optimizer = _optimizer_state({k: v for k, v in tensors.items() if k.startswith("optimizer.")},
                                     meta["optimizer"])
    return Checkpoint(key=meta["key"], step=int(meta["step"]), losses=[float(x) for x in meta["losses"]],
                      tensors=trainable, optimizer=optimizer)
