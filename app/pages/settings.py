"""Settings: device, model folder, catalog location, where restored photos go and how they are named."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QFrame, QHBoxLayout, QLineEdit,
                               QSpinBox, QVBoxLayout, QWidget)

from app import catalog_views
from app.pages.base import Page
from app.preferences import NAMING_HELP
from app.widgets.common import button, label

log = logging.getLogger(__name__)

DEVICES = [("Automatic (GPU when available)", "auto"), ("GPU (CUDA)", "cuda"), ("CPU (slow, always works)", "cpu")]
MEMORY_MODES = [("Automatic (from free GPU memory)", "auto"), ("Full (fastest, about 8 GB of GPU memory)", "full"),
                ("Balanced (about 6 GB)", "balanced"), ("Low (6–8 GB cards, slowest)", "low")]


def _path_row(edit: QLineEdit, choose) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    browse = button("Browse…", "folder")
    browse.clicked.connect(choose)
    layout.addWidget(browse)
    return row


class SettingsPage(Page):
    key = "settings"
    title = "Settings"
    subtitle = "Where things are kept and how the model runs. Changes apply when you press Save."
    icon_name = "settings"

    def __init__(self, context, parent=None):
        super().__init__(context, parent)
        panel = QFrame()
        panel.setObjectName("Panel")
        outer = QVBoxLayout(panel)
        outer.setContentsMargins(20, 16, 20, 16)
        # one form for every section, so that labels and fields line up down the page
        form = QFormLayout()
        form.setHorizontalSpacing(16)
        form.setVerticalSpacing(10)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)

        form.addRow(label("Processing", "SectionTitle"))
        self.device = QComboBox()
        for text, value in DEVICES:
            self.device.addItem(text, value)
        form.addRow("Device", self.device)
        self.memory = QComboBox()
        for text, value in MEMORY_MODES:
            self.memory.addItem(text, value)
        form.addRow("GPU memory", self.memory)
        form.addRow("", label("Switching the device or the GPU memory use reloads the model before the next "
                              "restoration.", "Muted", wrap=True))
        self.models_dir = QLineEdit()
        form.addRow("Model folder", _path_row(self.models_dir, lambda: self._choose_dir(self.models_dir)))

        form.addRow(label("Identity check", "SectionTitle"))
        self.identity_check = QCheckBox("Check that each restored face still looks like the person")
        self.identity_check.setToolTip("Compares each restored face with the person's reference photos (a "
                                       "face restored without a person: with the original face) using a face "
                                       "recogniser other than FaceMe's own; a badge shows the verdict.")
        form.addRow("", self.identity_check)
        self.tries = QSpinBox()
        self.tries.setRange(1, 10)
        self.tries.setToolTip("Restore each face this many times (different seeds) and keep the result that "
                              "looks most like the person. Each try costs a full restoration of the face.")
        form.addRow("Tries per face", self.tries)
        form.addRow("", label("More tries: a better chance the face still looks like the person, at that many "
                              "times the time. Above 1 the check always runs.", "Muted", wrap=True))

        form.addRow(label("Library", "SectionTitle"))
        self.catalog = QLineEdit()
        self.catalog.setToolTip("A file (SQLite) or a database URL such as postgresql://user@nas/photos")
        form.addRow("Catalog", _path_row(self.catalog, self._choose_catalog))
        self.scan_workers = QSpinBox()
        self.scan_workers.setRange(0, 64)
        self.scan_workers.setSpecialValueText(f"Automatic ({os.cpu_count() or 1}, one per core)")
        self.scan_workers.setToolTip("How many photos a scan analyses at once; fewer leaves the computer more free")
        form.addRow("Scan workers", self.scan_workers)
        self.face_model = label("", "Muted", wrap=True)
        form.addRow("Face model", self.face_model)

        form.addRow(label("Restored photos", "SectionTitle"))
        self.output_dir = QLineEdit()
        self.output_dir.setPlaceholderText("A “Restored” folder beside the albums")
        form.addRow("Output folder", _path_row(self.output_dir, lambda: self._choose_dir(self.output_dir)))
        self.naming = QLineEdit()
        self.naming.setToolTip(NAMING_HELP)
        form.addRow("File name", self.naming)
        self.example = label("", "Muted")
        form.addRow("", self.example)
        self.naming.textChanged.connect(self._show_example)
        self.output_dir.textChanged.connect(self._show_example)
        outer.addLayout(form)

        actions = QHBoxLayout()
        actions.addStretch(1)
        self.revert = button("Revert")
        self.revert.clicked.connect(self.load)
        self.save_button = button("Save", "check", primary=True)
        self.save_button.clicked.connect(self.save)
        actions.addWidget(self.revert)
        actions.addWidget(self.save_button)
        outer.addSpacing(8)
        outer.addLayout(actions)
        self.layout_.addWidget(panel)
        self.layout_.addStretch(1)
        self.load()

    def activated(self) -> None:
        self.load()
        self.show_face_model()

    def show_face_model(self) -> None:
        """The catalog's face model, read in a worker (the catalog may be large or on a network)."""
        context, models_dir = self.context, self.context.preferences.models_dir
        context.runner.run(lambda progress, cancel: catalog_views.face_model_view(context.catalog(), models_dir),
                           "Reading the face model", on_result=self._face_model_read, on_failed=context.report)

    def _face_model_read(self, view: catalog_views.FaceModelView) -> None:
        if view.analyser is None:
            first = view.installed_pack or "dlib"
            self.face_model.setText(f"No faces yet: the first scan finds them with {first}, and every later "
                                    "scan uses the same model.")
            return
        text = f"Faces found with {view.analyser}. Every scan uses it, in the app and with faceme scan."
        if view.better_pack:
            text += f" {view.better_pack} is installed: the Library offers to re-analyse the album with it."
        self.face_model.setText(text)

    def load(self) -> None:
        prefs = self.context.preferences
        index = max(0, self.device.findData(prefs.device if prefs.device in ("auto", "cpu") else
                                            ("cuda" if prefs.device.startswith("cuda") else "auto")))
        self.device.setCurrentIndex(index)
        self.memory.setCurrentIndex(max(0, self.memory.findData(prefs.memory)))
        self.models_dir.setText(prefs.models_dir)
        self.catalog.setText(prefs.catalog_url.removeprefix("sqlite:///"))
        self.scan_workers.setValue(max(0, int(prefs.scan_workers)))
        self.output_dir.setText(prefs.output_dir)
        self.naming.setText(prefs.naming)
        self.identity_check.setChecked(prefs.identity_check)
        self.tries.setValue(max(1, int(prefs.tries)))
        self._show_example()

    def _show_example(self) -> None:
        from app.preferences import Preferences

        probe = Preferences(output_dir=self.output_dir.text().strip(), naming=self.naming.text().strip() or "{stem}",
                            albums=["/photos/family"])
        example = Path("/photos/family/grandma.jpg")
        self.example.setText(f"Example: {example} → {probe.output_path_for(example)}")

    def save(self) -> None:
        prefs = self.context.preferences
        device = self.device.currentData()
        memory = self.memory.currentData()
        catalog = self.catalog.text().strip()
        changed_model = (device != prefs.device or memory != prefs.memory
                         or self.models_dir.text().strip() != prefs.models_dir)
        prefs.device = device
        prefs.memory = memory
        prefs.models_dir = self.models_dir.text().strip() or prefs.models_dir
        prefs.catalog_url = catalog if "://" in catalog else f"sqlite:///{Path(catalog).expanduser()}"
        prefs.output_dir = self.output_dir.text().strip()
        prefs.scan_workers = self.scan_workers.value()
        prefs.naming = self.naming.text().strip() or "{stem}_restored"
        prefs.identity_check = self.identity_check.isChecked()
        prefs.tries = self.tries.value()
        if changed_model:
            # The next job loads the model for the new device; a running one finishes with the old.
            self.context.runner.run(lambda progress, cancel: self.context.model.release(), "Releasing the model")
        self.context.save_preferences()
        self.context.catalog_changed.emit()
        self.window().statusBar().showMessage("Settings saved", 4000)
        self.show_face_model()  # another model folder may hold another pack

    def _choose_dir(self, edit: QLineEdit) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder", edit.text())
        if folder:
            edit.setText(folder)

    def _choose_catalog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Catalog file", self.catalog.text(), "Catalog (*.sqlite3)")
        if path:
            self.catalog.setText(path)
