"""Library: album folders, scanning them into the catalog, a thumbnail grid, a photo viewer."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (QFileDialog, QFrame, QHBoxLayout, QListWidget, QListWidgetItem, QStackedWidget,
                               QVBoxLayout)

from app import catalog_views, people_actions, theme
from app.catalog_views import PhotoRow
from app.pages.base import Page
from app.widgets.canvas import ImageCanvas
from app.widgets.common import EmptyState, ProgressRow, button, label
from app.widgets.thumbgrid import GridItem, ThumbnailGrid, ThumbnailModel

log = logging.getLogger(__name__)

ALL_PHOTOS = ""


def _load_viewer_image(path: Path):
    from app.qimage import preview_image

    return preview_image(catalog_views.photo_pixels(path))[0]


class LibraryPage(Page):
    key = "library"
    title = "Library"
    subtitle = "Your album folders. Scanning finds the faces in every photo and groups them into people."
    icon_name = "library"

    def __init__(self, context, parent=None):
        super().__init__(context, parent)
        self.photos: list[PhotoRow] = []
        self.last_scan = None
        self._scan_job = None
        self._load_job = None
        self._pending_scan = False
        self.add_button = self.header.add_action(button("Add album…", "folder-add"))
        self.add_button.clicked.connect(self.choose_album)
        self.scan_button = self.header.add_action(button("Scan for changes", "scan", primary=True))
        self.scan_button.clicked.connect(self.scan)

        self.progress = ProgressRow()
        self.progress.cancel_clicked.connect(self.cancel_scan)
        self.layout_.addWidget(self.progress)

        body = QHBoxLayout()
        body.setSpacing(16)
        albums_panel = QFrame()
        albums_panel.setObjectName("Panel")
        albums_panel.setFixedWidth(230)
        side = QVBoxLayout(albums_panel)
        side.setContentsMargins(12, 12, 12, 12)
        side.addWidget(label("Albums", "SectionTitle"))
        self.albums = QListWidget()
        self.albums.setIconSize(QSize(18, 18))
        self.albums.setStyleSheet("QListWidget { border: none; }")
        self.albums.currentRowChanged.connect(lambda _row: self.reload())
        side.addWidget(self.albums, 1)
        self.remove_album_button = button("Remove from library", tooltip="The folder and its photos stay on disk")
        self.remove_album_button.clicked.connect(self.remove_selected_album)
        side.addWidget(self.remove_album_button)
        body.addWidget(albums_panel)

        self.stack = QStackedWidget()
        self.empty = EmptyState("library", "No albums yet",
                                "Add a folder of photos (or drop one onto this window). FaceMe Studio finds the "
                                "faces and groups them into people; your photos are never changed.")
        self.empty.add_button(button("Add album…", "folder-add", primary=True)).clicked.connect(self.choose_album)
        self.model = ThumbnailModel(context.thumbnails, thumb_size=256, parent=self)
        self.grid = ThumbnailGrid(self.model, QSize(176, 196), 150)
        self.grid.activated_item.connect(self.show_photo)
        grid_holder = QFrame()
        grid_layout = QVBoxLayout(grid_holder)
        grid_layout.setContentsMargins(0, 0, 0, 0)
        self.count_label = label("", "Muted")
        grid_layout.addWidget(self.count_label)
        grid_layout.addWidget(self.grid, 1)

        viewer = QFrame()
        viewer_layout = QVBoxLayout(viewer)
        viewer_layout.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        back = button("Back to album")
        back.clicked.connect(lambda: self.stack.setCurrentIndex(1))
        bar.addWidget(back)
        self.viewer_title = label("", "SectionTitle")
        bar.addWidget(self.viewer_title, 1)
        self.restore_this = button("Restore this photo", "restore", primary=True)
        self.restore_this.clicked.connect(lambda: self.context.open_photo.emit(self._viewed))
        bar.addWidget(self.restore_this)
        viewer_layout.addLayout(bar)
        self.viewer = ImageCanvas()
        self.viewer.placeholder = "Loading…"
        viewer_layout.addWidget(self.viewer, 1)
        self._viewed: Path | None = None

        self.stack.addWidget(self.empty)
        self.stack.addWidget(grid_holder)
        self.stack.addWidget(viewer)
        body.addWidget(self.stack, 1)
        self.layout_.addLayout(body, 1)
        self._fill_albums()
        context.catalog_changed.connect(self.reload)
        self._loaded_once = False

    # --- albums --------------------------------------------------------------------------------
    def _fill_albums(self) -> None:
        current = self.current_album()
        self.albums.blockSignals(True)
        self.albums.clear()
        all_item = QListWidgetItem(theme.icon("library"), "All photos")
        all_item.setData(Qt.ItemDataRole.UserRole, ALL_PHOTOS)
        self.albums.addItem(all_item)
        for folder in self.context.preferences.albums:
            item = QListWidgetItem(theme.icon("folder"), Path(folder).name or folder)
            item.setToolTip(folder)
            item.setData(Qt.ItemDataRole.UserRole, folder)
            self.albums.addItem(item)
        rows = [self.albums.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.albums.count())]
        self.albums.setCurrentRow(rows.index(current) if current in rows else 0)
        self.albums.blockSignals(False)
        has_albums = bool(self.context.preferences.albums)
        self.scan_button.setEnabled(has_albums and self._scan_job is None)
        self.remove_album_button.setEnabled(has_albums)

    def current_album(self) -> str:
        item = self.albums.currentItem() if hasattr(self, "albums") else None
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else ALL_PHOTOS

    def choose_album(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add an album folder")
        if folder:
            self.add_album(Path(folder))

    def add_album(self, folder: Path) -> None:
        """Remember the folder as an album and scan it."""
        folder_text = os.path.abspath(folder)
        albums = self.context.preferences.albums
        if folder_text not in albums:
            albums.append(folder_text)
            self.context.save_preferences()
        self._fill_albums()
        self.scan()

    def remove_selected_album(self) -> None:
        folder = self.current_album()
        if folder and folder in self.context.preferences.albums:
            self.context.preferences.albums.remove(folder)
            self.context.save_preferences()
            self._fill_albums()
            self.reload()

    # --- scanning ------------------------------------------------------------------------------
    def scan(self) -> None:
        roots = list(self.context.preferences.albums)
        if not roots:
            return
        if self._scan_job is not None:
            self._pending_scan = True  # an album was added during a scan: scan again afterwards
            return
        context = self.context
        self.progress.start("Looking for photos…")
        self.scan_button.setEnabled(False)
        self._scan_job = context.runner.run(
            lambda progress, cancel: people_actions.scan_albums(context.catalog(), roots, progress, cancel,
                                                                workers=context.preferences.scan_workers,
                                                                models_dir=context.preferences.models_dir),
            "Scanning albums", on_result=self._scanned, on_failed=context.report,
            on_progress=self._scan_progress, on_cancelled=lambda: self.window().statusBar().showMessage(
                "Scan stopped; what was scanned is kept.", 6000),
            on_finished=self._scan_finished)

    def _scan_progress(self, done: int, total: int, message: str) -> None:
        text = f"Scanning {done} of {total} photos" if total else "Looking for photos…"
        self.progress.update_progress(done, total, f"{text} — {message}" if message and total else text)

    def _scanned(self, result) -> None:
        self.last_scan = result
        text = f"Scan finished: {result.files} photos, {result.added} new, {result.faces_added} faces found"
        if result.unreadable:
            text += f", {len(result.unreadable)} could not be read (see Help → Log file)"
            for path, reason in result.unreadable:
                log.warning("unreadable photo %s: %s", path, reason)
        self.window().statusBar().showMessage(text + ".", 10000)
        self.context.catalog_changed.emit()

    def _scan_finished(self) -> None:
        self._scan_job = None
        self.progress.stop()
        self._fill_albums()
        if self._pending_scan:
            self._pending_scan = False
            self.scan()

    def cancel_scan(self) -> None:
        if self._scan_job is not None:
            self._scan_job.cancel()

    def is_scanning(self) -> bool:
        return self._scan_job is not None

    # --- the grid ------------------------------------------------------------------------------
    def activated(self) -> None:
        if not self._loaded_once:
            self.reload()

    def reload(self) -> None:
        if not self.context.preferences.albums:
            self.stack.setCurrentWidget(self.empty)
            return
        album = self.current_album()
        roots = [album] if album else list(self.context.preferences.albums)
        context = self.context
        self._loaded_once = True
        self._load_job = context.runner.run(lambda progress, cancel: catalog_views.list_photos(context.catalog(), roots),
                                            "Loading the album", on_result=self._show_photos,
                                            on_failed=context.report)

    def _show_photos(self, photos: list[PhotoRow]) -> None:
        self.photos = photos
        items = []
        for photo in photos:
            subtitle = ("could not be read" if photo.status == "unreadable" else
                        f"{photo.faces} face{'s' if photo.faces != 1 else ''}" if photo.faces else "no faces")
            items.append(GridItem(key=photo.id, title=photo.path.name, subtitle=subtitle,
                                  image=photo.thumbnail if photo.thumbnail and photo.thumbnail.exists() else photo.path,
                                  payload=photo, tooltip=f"{photo.path}\n{photo.error or ''}".strip()))
        self.model.set_items(items)
        n_faces = sum(p.faces for p in photos)
        self.count_label.setText(f"{len(photos)} photos · {n_faces} faces")
        if self.stack.currentIndex() != 2:
            self.stack.setCurrentIndex(1)

    def show_photo(self, item: GridItem) -> None:
        photo: PhotoRow = item.payload
        self._viewed = photo.path
        self.viewer_title.setText(photo.path.name)
        self.viewer.set_image(None)
        self.stack.setCurrentIndex(2)
        self.context.runner.run(lambda progress, cancel: _load_viewer_image(photo.path), f"Opening {photo.path.name}",
                                on_result=self.viewer.set_image, on_failed=self.context.report)
