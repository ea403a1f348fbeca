"""Settings passed down through the engine (never read from globals deep inside).

Paths default to the platform's folders (platformdirs) and can be overridden by the environment
(`FACEME_MODELS`, `FACEME_CATALOG`, `FACEME_DEVICE`, `FACEME_MEMORY`) or explicitly by the caller / command line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs

APP_NAME = "FaceMeStudio"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_cache_dir() -> Path:
    """Where the engine keeps what it can recompute (the prompt embeddings per model pack):
    $FACEME_CACHE, else the platform's user cache folder."""
    env = os.environ.get("FACEME_CACHE")
    return Path(env) if env else Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def default_models_dir() -> Path:
    return Path(os.environ.get("FACEME_MODELS") or default_data_dir() / "models")


def default_catalog_url() -> str:
    env = os.environ.get("FACEME_CATALOG")
    if env:
        return env if "://" in env else f"sqlite:///{Path(env).expanduser().resolve()}"
    return f"sqlite:///{default_data_dir() / 'catalog.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    models_dir: Path = field(default_factory=default_models_dir)
    catalog_url: str = field(default_factory=default_catalog_url)
    #: "auto" (CUDA when available, else Apple's MPS, else CPU), "cpu", "cuda", "cuda:1", "mps", ...
    device: str = field(default_factory=lambda: os.environ.get("FACEME_DEVICE", "auto"))
    #: "auto" (fp16 on CUDA and MPS, fp32 on CPU), "float32", "float16", "bfloat16"
    dtype: str = "auto"
    #: what stays on the GPU: "auto" (chosen from free memory at load), "full", "balanced", "low"
    memory: str = field(default_factory=lambda: os.environ.get("FACEME_MEMORY", "auto"))

    def with_overrides(self, **changes) -> Settings:
        """A copy with the given fields replaced, skipping None values (unset CLI options)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
