"""Restore: the photo with its faces outlined and labelled, the options, the before/after comparison."""

from __future__ import annotations

import logging
import random
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QImage
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QFrame,
                               QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QSlider, QSpinBox,
                               QStackedWidget, QVBoxLayout)

from app import model_pack, restore_flow, theme
from app.pages.base import Page
from app.qimage import preview_image
from app.restore_flow import PhotoAnalysis, RestoreOutcome, RestoreRequest
from app.widgets.canvas import CompareView, FaceMark, FacesView
from app.widgets.common import EmptyState, ProgressRow, button, label, tool_button
from app.widgets.identity_badge import FaceBadges
from app.widgets.whole_photo import WholePhotoPanel
from engine.text import plural

log = logging.getLogger(__name__)


class RestorePage(Page):
    key = "restore"
    title = "Restore"
    subtitle = "Restore the faces in a photo so they still look like the person. Drop a photo anywhere to start."
    icon_name = "restore"

    def __init__(self, context, parent=None):
        super().__init__(context, parent)
        self.analysis: PhotoAnalysis | None = None
        self.outcome: RestoreOutcome | None = None  # the restoration (what Save writes)
        self.preview_outcome: RestoreOutcome | None = None  # a quick preview on show (never saved)
        self.saved_path: Path | None = None
        self._before: QImage | None = None
        self._after: QImage | None = None
        self._job = None
        self._analysed_for = None  # the models folder the open photo was analysed with
        context.preferences_changed.connect(self._settings_changed)
        context.preferences_changed.connect(self.refresh_repair_models)

        open_button = self.header.add_action(button("Open photo…", "open"))
        open_button.clicked.connect(self._choose_photo)

        body = QHBoxLayout()
        body.setSpacing(16)
        self.layout_.addLayout(body, 1)

        # --- left: the picture ---------------------------------------------------------------
        left = QVBoxLayout()
        left.setSpacing(8)
        bar = QHBoxLayout()
        self.file_label = label("", "SectionTitle")
        bar.addWidget(self.file_label, 1)
        self.view_faces = QPushButton("Faces")
        self.view_compare = QPushButton("Before / after")
        self.view_compare.setIcon(theme.icon("compare"))
        group = QButtonGroup(self)
        for b in (self.view_faces, self.view_compare):
            b.setCheckable(True)
            group.addButton(b)
            bar.addWidget(b)
        self.view_faces.setChecked(True)
        self.view_faces.clicked.connect(lambda: self._show_view("faces"))
        self.view_compare.clicked.connect(lambda: self._show_view("compare"))
        self.zoom_in = tool_button("zoom-in", "Zoom in")
        self.zoom_out = tool_button("zoom-out", "Zoom out")
        self.zoom_fit = tool_button("zoom-fit", "Fit to window (double-click the picture)")
        for b in (self.zoom_out, self.zoom_in, self.zoom_fit):
            bar.addWidget(b)
        left.addLayout(bar)

        self.canvas_stack = QStackedWidget()
        self.empty = EmptyState("restore", "No photo open",
                                "Drop a photo here, or open one. Faces are found and matched to the people "
                                "you know; you choose which ones to restore.")
        self.empty.add_button(button("Open photo…", "open", primary=True)).clicked.connect(self._choose_photo)
        self.faces_view = FacesView()
        self.faces_view.placeholder = "Reading the photo…"
        self.faces_view.face_toggled.connect(self._face_toggled_on_photo)
        self.compare = CompareView()
        self.compare.placeholder = "Restore to see the result"
        # does each restored face still look like the person? (the identity check's verdict per face)
        self.badges = FaceBadges(self.compare)
        self.canvas_stack.addWidget(self.empty)
        self.canvas_stack.addWidget(self.faces_view)
        self.canvas_stack.addWidget(self.compare)
        left.addWidget(self.canvas_stack, 1)
        self.zoom_in.clicked.connect(lambda: self._canvas().zoom_by(1.25))
        self.zoom_out.clicked.connect(lambda: self._canvas().zoom_by(0.8))
        self.zoom_fit.clicked.connect(lambda: self._canvas().fit())
        body.addLayout(left, 1)

        # --- right: faces, options, actions --------------------------------------------------
        panel = QFrame()
        panel.setObjectName("Panel")
        panel.setFixedWidth(330)
        side = QVBoxLayout(panel)
        side.setContentsMargins(16, 14, 16, 14)
        side.setSpacing(8)
        side.addWidget(label("Faces in this photo", "SectionTitle"))
        self.faces_hint = label("Tick the faces to restore. Faces are matched to people by their reference photos; "
                                "faces of hidden people are left alone unless you tick them.", "Muted", wrap=True)
        side.addWidget(self.faces_hint)
        self.face_list = QListWidget()
        self.face_list.setObjectName("FaceList")
        self.face_list.setMinimumHeight(110)
        self.face_list.setWordWrap(True)
        self.face_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.face_list.itemChanged.connect(self._face_item_changed)
        self.face_list.currentRowChanged.connect(lambda _row: self._show_face_person())
        side.addWidget(self.face_list, 1)
        person_row = QHBoxLayout()
        person_row.addWidget(label("Who is this?", "Muted"))
        self.person_choice = QComboBox()
        self.person_choice.setToolTip("Whose references the selected face is restored with. For a photo of your "
                                      "albums the choice is kept there too (confirmed, or “not this person”).")
        self.person_choice.activated.connect(self._person_chosen)
        person_row.addWidget(self.person_choice, 1)
        side.addLayout(person_row)

        side.addWidget(label("Options", "SectionTitle"))
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(8)
        prefs = context.preferences
        strength_row = QHBoxLayout()
        self.guidance_slider = QSlider(Qt.Orientation.Horizontal)
        self.guidance_slider.setRange(0, 100)
        self.guidance = QDoubleSpinBox()
        self.guidance.setRange(0.0, 10.0)
        self.guidance.setSingleStep(0.5)
        self.guidance.setDecimals(1)
        self.guidance.setFixedWidth(64)
        self.guidance.valueChanged.connect(lambda v: self.guidance_slider.setValue(round(v * 10)))
        self.guidance_slider.valueChanged.connect(lambda v: self.guidance.setValue(v / 10))
        self.guidance.setValue(prefs.guidance)
        self.guidance_slider.setToolTip("How strongly the reference photos steer the face (guidance scale). "
                                        "0: ignore them; 5: the FaceMe default.")
        strength_row.addWidget(self.guidance_slider, 1)
        strength_row.addWidget(self.guidance)
        form.addRow("Identity strength", strength_row)
        self.steps = QSpinBox()
        self.steps.setRange(1, 200)
        self.steps.setValue(prefs.steps)
        self.steps.setToolTip("Denoising steps: 50 is the FaceMe default; fewer is faster and rougher.")
        form.addRow("Steps", self.steps)
        seed_row = QHBoxLayout()
        self.seed = QSpinBox()
        self.seed.setRange(0, 2_147_483_647)
        self.seed.setValue(random.randrange(1_000_000))
        self.seed.setToolTip("The same seed and settings give the same result.")
        shuffle = tool_button("retry", "A new random seed")
        shuffle.clicked.connect(lambda: self.seed.setValue(random.randrange(1_000_000)))
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(shuffle)
        form.addRow("Seed", seed_row)
        self.color_fix = QCheckBox("Keep the photo's colours")
        self.color_fix.setChecked(prefs.color_fix)
        self.color_fix.setToolTip("Colour fix: the restored face takes the original's colours (wavelet colour fix).")
        form.addRow(self.color_fix)
        side.addLayout(form)
        # the whole print repaired before its faces are restored (issue 24)
        self.whole_photo = WholePhotoPanel(damage_view=True)
        self.whole_photo.changed.connect(self._update_actions)
        self.whole_photo.show_damage_changed.connect(self.show_damage)
        self._damage = None  # the open photo's restore_flow.DamageView, once found
        side.addWidget(self.whole_photo)

        self.restore_button = button("Restore faces", "restore", primary=True)
        self.restore_button.clicked.connect(lambda: self.start_restore())
        self.preview_button = button("Quick preview", "compare",
                                     tooltip="A look at the result in a few seconds: fewer steps with a faster "
                                             "sampler, so it differs from the restoration itself. Not saved.")
        self.preview_button.clicked.connect(lambda: self.start_preview())
        actions_row = QHBoxLayout()
        actions_row.addWidget(self.preview_button, 1)
        actions_row.addWidget(self.restore_button, 1)
        side.addLayout(actions_row)
        self.progress = ProgressRow()
        self.progress.cancel_clicked.connect(self.cancel)
        side.addWidget(self.progress)
        self.status = label("", "Muted", wrap=True)
        side.addWidget(self.status)
        save_row = QHBoxLayout()
        self.save_button = button("Save", "save", tooltip="Save into the Restored folder beside the albums (see Settings → Output)")
        self.save_as_button = button("Save as…", "save-as")
        self.open_folder_button = button("", "folder", tooltip="Open the folder of the saved photo")
        self.save_button.clicked.connect(lambda: self.save())
        self.save_as_button.clicked.connect(self._save_as)
        self.open_folder_button.clicked.connect(self.open_folder)
        save_row.addWidget(self.save_button, 1)
        save_row.addWidget(self.save_as_button, 1)
        save_row.addWidget(self.open_folder_button)
        side.addLayout(save_row)
        body.addWidget(panel)
        self._update_actions()

    # --- views ---------------------------------------------------------------------------------
    def _canvas(self):
        return self.canvas_stack.currentWidget() if self.canvas_stack.currentWidget() is not self.empty \
            else self.faces_view

    def _show_view(self, which: str) -> None:
        if self.analysis is None and self._before is None:
            self.canvas_stack.setCurrentWidget(self.empty)
            return
        if which == "compare":
            self.canvas_stack.setCurrentWidget(self.compare)
            self.view_compare.setChecked(True)
        else:
            self.canvas_stack.setCurrentWidget(self.faces_view)
            self.view_faces.setChecked(True)

    def _update_actions(self) -> None:
        running = self._job is not None
        have_photo = self.analysis is not None
        wanted = any(f.restore for f in self._faces()) or self.whole_photo.recipe() is not None
        can_restore = have_photo and not running and wanted
        self.restore_button.setEnabled(can_restore)
        self.preview_button.setEnabled(can_restore)
        self.save_button.setEnabled(self.outcome is not None and not running)
        self.save_as_button.setEnabled(self.outcome is not None and not running)
        self.open_folder_button.setEnabled(self.saved_path is not None)
        self.view_compare.setEnabled(self.outcome is not None or self.preview_outcome is not None)
        for b in (self.zoom_in, self.zoom_out, self.zoom_fit, self.view_faces):
            b.setEnabled(self._before is not None)

    def _faces(self):
        return self.analysis.faces if self.analysis is not None else []

    def activated(self) -> None:
        self.refresh_repair_models()

    def refresh_repair_models(self) -> None:
        """Which whole-photo steps have their models (checked in a worker: it reads the models' headers)."""
        models_dir = self.context.settings.models_dir
        self.context.runner.run(lambda progress, cancel: restore_flow.repair_availability(models_dir),
                                "Checking the repair models", on_result=self.whole_photo.set_availability,
                                on_failed=lambda m: log.info("repair models: %s", m.what))

    # --- opening and analysing -----------------------------------------------------------------
    def _choose_photo(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a photo to restore", "",
                                              "Photos (*.jpg *.jpeg *.png *.tif *.tiff *.webp *.heic *.heif *.bmp)")
        if path:
            self.open_photo(Path(path))

    def open_photo(self, path: Path) -> None:
        """Read the photo and find its faces in a worker; the page shows them when done."""
        if self._job is not None:
            self._job.cancel()
        self.analysis = None
        self.outcome = None
        self.preview_outcome = None
        self.saved_path = None
        self._damage = None
        self.whole_photo.show_damage.setChecked(False)
        self._before = None
        self._after = None
        self.face_list.clear()
        self.file_label.setText(path.name)
        self.faces_view.set_image(None)
        self.faces_view.set_faces([])
        self.compare.set_images(None, None)
        self.badges.set_faces([])
        self.canvas_stack.setCurrentWidget(self.faces_view)
        self.view_faces.setChecked(True)
        self.status.setText("")
        settings = self.context.settings
        context = self.context
        self.progress.start("Reading the photo and finding faces…")

        def work(progress, cancel):
            analysis = restore_flow.analyse_photo(path, settings, context.catalog, progress, cancel)
            analysis.preview, analysis.preview_scale = preview_image(analysis.image.pixels)
            return analysis

        self._analysed_for = settings.models_dir
        self._job = self.context.runner.run(
            work, f"Opening {path.name}", on_result=self._show_analysis, on_failed=self._failed,
            on_progress=self.progress.update_progress, on_finished=self._job_finished)
        self._update_actions()

    def _show_analysis(self, analysis: PhotoAnalysis) -> None:
        self.analysis = analysis
        self._before = analysis.preview
        self.faces_view.set_image(self._before)
        self.compare.set_images(self._before, None)
        self.badges.set_faces([])
        self._fill_faces()
        self._preload_model()
        n = len(analysis.faces)
        if n == 0:
            self.status.setText("No face was found in this photo, so there is nothing to restore.")
        else:
            known = sum(1 for f in analysis.faces if f.person_id is not None)
            whose = "people of your album" if analysis.in_album else "people you know"
            self.status.setText(f"{plural(n, 'face')} found, {known} of {whose}.")
        if self.face_list.count():
            self.face_list.setCurrentRow(0)

    def _fill_faces(self) -> None:
        self.face_list.blockSignals(True)
        self.face_list.clear()
        marks = []
        for face in self._faces():
            text = face.label + (f"\n{face.short_note}" if face.short_note else "")
            item = QListWidgetItem(theme.icon("person" if face.person_id is not None else "unknown",
                                              theme.person_colour(face.person_id).name()), text)
            item.setToolTip(face.note)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if face.restore else Qt.CheckState.Unchecked)
            if not face.restorable:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            self.face_list.addItem(item)
            # Boxes are in photo pixels; the canvas shows the (possibly smaller) preview.
            box = tuple(v * self.analysis.preview_scale for v in face.box)
            marks.append(FaceMark(box, face.label, face.person_id, face.restore, face.note))
        self.faces_view.set_faces(marks)
        self.face_list.blockSignals(False)
        self._show_face_person()
        self._update_actions()

    def _settings_changed(self) -> None:
        """A new model folder changes restoration's detector: the open photo is read again with it (a plan
        made with the old analyser would carry faces of another face model)."""
        if self.analysis is not None and self._job is None and self.context.settings.models_dir != self._analysed_for:
            self.open_photo(self.analysis.path)

    # --- the damage the repair step paints over ---------------------------------------------------
    def show_damage(self, on: bool) -> None:
        """The detector's damage mask in red over the photo (found once per photo, in a worker), or the
        photo as read again."""
        if not on or self.analysis is None:
            if self._before is not None:
                self.faces_view.set_image(self._before, keep_view=True)
            return
        if self._damage is not None:
            self._show_damage(self._damage)
            return
        if self._job is not None:
            self.whole_photo.show_damage.setChecked(False)
            return
        analysis, settings = self.analysis, self.context.settings

        def work(progress, cancel):
            view = restore_flow.damage_view(analysis.image, settings.models_dir, settings.device, cancel)
            view.preview, _ = preview_image(view.pixels)
            return analysis, view

        def found(result) -> None:
            if result[0] is self.analysis:
                self._damage = result[1]
                if self.whole_photo.show_damage.isChecked():
                    self._show_damage(self._damage)

        self.progress.start("Finding damage…")
        self._job = self.context.runner.run(work, f"Finding damage in {analysis.path.name}", on_result=found,
                                            on_failed=self._failed, on_progress=self.progress.update_progress,
                                            on_finished=self._job_finished)
        self._update_actions()

    def _show_damage(self, view) -> None:
        self.faces_view.set_image(view.preview, keep_view=True)
        self._show_view("faces")
        self.status.setText(f"Damage found on {view.share:.0%} of the photo (in red): Repair scratches paints "
                            "it over.")

    # --- whose each face is ----------------------------------------------------------------------
    def _show_face_person(self) -> None:
        """The selected face's person in the chooser: the people with references, nobody, leave alone."""
        self.person_choice.blockSignals(True)
        self.person_choice.clear()
        row = self.face_list.currentRow()
        faces = self._faces()
        if self.analysis is not None and 0 <= row < len(faces):
            for person in self.analysis.people:
                self.person_choice.addItem(f"{person.name} (#{person.person_id})", person.person_id)
            self.person_choice.addItem("Nobody: restore without identity", restore_flow.BLIND)
            self.person_choice.addItem("Leave this face alone", restore_flow.SKIP)
            face = faces[row]
            # a hidden person lends no identity and is not among the choices: restored blind or left alone
            known = face.restore and not face.hidden and face.person_id is not None
            index = self.person_choice.findData(face.person_id) if known else -1
            if index < 0:
                index = self.person_choice.findData(restore_flow.BLIND if face.restore else restore_flow.SKIP)
            self.person_choice.setCurrentIndex(index)
        self.person_choice.setEnabled(self.analysis is not None and 0 <= row < len(faces) and self._job is None)
        self.person_choice.blockSignals(False)

    def _person_chosen(self, index: int) -> None:
        row = self.face_list.currentRow()
        if row >= 0:
            self.set_face_person(row, self.person_choice.itemData(index))

    def set_face_person(self, index: int, choice) -> None:
        """The user's choice for face `index`: a person id, restore_flow.BLIND or restore_flow.SKIP. For an
        album photo it is saved in the catalog as a correction (in a worker)."""
        if self.analysis is None or self._job is not None:
            return
        analysis, context = self.analysis, self.context
        catalog = context.catalog if analysis.in_album else None
        self.progress.start("Saving your choice…")

        def done(_face) -> None:
            self._fill_faces()
            self.face_list.setCurrentRow(index)
            if analysis.in_album and choice != restore_flow.SKIP:
                context.catalog_changed.emit()

        self._job = context.runner.run(
            lambda progress, cancel: restore_flow.choose_person(analysis, index, choice, catalog),
            "Choosing who the face is", on_result=done, on_failed=self._failed, on_finished=self._job_finished)
        self._update_actions()

    def set_face_checked(self, index: int, checked: bool) -> None:
        faces = self._faces()
        if 0 <= index < len(faces) and faces[index].restorable:
            faces[index].restore = checked
            item = self.face_list.item(index)
            self.face_list.blockSignals(True)
            item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
            self.face_list.blockSignals(False)
            self.faces_view.set_checked(index, checked)
            self._update_actions()

    def _face_item_changed(self, item: QListWidgetItem) -> None:
        self.set_face_checked(self.face_list.row(item), item.checkState() == Qt.CheckState.Checked)

    def _face_toggled_on_photo(self, index: int, checked: bool) -> None:
        if not self._faces()[index].restorable:
            self.faces_view.set_checked(index, False)
            return
        self.set_face_checked(index, checked)

    # --- restoring -----------------------------------------------------------------------------
    def request(self) -> RestoreRequest:
        prefs = self.context.preferences
        return RestoreRequest(faces=[i for i, f in enumerate(self._faces()) if f.restore],
                              guidance=self.guidance.value(), steps=self.steps.value(), seed=self.seed.value(),
                              color_fix=self.color_fix.isChecked(), identity_check=prefs.identity_check,
                              tries=max(1, int(prefs.tries)), recipe=self.whole_photo.recipe())

    def start_restore(self) -> None:
        """The restoration itself (the released procedure), shown in the after view, ready to save."""
        self._start_restoration(preview=False)

    def start_preview(self) -> None:
        """A quick preview of the ticked faces (engine RestorationService.preview), shown in the after view
        and labelled as such; never saved, never recorded."""
        self._start_restoration(preview=True)

    def _start_restoration(self, preview: bool) -> None:
        if self.analysis is None or self._job is not None:
            return
        settings = self.context.settings
        analysis, request, model = self.analysis, self.request(), self.context.model
        catalog = self.context.catalog

        def work(progress, cancel):
            if not request.faces:  # only the whole photo: no FaceMe model needed
                outcome = restore_flow.repair_only(analysis, request, settings.models_dir, settings.device,
                                                   progress, cancel, preview=preview)
                outcome.preview, _ = preview_image(outcome.pixels)
                return outcome
            # checked here, not on the GUI thread: verifying the pack reads its files
            if not model.is_loaded_for(settings):
                ready, missing = model_pack.restoration_ready(settings.models_dir)
                if not ready:
                    return model_pack.PackMissing(missing)
            with model.use(settings, progress) as service:
                outcome = restore_flow.restore(analysis, request, service, catalog, progress, cancel, preview=preview)
            outcome.preview, _ = preview_image(outcome.pixels)
            return outcome

        what = "Previewing" if preview else "Restoring"
        self.progress.start(f"{what}…")
        self.status.setText("")
        self._job = self.context.runner.run(work, f"{what} {analysis.path.name}", on_result=self._show_outcome,
                                            on_failed=self._failed, on_progress=self.progress.update_progress,
                                            on_cancelled=lambda: self.status.setText(
                                                "Preview cancelled." if preview else "Restoration cancelled."),
                                            on_finished=self._job_finished)
        self._update_actions()

    def _preload_model(self) -> None:
        """Load the model in the background while the user looks at the faces, so that pressing Restore
        starts restoring at once (loading takes seconds to minutes)."""
        settings, model = self.context.settings, self.context.model
        if model.is_loaded_for(settings):
            return

        def work(progress, cancel):
            if model_pack.restoration_ready(settings.models_dir)[0]:
                model.preload(settings)

        self.context.runner.run(work, "Loading the FaceMe model", on_failed=lambda m: log.info("preload: %s", m.what))

    def _lead_to_models(self, missing: list[str]) -> None:
        """First run without a model pack: explain on the Models page instead of failing."""
        self.context.navigate.emit("models")
        window = self.window()
        if hasattr(window, "models"):
            window.models.explain_missing(missing)
        self.status.setText("Restoring needs the model pack: the Models page says what is missing and why.")

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self.progress.text.setText("Stopping…")
            self.progress.cancel.setEnabled(False)

    def _show_outcome(self, outcome) -> None:
        if isinstance(outcome, model_pack.PackMissing):
            self._lead_to_models(outcome.parts)
            return
        if outcome.is_preview:  # shown, labelled, never saved: Save stays for the restoration itself
            self.outcome, self.preview_outcome = None, outcome
        else:
            self.outcome, self.preview_outcome = outcome, None
        self.saved_path = None
        self._after = outcome.preview
        self.compare.set_images(self._before, self._after, "Preview" if outcome.is_preview else "After")
        # Boxes are in photo pixels; the canvas shows the (possibly smaller) preview.
        scale = (self.analysis.preview_scale if self.analysis is not None else 1.0) / outcome.scale
        self.badges.set_faces([(tuple(v * scale for v in face.face.box), face.check) for face in outcome.faces
                               if face.action != "skipped"])
        self._show_view("compare")
        self.status.setText(outcome.summary)

    def _failed(self, message) -> None:
        self.status.setText(message.what)
        self.context.report(message)

    def _job_finished(self) -> None:
        self._job = None
        self.progress.stop()
        self._update_actions()

    # --- saving --------------------------------------------------------------------------------
    def default_output(self) -> Path | None:
        if self.analysis is None:
            return None
        return self.context.preferences.output_path_for(self.analysis.path)

    def save(self, path: Path | None = None) -> None:
        if self.outcome is None:
            return
        target = Path(path) if path is not None else self.default_output()
        outcome, catalog = self.outcome, self.context.catalog
        self.progress.start(f"Saving {target.name}…")
        self._job = self.context.runner.run(lambda progress, cancel: restore_flow.save(outcome, target, catalog),
                                            f"Saving {target.name}", on_result=self._saved, on_failed=self._failed,
                                            on_finished=self._job_finished)
        self._update_actions()

    def _saved(self, path: Path) -> None:
        self.saved_path = Path(path)
        self.status.setText(f"Saved as {path}")

    def _save_as(self) -> None:
        start = str(self.default_output() or "")
        path, _ = QFileDialog.getSaveFileName(self, "Save the restored photo", start,
                                              "Photos (*.jpg *.jpeg *.png *.tif *.tiff *.webp)")
        if path:
            self.save(Path(path))

    def open_folder(self) -> None:
        if self.saved_path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.saved_path.parent)))

    def shutdown(self) -> None:
        if self._job is not None:
            self._job.cancel()
