"""Library: album folders, scanning them into the catalog, a thumbnail grid, a photo viewer.

It shows the catalog as it is, whoever wrote it: albums scanned with `faceme scan` are listed beside the
app's own, and the face model the catalog's faces come from is named, with the explicit step to move the
album to a better installed model (a re-analysis that keeps people; never started by anything else)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (QFileDialog, QFrame, QHBoxLayout, QListWidget, QListWidgetItem, QMessageBox,
                               QStackedWidget, QVBoxLayout)

from app import catalog_views, people_actions, theme
from app.catalog_views import FaceModelView, LibraryView, PhotoRow
from app.pages.base import Page
from app.widgets.canvas import ImageCanvas
from app.widgets.common import EmptyState, ProgressRow, button, label
from app.widgets.thumbgrid import GridItem, ThumbnailGrid, ThumbnailModel
from engine.text import plural

log = logging.getLogger(__name__)

ALL_PHOTOS = ""
#: what an album entry of the list is: the user's own album, or one only the catalog knows
KindRole = Qt.ItemDataRole.UserRole + 1
APP_ALBUM, OUTSIDE_ALBUM = "app", "outside"
OUTSIDE_TOOLTIP = ("{folder}\nIn the catalog, though not one of your albums here: scanned with `faceme scan` "
                   "(or the folder of a reference photo added from disk). Add it as an album to scan it from here.")


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
        #: albums the catalog holds that are none of the app's (scanned with the CLI), as last loaded
        self.outside: list[str] = []
        self.face_model: FaceModelView | None = None
        self._scan_job = None
        self._reanalysis_job = None
        self._load_job = None
        self._pending_scan = False
        self.add_button = self.header.add_action(button("Add album…", "folder-add"))
        self.add_button.clicked.connect(self.choose_album)
        self.scan_button = self.header.add_action(button("Scan for changes", "scan", primary=True))
        self.scan_button.clicked.connect(self.scan)

        self.progress = ProgressRow()
        self.progress.cancel_clicked.connect(self.cancel_scan)
        self.layout_.addWidget(self.progress)
        self.layout_.addLayout(self._build_face_model_row())

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

    def _build_face_model_row(self) -> QHBoxLayout:
        """"Faces found with dlib" and, when a better pack is installed, the button that moves the album."""
        row = QHBoxLayout()
        row.setSpacing(12)
        self.face_model_label = label("", "Muted")
        self.face_model_label.hide()
        row.addWidget(self.face_model_label)
        self.reanalyse_button = button("", "retry")
        self.reanalyse_button.clicked.connect(self.start_reanalysis)
        self.reanalyse_button.hide()
        row.addWidget(self.reanalyse_button)
        row.addStretch(1)
        return row

    # --- albums --------------------------------------------------------------------------------
    def _fill_albums(self) -> None:
        current = self.current_album()
        self.albums.blockSignals(True)
        self.albums.clear()
        all_item = QListWidgetItem(theme.icon("library"), "All photos")
        all_item.setData(Qt.ItemDataRole.UserRole, ALL_PHOTOS)
        self.albums.addItem(all_item)
        for folder in self.context.preferences.albums:
            self.albums.addItem(self._album_item(folder, APP_ALBUM, folder))
        if self.outside:
            heading = QListWidgetItem("Scanned elsewhere")
            heading.setFlags(Qt.ItemFlag.NoItemFlags)  # a heading, not an album
            heading.setToolTip("Albums in the catalog that were scanned outside the app (faceme scan)")
            self.albums.addItem(heading)
            for folder in self.outside:
                self.albums.addItem(self._album_item(folder, OUTSIDE_ALBUM, OUTSIDE_TOOLTIP.format(folder=folder)))
        rows = [self.albums.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.albums.count())]
        self.albums.setCurrentRow(rows.index(current) if current in rows else 0)
        self.albums.blockSignals(False)
        self._update_actions()

    @staticmethod
    def _album_item(folder: str, kind: str, tooltip: str) -> QListWidgetItem:
        item = QListWidgetItem(theme.icon("folder"), Path(folder).name or folder)
        item.setToolTip(tooltip)
        item.setData(Qt.ItemDataRole.UserRole, folder)
        item.setData(KindRole, kind)
        return item

    def _update_actions(self) -> None:
        busy = self._scan_job is not None or self._reanalysis_job is not None
        pending = self.context.preferences.reanalysis_pending
        self.scan_button.setEnabled(bool(self.context.preferences.albums) and not busy and not pending)
        self.scan_button.setToolTip(f"Finish the re-analysis with {pending} first (the button below the title)"
                                    if pending else "Scan your albums for new and changed photos")
        self.remove_album_button.setEnabled(self.current_album_kind() == APP_ALBUM)
        self.reanalyse_button.setEnabled(not busy)

    def current_album_kind(self) -> str | None:
        item = self.albums.currentItem()
        return item.data(KindRole) if item is not None else None

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
        prefs = self.context.preferences
        if folder_text not in prefs.albums:
            prefs.albums.append(folder_text)
            if folder_text in prefs.removed_albums:
                prefs.removed_albums.remove(folder_text)
            self.context.save_preferences()
        self._fill_albums()
        self.scan()

    def remove_selected_album(self) -> None:
        folder = self.current_album()
        prefs = self.context.preferences
        if folder and folder in prefs.albums:
            prefs.albums.remove(folder)
            # its photos stay in the catalog: without this it would come back as an album scanned elsewhere
            if folder not in prefs.removed_albums:
                prefs.removed_albums.append(folder)
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
        if self._reanalysis_job is not None or self.context.preferences.reanalysis_pending:
            # a scan now would store the photos not yet re-analysed with the new model without carrying
            # their people over; the album is scanned once the re-analysis is done
            self._pending_scan = True
            self.window().statusBar().showMessage("The album is scanned once the re-analysis has finished.", 8000)
            return
        context = self.context
        self.progress.start("Looking for photos…")
        self._scan_job = context.runner.run(
            lambda progress, cancel: people_actions.scan_albums(context.catalog(), roots, progress, cancel,
                                                                workers=context.preferences.scan_workers,
                                                                models_dir=context.preferences.models_dir),
            "Scanning albums", on_result=self._scanned, on_failed=context.report,
            on_progress=self._scan_progress, on_cancelled=lambda: self.window().statusBar().showMessage(
                "Scan stopped; what was scanned is kept.", 6000),
            on_finished=self._scan_finished)
        self._update_actions()

    def _scan_progress(self, done: int, total: int, message: str) -> None:
        text = f"Scanning {done} of {plural(total, 'photo')}" if total else "Looking for photos…"
        self.progress.update_progress(done, total, f"{text} — {message}" if message and total else text)

    def _scanned(self, result) -> None:
        self.last_scan = result
        text = (f"Scan finished: {plural(result.files, 'photo')}, {result.added} new, "
                f"{plural(result.faces_added, 'face')} found")
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
        """The progress row's Cancel: stops the scan or the re-analysis, whichever runs."""
        for job in (self._scan_job, self._reanalysis_job):
            if job is not None:
                job.cancel()

    def is_scanning(self) -> bool:
        return self._scan_job is not None

    # --- the face model, and moving the album to a better one ------------------------------------
    def refresh_face_model(self) -> None:
        context, models_dir = self.context, self.context.preferences.models_dir
        context.runner.run(lambda progress, cancel: catalog_views.face_model_view(context.catalog(), models_dir),
                           "Reading the face model", on_result=self._show_face_model, on_failed=context.report)

    def _show_face_model(self, view: FaceModelView) -> None:
        self.face_model = view
        pending = self.context.preferences.reanalysis_pending
        if view.unfinished is not None:  # stopped part-way, here or with `faceme catalog reanalyse`
            self.face_model_label.setText(f"{view.unfinished.text()} — re-analyse to finish")
            target = view.unfinished_pack
            self.face_model_label.setToolTip(
                f"A re-analysis with {view.analyser} stopped part-way. Until it goes on, those photos keep their "
                "faces and people as they were." + ("" if target else f" Install {view.analyser} (Models page) or "
                                                                      f"run `{view.unfinished.command()}` to finish."))
        elif pending:
            self.face_model_label.setText(f"Faces partly found with {pending}: the re-analysis stopped part-way")
            self.face_model_label.setToolTip("Continue it to move the rest of the album; scans wait until then.")
        elif view.analyser:
            self.face_model_label.setText(f"Faces found with {view.analyser}")
            self.face_model_label.setToolTip(f"The catalog's face model: {view.model}. Every scan uses it, in the "
                                             "app and with faceme scan, so that all the album's faces compare.")
        self.face_model_label.setVisible(bool(view.analyser or pending or view.unfinished))
        pack = self.offered_pack()
        if pack:
            self.reanalyse_button.setText(self._reanalyse_text(pack))
            self.reanalyse_button.setToolTip(self._estimate_text(pack))
        self.reanalyse_button.setVisible(bool(pack))
        self._update_actions()

    def offered_pack(self) -> str | None:
        """The pack to re-analyse with: one a stopped re-analysis began with (here, or from the CLI), else a
        better installed one."""
        view = self.face_model
        return (self.context.preferences.reanalysis_pending or (view.unfinished_pack or view.better_pack if view
                                                                else None))

    def reanalysis_unfinished(self) -> bool:
        """A re-analysis stopped part-way (here, or with `faceme catalog reanalyse`)."""
        return bool(self.context.preferences.reanalysis_pending
                    or (self.face_model is not None and self.face_model.unfinished is not None))

    def _minutes(self, pack: str) -> int:
        return self.face_model.minutes(pack, self.context.preferences.scan_workers) if self.face_model else 1

    def _reanalyse_text(self, pack: str) -> str:
        minutes = self._minutes(pack)
        about = f"about {plural(minutes, 'minute')}"
        if self.reanalysis_unfinished():
            return f"Continue re-analysing the album with {pack} ({about})"
        return f"Re-analyse the album with {pack} (better accuracy, {about})"

    def _estimate_text(self, pack: str) -> str:
        cores = self.context.preferences.scan_workers or os.cpu_count() or 1
        per_photo = catalog_views.REANALYSIS_SECONDS_PER_PHOTO.get(pack, 1.0)
        return (f"The time is an estimate from the number of photos in the catalog (about {per_photo:g} s per "
                f"photo on each of {plural(cores, 'process', 'processes')}), not a measurement.")

    def start_reanalysis(self) -> None:
        """Move the whole album to the offered pack, after the user confirmed: people, names, confirmations,
        rejections and references are kept. Only this button starts it."""
        pack = self.offered_pack()
        if not pack or self._reanalysis_job is not None or self._scan_job is not None:
            return
        if not self.confirm_reanalysis(pack, self._minutes(pack)):
            return
        context, prefs = self.context, self.context.preferences
        models_dir, workers = prefs.models_dir, prefs.scan_workers
        prefs.reanalysis_pending = pack  # remembered until it finishes: a stop or a quit offers to go on
        context.save_preferences()
        self.progress.start(f"Re-analysing the album with {pack}…")
        self._reanalysis_job = context.runner.run(
            lambda progress, cancel: people_actions.reanalyse_album(context.catalog(), pack, models_dir, progress,
                                                                    cancel, workers),
            f"Re-analysing the album with {pack}", on_result=lambda result: self._reanalysed(pack, result),
            on_failed=context.report, on_progress=self._reanalysis_progress,
            on_cancelled=lambda: self.window().statusBar().showMessage(
                "Re-analysis stopped; what was done is kept. Continue it from the Library.", 8000),
            on_finished=self._reanalysis_finished)
        self._update_actions()

    def confirm_reanalysis(self, pack: str, minutes: int) -> bool:
        """Asks the user first: a re-analysis reads every photo again."""
        about = f"about {plural(minutes, 'minute')}"
        answer = QMessageBox.question(
            self, "Re-analyse the album?",
            f"Find the faces of every photo again with {pack}, for better accuracy in grouping and matching "
            f"people. This takes {about} (an estimate). Every person, name, confirmation, rejection and "
            "reference photo is kept. You can stop it and continue later.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    def _reanalysis_progress(self, done: int, total: int, message: str) -> None:
        text = f"Re-analysing {done} of {plural(total, 'photo')}" if total else "Looking for photos…"
        self.progress.update_progress(done, total, text)

    def _reanalysed(self, pack: str, result) -> None:
        self.context.preferences.reanalysis_pending = ""
        self.context.save_preferences()
        log.info("re-analysed with %s: %s", pack, result.summary())
        self.window().statusBar().showMessage(f"Re-analysed with {pack}; every person kept.", 10000)

    def _reanalysis_finished(self) -> None:
        self._reanalysis_job = None
        self.progress.stop()
        self._update_actions()
        self.context.catalog_changed.emit()  # done or stopped part-way, photos have new faces: views reload
        if self._pending_scan and not self.context.preferences.reanalysis_pending:
            self._pending_scan = False
            self.scan()

    def is_reanalysing(self) -> bool:
        return self._reanalysis_job is not None

    # --- the grid ------------------------------------------------------------------------------
    def activated(self) -> None:
        if not self._loaded_once:
            self.reload()
        else:  # a pack may have been installed meanwhile: the offer to move the album follows
            self.refresh_face_model()

    def reload(self) -> None:
        """Albums scanned elsewhere, the chosen album's photos and the face model, read in one job."""
        context, prefs = self.context, self.context.preferences
        albums, removed, models_dir = list(prefs.albums), list(prefs.removed_albums), prefs.models_dir
        selected = self.current_album()
        self._loaded_once = True
        self._load_job = context.runner.run(
            lambda progress, cancel: catalog_views.library_view(context.catalog(), albums, removed, selected,
                                                                models_dir),
            "Loading the album", on_result=self._show_library, on_failed=context.report)

    def _show_library(self, view: LibraryView) -> None:
        if view.outside_albums != self.outside:
            self.outside = view.outside_albums
            self._fill_albums()
        self._show_face_model(view.face_model)
        if not self.context.preferences.albums and not self.outside:
            self.stack.setCurrentWidget(self.empty)
            return
        self._show_photos(view.photos)

    def _show_photos(self, photos: list[PhotoRow]) -> None:
        self.photos = photos
        items = []
        for photo in photos:
            subtitle = ("could not be read" if photo.status == "unreadable" else
                        plural(photo.faces, "face") if photo.faces else "no faces")
            items.append(GridItem(key=photo.id, title=photo.path.name, subtitle=subtitle,
                                  image=photo.thumbnail if photo.thumbnail and photo.thumbnail.exists() else photo.path,
                                  payload=photo, tooltip=f"{photo.path}\n{photo.error or ''}".strip()))
        self.model.set_items(items)
        n_faces = sum(p.faces for p in photos)
        self.count_label.setText(f"{plural(len(photos), 'photo')} · {plural(n_faces, 'face')}")
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
