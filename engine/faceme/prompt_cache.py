"""The fixed prompt's embeddings, computed once per model pack and kept on disk.

FaceMe's prompt never changes ("A photo of face."), so its SDXL embeddings (both text encoders'
penultimate hidden states, and the pooled output of the second) are a property of the pack. They are
encoded once, saved to a small safetensors file keyed by the pack's fingerprint, and later loads read
that file instead of loading the two text encoders (about 1.6 GB in fp16) at all.

The key covers what the embeddings depend on: the text encoders' and tokenizers' files (relative
path, size and modification time: a replaced file changes the key), the prompt, and the dtype and
device type they were computed in (fp16 on CUDA differs from fp32 on the CPU by float noise; the
cache returns exactly what the uncached path would compute on the same device).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch

from engine.faceme.conditioning import PROMPT, TIME_IDS, EncodedPrompt, PromptEmbeddings

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
TEXT_FOLDERS = ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")


def text_fingerprint(base_dir: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime in ns) of every file the prompt embeddings depend on."""
    entries = []
    for folder in TEXT_FOLDERS:
        root = Path(base_dir) / folder
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file():
                stat = path.stat()
                entries.append((path.relative_to(base_dir).as_posix(), stat.st_size, stat.st_mtime_ns))
    return entries


def cache_key(base_dir: Path, dtype: torch.dtype, device: torch.device, prompt: str = PROMPT) -> str:
    material = json.dumps({"version": FORMAT_VERSION, "files": text_fingerprint(base_dir), "prompt": prompt,
                           "dtype": str(dtype), "device": torch.device(device).type}, sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def cache_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / "prompt-embeddings" / f"{key}.safetensors"


def load_cached_prompt(path: Path, device: torch.device, dtype: torch.dtype) -> EncodedPrompt | None:
    """The cached prompt, or None when there is no usable file (a broken one is logged and ignored)."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as data:
            embeds, pooled = data.get_tensor("embeds"), data.get_tensor("pooled")
            position = int(data.metadata()["identity_position"])
    except Exception as exc:  # a truncated or foreign file: recompute, never fail a restoration on a cache
        log.warning("prompt cache %s unreadable (%s: %s); encoding the prompt again", path,
                    exc.__class__.__name__, exc)
        return None
    time_ids = torch.tensor([TIME_IDS], device=device, dtype=dtype)
    plain = PromptEmbeddings(embeds.to(device=device, dtype=dtype), pooled.to(device=device, dtype=dtype), time_ids)
    return EncodedPrompt(plain=plain, identity_position=position)


def save_prompt(path: Path, prompt: EncodedPrompt) -> None:
    """Write atomically (temporary file, then rename): concurrent loads see the old file or the new."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({"embeds": prompt.plain.embeds.detach().cpu().contiguous(),
               "pooled": prompt.plain.pooled.detach().cpu().contiguous()},
              str(tmp), metadata={"identity_position": str(prompt.identity_position)})
    os.replace(tmp, path)
