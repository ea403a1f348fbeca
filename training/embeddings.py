"""Per-image ArcFace + CLIP embeddings, computed once (`precompute`) and read by training.

Storage (`embeddings_dir/`):
- `index.json`: the ordered image keys, the shard size and the encoder files;
- `shard_<k>.safetensors`: rows [k·S, (k+1)·S) of the index: `arcface` (n, 512), `clip` (n, 2048)
  (float16: 3.5 GB for the 685K FFHQ + FFHQRef images), `found` (n,) uint8 — 0 where no face was detected.

Shards are written atomically, so an interrupted `precompute` resumes at the first missing shard.
Running it again with a different image list is refused rather than silently mixing two indexes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from engine.errors import NoFaceError, UsageError
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report

log = logging.getLogger(__name__)

INDEX_FILE = "index.json"
STORE_DTYPE = torch.float16


class ReferenceEmbedder(Protocol):
    """Image file → (clip (Dc,), arcface (Da,)) as float32 arrays, or None when no face is found."""

    clip_dim: int
    arcface_dim: int

    def __call__(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None: ...


class EngineReferenceEmbedder:
    """The engine's reference preprocessing (antelopev2 detection with retries, largest face, ArcFace,
    bounding-box crop → CLIP image encoder), stopping before Mix — Mix is what stage I trains."""

    def __init__(self, analyzer, id_encoder):
        self.analyzer = analyzer
        self.id_encoder = id_encoder
        self.clip_dim = int(id_encoder.output_dim)
        self.arcface_dim = 0  # known after the first face

    @torch.no_grad()
    def __call__(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        from engine.faceme.id_encoder import clip_preprocess
        from engine.faceme.references import prepare_reference

        try:
            ref = prepare_reference(self.analyzer, Path(path))
        except NoFaceError:
            return None
        param = next(self.id_encoder.parameters())
        pixels = torch.from_numpy(clip_preprocess(ref.clip_crop, self.id_encoder.image_size))[None]
        clip = self.id_encoder(pixels.to(device=param.device, dtype=param.dtype))[0].float().cpu().numpy()
        self.arcface_dim = int(ref.arcface.shape[0])
        return clip, np.asarray(ref.arcface, np.float32)


def _shard_path(folder: Path, k: int) -> Path:
    return folder / f"shard_{k:05d}.safetensors"


def precompute(images: dict[str, Path], out_dir: Path, embedder: ReferenceEmbedder, shard_size: int = 1024,
               progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
               encoder_info: dict | None = None, part: tuple[int, int] = (0, 1)) -> int:
    """Embed every image of `images` (key → file) into `out_dir`; returns the number of shards written
    by this call (0 when everything was already there).

    `part=(i, n)` writes only the shards k with k mod n == i, so n processes (or machines sharing the
    folder) can split the work; each refuses a folder made for another image list."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = sorted(images)
    index_path = out_dir / INDEX_FILE
    if index_path.exists():
        existing = json.loads(index_path.read_text(encoding="utf-8"))
        if existing["keys"] != keys or existing["shard_size"] != shard_size:
            raise UsageError("the embeddings folder was made for a different image list or shard size; "
                             "use a new folder or delete it", out_dir)
    else:
        tmp_index = index_path.with_name(f"{INDEX_FILE}.{part[0]}.tmp")
        tmp_index.write_text(json.dumps({"keys": keys, "shard_size": shard_size, "encoders": encoder_info or {}},
                                        indent=0), encoding="utf-8")
        tmp_index.replace(index_path)
    n_shards = (len(keys) + shard_size - 1) // shard_size
    written = 0
    done = sum(len(keys[k * shard_size:(k + 1) * shard_size])
               for k in range(n_shards) if _shard_path(out_dir, k).exists())
    for k in range(n_shards):
        target = _shard_path(out_dir, k)
        if target.exists() or k % part[1] != part[0]:
            continue
        rows = keys[k * shard_size:(k + 1) * shard_size]
        clips, arcs, found = [], [], []
        for key in rows:
            check_cancelled(cancel, "embedding precomputation")
            result = embedder(images[key])
            if result is None:
                log.warning("%s: no face detected; not used as a reference", images[key])
                clips.append(None), arcs.append(None), found.append(0)
            else:
                clips.append(result[0]), arcs.append(result[1]), found.append(1)
            done += 1
            report(progress, done, len(keys), images[key].name)
        clip_dim = next((c.shape[0] for c in clips if c is not None), embedder.clip_dim)
        arc_dim = next((a.shape[0] for a in arcs if a is not None), embedder.arcface_dim or 512)
        clip = np.stack([c if c is not None else np.zeros(clip_dim, np.float32) for c in clips])
        arc = np.stack([a if a is not None else np.zeros(arc_dim, np.float32) for a in arcs])
        tmp = target.with_name(target.name + ".tmp")
        save_file({"clip": torch.from_numpy(clip).to(STORE_DTYPE), "arcface": torch.from_numpy(arc).to(STORE_DTYPE),
                   "found": torch.tensor(found, dtype=torch.uint8)}, str(tmp))
        tmp.replace(target)
        written += 1
    log.info("precompute: %d shard(s) written to %s (%d images)", written, out_dir, len(keys))
    return written


@dataclass
class EmbeddingTable:
    """All embeddings in memory: key → row of `clip` (N, Dc) and `arcface` (N, Da)."""

    rows: dict[str, int]
    clip: torch.Tensor
    arcface: torch.Tensor
    found: torch.Tensor

    @classmethod
    def load(cls, folder: Path) -> EmbeddingTable:
        folder = Path(folder)
        index_path = folder / INDEX_FILE
        if not index_path.is_file():
            raise UsageError("no precomputed embeddings here; run `python -m training precompute` first", folder)
        index = json.loads(index_path.read_text(encoding="utf-8"))
        keys, size = index["keys"], index["shard_size"]
        n_shards = (len(keys) + size - 1) // size
        missing = [k for k in range(n_shards) if not _shard_path(folder, k).exists()]
        if missing:
            raise UsageError(f"{len(missing)} of {n_shards} embedding shards are missing; "
                             "run `precompute` again to finish", folder)
        shards = [load_file(str(_shard_path(folder, k))) for k in range(n_shards)]
        return cls(rows={key: i for i, key in enumerate(keys)},
                   clip=torch.cat([s["clip"] for s in shards]),
                   arcface=torch.cat([s["arcface"] for s in shards]),
                   found=torch.cat([s["found"] for s in shards]).bool())

    def has_face(self, key: str) -> bool:
        row = self.rows.get(key)
        return row is not None and bool(self.found[row])

    def lookup(self, keys: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(clip (K, Dc), arcface (K, Da)) as float32, in the order of `keys`."""
        try:
            idx = torch.tensor([self.rows[k] for k in keys], dtype=torch.long)
        except KeyError as exc:
            raise UsageError(f"no precomputed embedding for {exc.args[0]}; run `precompute` again") from None
        return self.clip[idx].float(), self.arcface[idx].float()
