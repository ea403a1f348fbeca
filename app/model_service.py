"""The one FaceMe model of the process — an engine RestorationService (pipeline + face analyzer + identity
tokens) — shared by every job and reloaded when the model folder, device or GPU memory mode changes.

Loading takes seconds to minutes (gigabytes of weights), so it happens once, inside whichever worker
first needs the model, never on the GUI thread. Jobs use the model one at a time (`use()` holds a
lock): on a single GPU or on CPU running two restorations at once only makes both slower.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from engine.progress import ProgressCallback
from engine.settings import Settings

log = logging.getLogger(__name__)

#: load(settings, progress) -> a loaded engine.restore.service.RestorationService
ModelLoader = Callable[[Settings, ProgressCallback | None], Any]


_quiet_lock = threading.Lock()
_quiet_depth = 0


@contextmanager
def quiet_gc() -> Iterator[None]:
    """No automatic garbage collection while inside; what is alive at the end is frozen (see below).

    For loading models and importing the big libraries: they create hundreds of thousands of objects
    that live all session, and each full collection triggered meanwhile would walk all of them while
    holding the GIL, stalling the GUI thread. The few cycles created meanwhile stay (frozen) in memory.
    """
    global _quiet_depth
    with _quiet_lock:
        _quiet_depth += 1
        gc.disable()
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            gc.freeze()
            if _quiet_depth == 0:
                gc.enable()


def warm_up(progress: ProgressCallback | None = None, cancel=None) -> None:
    """Import the engine's heavy libraries in a worker at start-up, so that the first restoration or
    scan neither waits for them nor pauses the GUI while they load."""
    with quiet_gc():
        import engine.faceme.pipeline  # noqa: F401 - torch, diffusers, transformers
        import engine.faces.dlib_backend  # noqa: F401
        import engine.faces.insightface_backend  # noqa: F401 - onnxruntime
        import engine.imageio  # noqa: F401
        import engine.restore.service  # noqa: F401
        import engine.restore.identity_check  # noqa: F401
        import engine.faces.recognizer_process  # noqa: F401
        import multiprocessing.spawn  # noqa: F401 - the identity check's recogniser process


def freeze_long_lived_objects() -> None:
    """Move everything alive now out of the garbage collector's sight (gc.freeze).

    A full collection walks every object: with torch, diffusers and transformers loaded that is over half
    a million objects, and the walk holds the GIL for up to a second, freezing the GUI thread with it
    (measured: 500-900 ms pauses during a restoration). The app's modules and a loaded model live for the
    whole session, so freezing them once after start-up and after each model load keeps collections short.
    """
    gc.freeze()


def load_restoration_service(settings: Settings, progress: ProgressCallback | None = None) -> Any:
    """The engine's service for the settings' models folder, device, precision and memory mode, loaded
    (the one way every front end loads FaceMe: engine.restore.service.get_service)."""
    from engine.restore.service import get_service

    # the identity check's dlib recogniser holds the GIL while it computes: in a child process, so the
    # window stays responsive (engine.faces.recognizer_process)
    return get_service(settings.models_dir, settings.device, settings.dtype, settings.memory,
                       isolate_check=True).load()


def _key(settings: Settings) -> tuple:
    return (str(settings.models_dir), settings.device, settings.dtype, settings.memory)


class SharedModel:
    def __init__(self, loader: ModelLoader = load_restoration_service):
        self._loader = loader
        self._lock = threading.RLock()
        self._model: Any = None
        self._loaded_for: tuple | None = None
        self.loads = 0  # how many times a model was loaded (a test checks that jobs share one)

    @property
    def loaded_for(self) -> tuple | None:
        return self._loaded_for

    def is_loaded_for(self, settings: Settings) -> bool:
        return self._model is not None and self._loaded_for == _key(settings)

    def preload(self, settings: Settings, progress: ProgressCallback | None = None) -> None:
        with self.use(settings, progress):
            pass

    @contextmanager
    def use(self, settings: Settings, progress: ProgressCallback | None = None) -> Iterator[Any]:
        """The model for `settings`, loaded or reloaded as needed, held exclusively while inside."""
        with self._lock:
            if self._model is None or self._loaded_for != _key(settings):
                self._release_locked()
                log.info("loading the FaceMe model from %s on %s", settings.models_dir, settings.device)
                if progress is not None:
                    progress(0, 0, "Loading the FaceMe model…")
                with quiet_gc():
                    self._model = self._loader(settings, progress)
                self._loaded_for = _key(settings)
                self.loads += 1
                freeze_long_lived_objects()
            yield self._model

    def release(self) -> None:
        """Drop the model (after the job using it, if any, has finished with it)."""
        with self._lock:
            self._release_locked()

    def _release_locked(self) -> None:
        if self._model is None:
            return
        log.info("releasing the FaceMe model loaded for %s", self._loaded_for)
        from engine.restore.service import release_service

        release_service(self._model)  # else the engine's per-process cache would keep it in memory
        self._model = None
        self._loaded_for = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
