"""The main window: a side bar of pages, a banner for messages, menus, drag and drop."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QFrame, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMainWindow,
                               QMessageBox, QStackedWidget, QVBoxLayout, QWidget)

from app import theme
from app.context import AppContext
from app.messages import UserMessage
from app.widgets.common import Banner, label
from engine import __version__

log = logging.getLogger(__name__)

#: file name endings the app opens as photos (the engine reads these; see engine.imageio)
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif", ".bmp", ".gif"}


def is_photo(path: Path) -> bool:
    return path.suffix.lower() in PHOTO_SUFFIXES


class MainWindow(QMainWindow):
    def __init__(self, context: AppContext):
        super().__init__()
        self.context = context
        self.setWindowTitle("FaceMe Studio")
        self.setWindowIcon(theme.app_icon())
        self.resize(1280, 820)
        self.setMinimumSize(960, 640)
        self.setAcceptDrops(True)

        from app.pages.library import LibraryPage
        from app.pages.models import ModelsPage
        from app.pages.people import PeoplePage
        from app.pages.queue import QueuePage
        from app.pages.references import ReferencesPage
        from app.pages.restore import RestorePage
        from app.pages.settings import SettingsPage

        self.library = LibraryPage(context)
        self.people = PeoplePage(context)
        self.references = ReferencesPage(context)
        self.restore = RestorePage(context)
        self.queue = QueuePage(context)
        self.models = ModelsPage(context)
        self.settings_page = SettingsPage(context)
        self.pages = [self.library, self.people, self.references, self.restore, self.queue, self.models,
                      self.settings_page]

        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(self._build_sidebar())
        content = QWidget()
        content.setObjectName("PageArea")
        column = QVBoxLayout(content)
        column.setContentsMargins(28, 22, 28, 18)
        column.setSpacing(12)
        self.banner = Banner()
        self.banner.action_clicked.connect(self.show_page)
        column.addWidget(self.banner)
        self.stack = QStackedWidget()
        for page in self.pages:
            self.stack.addWidget(page)
        column.addWidget(self.stack, 1)
        row.addWidget(content, 1)
        self.setCentralWidget(central)
        self._build_menus()
        # busy or ready sits in a corner of its own: a message shown on the bar ("Settings saved", a
        # scan's summary) stays for its time instead of being replaced by the next job's "Working…"
        self.busy_label = label("Ready", "Muted")
        self.statusBar().addPermanentWidget(self.busy_label)

        context.navigate.connect(self.show_page)
        context.error.connect(self.show_error)
        context.open_photo.connect(self._open_in_restore)
        context.runner.busy_changed.connect(self._busy_changed)
        self.show_page("library")

    # --- layout --------------------------------------------------------------------------------
    def _build_sidebar(self) -> QWidget:
        bar = QFrame()
        bar.setObjectName("Sidebar")
        bar.setFixedWidth(220)
        layout = QVBoxLayout(bar)
        layout.setContentsMargins(0, 18, 0, 14)
        layout.setSpacing(6)
        head = QHBoxLayout()
        head.setContentsMargins(18, 0, 12, 8)
        logo = QLabel()
        logo.setPixmap(theme.app_icon().pixmap(34, 34))
        head.addWidget(logo)
        names = QVBoxLayout()
        names.setSpacing(0)
        names.addWidget(label("FaceMe Studio", "AppName"))
        names.addWidget(label("Family photo restoration", "AppTagline"))
        head.addLayout(names, 1)
        layout.addLayout(head)
        self.nav = QListWidget()
        self.nav.setObjectName("Nav")
        self.nav.setIconSize(QSize(20, 20))
        self.nav.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for page in self.pages:
            item = QListWidgetItem(theme.icon(page.icon_name, "#4a5262", theme.ACCENT_DARK), page.title)
            item.setData(Qt.ItemDataRole.UserRole, page.key)
            item.setSizeHint(QSize(200, 40))
            self.nav.addItem(item)
        self.nav.currentRowChanged.connect(self._row_changed)
        layout.addWidget(self.nav, 1)
        footer = label(f"Version {__version__}\nFaceMe model weights: non-commercial use only", "SidebarFooter",
                       wrap=True)
        footer.setContentsMargins(18, 0, 12, 0)
        layout.addWidget(footer)
        return bar

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_action = QAction(theme.icon("open"), "&Open photo to restore…", self)
        open_action.setShortcut(QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self._choose_photo)
        file_menu.addAction(open_action)
        album_action = QAction(theme.icon("folder-add"), "&Add album folder…", self)
        album_action.triggered.connect(self.library.choose_album)
        file_menu.addAction(album_action)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        view_menu = self.menuBar().addMenu("&View")
        for n, page in enumerate(self.pages, start=1):
            action = QAction(theme.icon(page.icon_name), page.title, self)
            action.setShortcut(QKeySequence(f"Ctrl+{n}"))
            action.triggered.connect(lambda _=False, key=page.key: self.show_page(key))
            view_menu.addAction(action)

        help_menu = self.menuBar().addMenu("&Help")
        self.open_log_action = QAction(theme.icon("log"), "Open &log file", self)
        self.open_log_action.triggered.connect(self.open_log_file)
        help_menu.addAction(self.open_log_action)
        folder_action = QAction(theme.icon("folder"), "Open log &folder", self)
        folder_action.triggered.connect(lambda: self._open_url(self.context.log_path.parent
                                                               if self.context.log_path else None))
        help_menu.addAction(folder_action)
        help_menu.addSeparator()
        about = QAction(theme.icon("help"), "&About FaceMe Studio", self)
        about.triggered.connect(self._about)
        help_menu.addAction(about)

    # --- navigation ----------------------------------------------------------------------------
    def page(self, key: str):
        return next(page for page in self.pages if page.key == key)

    def show_page(self, key: str) -> None:
        if not key:
            return
        index = next((i for i, page in enumerate(self.pages) if page.key == key), None)
        if index is None:
            return
        if self.nav.currentRow() != index:
            self.nav.setCurrentRow(index)  # → _row_changed
        else:
            self._row_changed(index)

    def _row_changed(self, row: int) -> None:
        if row < 0:
            return
        self.stack.setCurrentIndex(row)
        self.pages[row].activated()

    def current_page(self):
        return self.pages[self.stack.currentIndex()]

    # --- messages ------------------------------------------------------------------------------
    def show_error(self, message: UserMessage) -> None:
        self.banner.show_error(message)

    def _busy_changed(self, busy: bool) -> None:
        self.busy_label.setText("Working…" if busy else "Ready")

    # --- files ---------------------------------------------------------------------------------
    def _choose_photo(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a photo to restore", "",
                                              "Photos (" + " ".join(f"*{s}" for s in sorted(PHOTO_SUFFIXES)) + ")")
        if path:
            self._open_in_restore(Path(path))

    def _open_in_restore(self, path: Path) -> None:
        self.show_page("restore")
        self.restore.open_photo(Path(path))

    def handle_dropped_paths(self, paths: list[Path]) -> None:
        """A dropped folder becomes an album; a dropped photo opens in Restore."""
        folders = [p for p in paths if p.is_dir()]
        photos = [p for p in paths if p.is_file() and is_photo(p)]
        for folder in folders:
            self.library.add_album(folder)
        if folders and not photos:
            self.show_page("library")
        if photos:
            self._open_in_restore(photos[0])
        if not folders and not photos:
            self.banner.show_message("info", "Nothing to open",
                                     "Drop a photo (JPEG, PNG, TIFF, WebP, HEIC) to restore it, "
                                     "or a folder to add it as an album.")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.handle_dropped_paths(paths)

    def open_log_file(self) -> bool:
        return self._open_url(self.context.log_path)

    def _open_url(self, path: Path | None) -> bool:
        if path is None:
            return False
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    def _about(self) -> None:
        QMessageBox.about(
            self, "About FaceMe Studio",
            f"<b>FaceMe Studio {__version__}</b><p>Restores the faces in family photos so that they still "
            "look like the person, using FaceMe (AAAI 2025) guided by reference photos you choose.</p>"
            "<p>The program is Apache-2.0. The FaceMe and InsightFace model weights are licensed for "
            "non-commercial use only.</p>")

    # --- closing -------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Stop running work between steps; a batch resumes from its job table at the next start."""
        self.stop_work()
        event.accept()

    def stop_work(self) -> None:
        """Stop every job (between photos, or at a denoising step) and wait for every thread, once. Called
        on close, and by main() after the event loop ends (a quit that closed no window)."""
        if self.context.runner.closing:
            return
        if self.context.runner.is_busy():
            self.statusBar().showMessage("Stopping the running jobs…")
            log.info("closing while %d job(s) run: cancelling them", len(self.context.runner.jobs))
        for page in self.pages:
            page.shutdown()
        stopped = self.context.shutdown()
        log.info("closed (jobs stopped cleanly: %s)", stopped)
