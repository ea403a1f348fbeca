"""Models: which parts of the model pack are installed, their licences, download and import."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QFrame, QGridLayout, QHBoxLayout,
                               QLabel, QScrollArea, QVBoxLayout, QWidget)

from app import model_pack, theme
from app.model_pack import PartRow, human_size
from app.pages.base import Page
from app.widgets.common import ProgressRow, badge, button, label
from engine.text import plural

log = logging.getLogger(__name__)

_STATE_BADGE = {"present": ("Installed", "Ok"), "missing": ("Not installed", "Warn"), "invalid": ("Damaged", "Bad")}


class LicenceDialog(QDialog):
    """Shows the licences of the parts about to be downloaded; nothing is fetched unless accepted."""

    def __init__(self, rows: list[PartRow], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Licences of the model parts")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        layout.addWidget(label("Before downloading, please read the licence of each part:", "SectionTitle"))
        for row in rows:
            box = QFrame()
            box.setObjectName("Card")
            inner = QVBoxLayout(box)
            head = QHBoxLayout()
            head.addWidget(label(f"<b>{row.title}</b>"))
            head.addStretch(1)
            if row.non_commercial:
                head.addWidget(badge("Non-commercial use only", "Warn"))
            inner.addLayout(head)
            text = label(f"{row.license_name}. {row.license_summary}", "Muted", wrap=True)
            inner.addWidget(text)
            link = QLabel(f'<a href="{row.license_url}">Read the full licence</a>')
            link.setOpenExternalLinks(True)
            inner.addWidget(link)
            layout.addWidget(box)
        if any(r.non_commercial for r in rows):
            layout.addWidget(label("Some of these weights may be used for personal, non-commercial purposes only: "
                                   "restoring your own family photos is fine; selling restorations is not.",
                                   wrap=True))
        self.accept_box = QCheckBox("I have read and accept these licences")
        layout.addWidget(self.accept_box)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok = buttons.addButton("Accept and download", QDialogButtonBox.ButtonRole.AcceptRole)
        self.ok.setEnabled(False)
        self.accept_box.toggled.connect(self.ok.setEnabled)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


class PartCard(QFrame):
    download_clicked = Signal(str)
    import_clicked = Signal(str)

    def __init__(self, row: PartRow, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Card")
        self.row = row
        grid = QGridLayout(self)
        grid.setContentsMargins(16, 12, 16, 12)
        grid.setHorizontalSpacing(12)
        pic = QLabel()
        pic.setPixmap(theme.pixmap("models", 28, theme.SUCCESS if row.state == "present" else "#8a92a0"))
        grid.addWidget(pic, 0, 0, 2, 1, Qt.AlignmentFlag.AlignTop)
        title_row = QHBoxLayout()
        title_row.setSpacing(8)
        title_row.addWidget(label(f"<b>{row.title}</b>"))
        text, kind = _STATE_BADGE.get(row.state, (row.state, ""))
        self.state_badge = badge(text, kind)
        title_row.addWidget(self.state_badge)
        if not row.required:
            title_row.addWidget(badge("Optional"))
        title_row.addStretch(1)
        grid.addLayout(title_row, 0, 1)
        licence = f"Licence: {row.license_name}"
        if row.non_commercial:
            licence += " — <b>non-commercial use only</b>"
        if row.license_accepted:
            licence += " (accepted)"
        detail = f"{licence}<br>Download size: {human_size(row.size_bytes)}"
        if row.state != "present":
            detail += f"<br><span style='color:#5b6472'>Where it comes from: {row.where_to_get}</span>"
        if row.state == "invalid":
            detail += f"<br><span style='color:#9c2f29'>{row.detail}</span>"
        info = label(detail, wrap=True)
        info.setTextFormat(Qt.TextFormat.RichText)
        grid.addWidget(info, 1, 1)
        buttons = QVBoxLayout()
        self.download = button("Download" if row.state != "present" else "Download again", "download",
                               primary=row.state != "present" and row.required)
        self.download.setEnabled(model_pack.can_download())
        if not model_pack.can_download():
            self.download.setToolTip("Downloading from the app is not available in this version; "
                                     "use Import with files you already have.")
        self.download.clicked.connect(lambda: self.download_clicked.emit(row.name))
        self.import_ = button("Import…", "import", tooltip="Use a folder you already have (it is checked first)")
        self.import_.setEnabled(model_pack.can_import())
        self.import_.clicked.connect(lambda: self.import_clicked.emit(row.name))
        buttons.addWidget(self.download)
        buttons.addWidget(self.import_)
        buttons.addStretch(1)
        grid.addLayout(buttons, 0, 2, 2, 1)
        grid.setColumnStretch(1, 1)
        self.progress = ProgressRow()
        grid.addWidget(self.progress, 2, 1, 1, 2)


class ModelsPage(Page):
    key = "models"
    title = "Models"
    subtitle = "The model pack that restores faces: what is installed, where it comes from, and its licences."
    icon_name = "models"

    def __init__(self, context, parent=None):
        super().__init__(context, parent)
        self.rows: list[PartRow] = []
        self.cards: dict[str, PartCard] = {}
        refresh = self.header.add_action(button("Check again", "retry"))
        refresh.clicked.connect(self.refresh)
        folder = self.header.add_action(button("Open models folder", "folder"))
        folder.clicked.connect(self._open_folder)

        self.summary = QFrame()
        self.summary.setObjectName("Panel")
        summary_layout = QVBoxLayout(self.summary)
        summary_layout.setContentsMargins(18, 14, 18, 14)
        head = QHBoxLayout()
        self.summary_title = label("", "SectionTitle")
        head.addWidget(self.summary_title)
        head.addStretch(1)
        self.summary_badge = badge("")
        head.addWidget(self.summary_badge)
        summary_layout.addLayout(head)
        self.why = label(model_pack.WHY_TEXT, "Muted", wrap=True)
        summary_layout.addWidget(self.why)
        self.location = label("", "Muted", wrap=True)
        self.location.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        summary_layout.addWidget(self.location)
        self.layout_.addWidget(self.summary)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        holder = QWidget()
        holder.setObjectName("PageArea")
        self.cards_layout = QVBoxLayout(holder)
        self.cards_layout.setContentsMargins(0, 0, 6, 0)
        self.cards_layout.setSpacing(10)
        self.cards_layout.addStretch(1)
        scroll.setWidget(holder)
        self.layout_.addWidget(scroll, 1)
        self._loaded_once = False

    def activated(self) -> None:
        self.refresh()

    def explain_missing(self, missing: list[str]) -> None:
        """Shown when Restore was pressed without a complete pack."""
        names = ", ".join(model_pack.PARTS[n].title for n in missing) if missing else ""
        self.summary_title.setText("Restoring needs the model pack")
        self.why.setText(model_pack.WHY_TEXT + (f"\n\nStill needed: {names}." if names else ""))

    def refresh(self) -> None:
        models_dir = self.context.settings.models_dir
        self.location.setText(f"Model folder: {models_dir}  (change it in Settings)")
        self.context.runner.run(lambda progress, cancel: model_pack.pack_rows(models_dir), "Checking the model pack",
                                on_result=self._show_rows, on_failed=self.context.report)

    def _show_rows(self, rows: list[PartRow]) -> None:
        self.rows = rows
        for card in self.cards.values():
            card.setParent(None)
            card.deleteLater()
        self.cards = {}
        for n, row in enumerate(rows):
            card = PartCard(row)
            card.download_clicked.connect(self.download)
            card.import_clicked.connect(self.choose_import)
            self.cards_layout.insertWidget(n, card)
            self.cards[row.name] = card
        needed = [r for r in rows if r.required and r.state != "present"]
        if needed:
            self.summary_title.setText("Restoring needs the model pack")
            self.summary_badge.setText(f"{len(needed)} of {plural(sum(r.required for r in rows), 'part')} missing")
            self.summary_badge.setObjectName("BadgeWarn")
        else:
            self.summary_title.setText("Ready to restore")
            self.summary_badge.setText("All required parts installed")
            self.summary_badge.setObjectName("BadgeOk")
        self.summary_badge.style().unpolish(self.summary_badge)
        self.summary_badge.style().polish(self.summary_badge)
        self._loaded_once = True

    def download(self, name: str) -> None:
        row = next(r for r in self.rows if r.name == name)
        models_dir = self.context.settings.models_dir
        if not row.license_accepted:
            dialog = LicenceDialog([row], self)
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return
            model_pack.accept_licences(models_dir, [name])
        card = self.cards[name]
        card.progress.start(f"Downloading {row.title}…")
        job = self.context.runner.run(
            lambda progress, cancel: model_pack.download(models_dir, [name], progress, cancel),
            f"Downloading {row.title}", on_progress=card.progress.update_progress,
            on_failed=self.context.report, on_finished=self.refresh)
        card.progress.cancel_clicked.connect(job.cancel)

    def choose_import(self, name: str) -> None:
        folder = QFileDialog.getExistingDirectory(self, f"Folder holding {model_pack.PARTS[name].title}")
        if folder:
            self.import_part(name, Path(folder))

    def import_part(self, name: str, source: Path) -> None:
        models_dir = self.context.settings.models_dir
        card = self.cards.get(name)
        if card is not None:
            card.progress.start("Checking and importing…")
        self.context.runner.run(
            lambda progress, cancel: model_pack.import_from(models_dir, name, source, progress, cancel),
            f"Importing {name}", on_progress=card.progress.update_progress if card else None,
            on_failed=self.context.report, on_finished=self.refresh)

    def _open_folder(self) -> None:
        folder = self.context.settings.models_dir
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
