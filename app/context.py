"""What every page shares: preferences, the job runner, the one model, thumbnails, the catalog."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.messages import UserMessage
from app.model_service import ModelLoader, SharedModel, load_restoration_service
from app.preferences import Preferences
from app.thumbnails import ThumbnailLoader, ThumbnailReader, engine_thumbnail
from app.workers import JobRunner
from engine.settings import Settings

log = logging.getLogger(__name__)


class AppContext(QObject):
    #: ask the main window to show a page ("library", "people", "references", "restore", "queue", ...)
    navigate = Signal(str)
    #: the catalog's photos or people changed (after a scan or a correction): views reload
    catalog_changed = Signal()
    #: a problem to show in the window's banner
    error = Signal(object)
    #: open a photo in the Restore page
    open_photo = Signal(Path)
    #: Settings were saved
    preferences_changed = Signal()

    def __init__(self, preferences: Preferences, preferences_path: Path | None, log_path: Path | None = None,
                 model_loader: ModelLoader = load_restoration_service,
                 thumbnail_reader: ThumbnailReader = engine_thumbnail, model: SharedModel | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.preferences = preferences
        self.preferences_path = preferences_path
        self.log_path = log_path
        self.runner = JobRunner(self)
        #: shared by every job; tests may pass one shared by several windows
        self.model = model if model is not None else SharedModel(model_loader)
        self._owns_model = model is None
        self.thumbnails = ThumbnailLoader(thumbnail_reader, self)
        self._catalog = None
        self._catalog_url: str | None = None
        self._catalog_lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        return self.preferences.engine_settings()

    def catalog(self):
        """The open catalog (opened on first use; call from a worker: opening may migrate it)."""
        from engine.catalog.db import open_catalog

        with self._catalog_lock:
            url = self.preferences.catalog_url
            if self._catalog is None or self._catalog_url != url:
                if self._catalog is not None:
                    self._catalog.close()
                log.info("opening the catalog %s", url)
                self._catalog = open_catalog(url)
                self._catalog_url = url
            return self._catalog

    def warm_up(self) -> None:
        """Load the engine's libraries in the background (the first restoration then starts at once)."""
        from app.model_service import warm_up

        self.runner.run(warm_up, "Loading the engine")

    def save_preferences(self) -> None:
        if self.preferences_path is not None:
            self.preferences.save(self.preferences_path)
        self.preferences_changed.emit()

    def report(self, message: UserMessage) -> None:
        self.error.emit(message)

    def shutdown(self) -> bool:
        """Stop every job (cancelling between steps), the thumbnail thread, and close the catalog."""
        stopped = self.runner.shutdown()
        self.thumbnails.shutdown()
        with self._catalog_lock:
            if self._catalog is not None:
                self._catalog.close()
                self._catalog = None
        if self._owns_model:
            self.model.release()
        return stopped
