"""Imported by the scan's forkserver before it forks workers: dlib and its embedded face models are
loaded once there, so each worker starts with them (about 130 MB shared copy-on-write) instead of
importing and reading them again."""

from __future__ import annotations

import logging

from engine.errors import ModelPackError
from engine.faces.dlib_backend import find_dlib_models_dir, load_models

try:
    load_models(find_dlib_models_dir())
except ModelPackError as exc:  # the workers will say so when they need the models
    logging.getLogger(__name__).debug("dlib models not preloaded: %s", exc)
