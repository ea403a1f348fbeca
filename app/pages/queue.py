"""Queue: batch restorations of whole albums — per-photo and overall progress with the time left,
pause, cancel, retry failed photos, open the results, and the faces to review (the identity check
doubts they still look like the person) with one click to restore each again. Batches live in the catalog's
job table, so a batch stopped by closing the app carries on at the next start (one stopped in a terminal
waits for Resume)."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QFrame,
                               QHBoxLayout, QHeaderView, QLineEdit, QListWidget, QListWidgetItem, QProgressBar,
                               QStackedWidget, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from app import batch_flow, model_pack, restore_flow, theme
from app.batch_flow import JobView
from app.pages.base import Page
from app.widgets.common import ElidedPathLabel, EmptyState, button, label
from app.widgets.review_list import ReviewList
from app.widgets.whole_photo import WholePhotoPanel
from engine.text import plural

log = logging.getLogger(__name__)

_STATUS_TEXT = {"pending": "Waiting", "running": "Restoring…", "done": "Restored", "skipped": "Skipped",
                "failed": "Failed"}
#: the batch list's panel: its narrowest and widest width (px)
JOB_LIST_WIDTH = (250, 400)
_STATUS_COLOUR = {"done": theme.SUCCESS, "failed": theme.DANGER, "skipped": "#8a92a0", "running": theme.ACCENT}


class ItemRelay(QObject):
    """Carries per-photo events from the batch worker to the page (signals cross threads)."""

    item_finished = Signal(int, str, str)
    photo_progress = Signal(int, str, int, int, str)

    def emit_item(self, item_id: int, status: str, reason: str | None) -> None:
        self.item_finished.emit(int(item_id), str(status), reason or "")

    def emit_photo(self, item_id: int, name: str, done: int, total: int, message: str) -> None:
        self.photo_progress.emit(int(item_id), str(name), int(done), int(total), str(message))


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "estimating the time left…"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"about {seconds} s left"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"about {minutes} min {seconds:02d} s left"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes:02d} min left"


class NewBatchDialog(QDialog):
    """`output_for(roots)`: the default folder for the chosen albums (Preferences.batch_output_for); it
    follows the ticked albums until the user types or browses a folder of their own."""

    def __init__(self, albums: list[str], output_for, parent: QWidget | None = None, repair_models=None):
        super().__init__(parent)
        self._output_for = output_for
        self.setWindowTitle("New batch")
        self.setMinimumWidth(480)
        layout = QVBoxLayout(self)
        layout.addWidget(label("Restore every photo of these albums whose faces belong to people with references.",
                               wrap=True))
        self.album_boxes = []
        for album in albums:
            box = QCheckBox(album)
            box.setChecked(True)
            box.toggled.connect(lambda _on: self._follow_albums())
            self.album_boxes.append(box)
            layout.addWidget(box)
        form = QFormLayout()
        self.out_dir = QLineEdit(str(output_for(albums)))
        self._default_out = self.out_dir.text()
        row = QHBoxLayout()
        row.addWidget(self.out_dir, 1)
        browse = button("Browse…", "folder")
        browse.clicked.connect(self._browse)
        row.addWidget(browse)
        form.addRow("Save results in", row)
        self.unmatched = QComboBox()
        self.unmatched.addItem("Restore them without identity", "blind")
        self.unmatched.addItem("Leave them as they are", "skip")
        form.addRow("Faces of unknown people", self.unmatched)
        layout.addLayout(form)
        # each photo's whole-print repair, kept with the batch (`repair_models`: RepairAvailability)
        self.whole_photo = WholePhotoPanel()
        if repair_models is not None:
            self.whole_photo.set_availability(repair_models)
        layout.addWidget(self.whole_photo)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        start = buttons.addButton("Start", QDialogButtonBox.ButtonRole.AcceptRole)
        start.setProperty("primary", True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save results in", self.out_dir.text())
        if folder:
            self.out_dir.setText(folder)

    def roots(self) -> list[str]:
        return [b.text() for b in self.album_boxes if b.isChecked()]

    def _follow_albums(self) -> None:
        """The default folder for the albums now ticked, unless the user chose one."""
        if self.roots() and self.out_dir.text() == self._default_out:
            self._default_out = str(self._output_for(self.roots()))
            self.out_dir.setText(self._default_out)


class QueuePage(Page):
    key = "queue"
    title = "Queue"
    subtitle = "Restore whole albums in the background. Closing the app pauses a batch; it carries on at the next start."
    icon_name = "queue"

    def __init__(self, context, parent=None):
        super().__init__(context, parent)
        self.jobs: list[JobView] = []
        self.job_id: int | None = None
        self.running_job = None  # the worker Job
        self.running_id: int | None = None
        self._clock = batch_flow.RunClock()  # the time left of the running batch
        self._last_done = 0
        self._cancel_requested: int | None = None
        self._repair_models = None  # app.restore_flow.RepairAvailability, once checked
        self.new_button = self.header.add_action(button("New batch…", "add", primary=True))
        self.new_button.clicked.connect(self.choose_new_batch)

        body = QHBoxLayout()
        body.setSpacing(16)
        self.jobs_panel = left = QFrame()
        left.setObjectName("Panel")
        left.setFixedWidth(JOB_LIST_WIDTH[0])
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(12, 12, 12, 12)
        left_layout.addWidget(label("Batches", "SectionTitle"))
        self.job_list = QListWidget()
        self.job_list.setStyleSheet("QListWidget { border: none; }")
        # the panel grows to the longest line ("… restored · running elsewhere"); past its widest, lines
        # wrap instead of being cut off
        self.job_list.setWordWrap(True)
        self.job_list.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.job_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.job_list.currentRowChanged.connect(self._job_changed)
        left_layout.addWidget(self.job_list, 1)
        body.addWidget(left)

        self.stack = QStackedWidget()
        self.empty = EmptyState("queue", "No batches yet",
                                "A batch restores every photo of your albums in which a person with reference photos "
                                "appears, into a separate folder that mirrors the album. Your originals stay as "
                                "they are.")
        self.empty.add_button(button("New batch…", "add", primary=True)).clicked.connect(self.choose_new_batch)
        self.stack.addWidget(self.empty)

        detail = QFrame()
        detail_layout = QVBoxLayout(detail)
        detail_layout.setContentsMargins(0, 0, 0, 0)
        detail_layout.setSpacing(10)
        status_card = QFrame()
        status_card.setObjectName("Panel")
        card = QVBoxLayout(status_card)
        card.setContentsMargins(18, 14, 18, 14)
        top = QHBoxLayout()
        self.job_title = label("", "SectionTitle")
        top.addWidget(self.job_title, 1)
        # below the buttons, across the card: the folder and who runs the batch were cut off beside them
        self.job_folder = ElidedPathLabel()
        self.pause_button = button("Pause", "pause")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button = button("Cancel", "stop", danger=True)
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button = button("Resume", "play", primary=True)
        self.resume_button.clicked.connect(lambda: self.start(self.job_id))
        self.retry_button = button("Retry failed", "retry")
        self.retry_button.clicked.connect(self.retry_failed)
        self.open_button = button("Open results", "folder")
        self.open_button.clicked.connect(self.open_results)
        for b in (self.resume_button, self.pause_button, self.cancel_button, self.retry_button, self.open_button):
            top.addWidget(b)
        card.addLayout(top)
        card.addWidget(self.job_folder)
        self.overall_text = label("", "Muted")
        card.addWidget(self.overall_text)
        self.overall = QProgressBar()
        card.addWidget(self.overall)
        self.photo_text = label("", "Muted")
        card.addWidget(self.photo_text)
        self.photo_bar = QProgressBar()
        card.addWidget(self.photo_bar)
        detail_layout.addWidget(status_card)
        self.items = QTreeWidget()
        self.items.setHeaderLabels(["Photo", "Status", "Details"])
        self.items.setRootIsDecorated(False)
        self.items.setUniformRowHeights(True)
        self.items.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.items.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.items.header().setStretchLastSection(True)
        self.items.itemDoubleClicked.connect(self._open_item)
        detail_layout.addWidget(self.items, 1)
        self.review = ReviewList()
        self.review.retry_requested.connect(self.retry_face)
        detail_layout.addWidget(self.review)
        self._retrying = None  # the worker Job restoring a face to review again
        self.stack.addWidget(detail)
        body.addWidget(self.stack, 1)
        self.layout_.addLayout(body, 1)
        self._update_actions()

    # --- loading -------------------------------------------------------------------------------
    def activated(self) -> None:
        self.reload()
        models_dir = self.context.settings.models_dir  # which repair steps a new batch may take

        def found(availability) -> None:
            self._repair_models = availability

        self.context.runner.run(lambda progress, cancel: restore_flow.repair_availability(models_dir),
                                "Checking the repair models", on_result=found,
                                on_failed=lambda m: log.info("repair models: %s", m.what))

    def reload(self) -> None:
        context = self.context
        context.runner.run(lambda progress, cancel: batch_flow.list_jobs(context.catalog()), "Loading batches",
                           on_result=self._show_jobs, on_failed=context.report)

    def _show_jobs(self, jobs: list[JobView]) -> None:
        self.jobs = jobs
        self.job_list.blockSignals(True)
        self.job_list.clear()
        for job in jobs:
            counts = job.counts()
            item = QListWidgetItem(theme.icon("queue"), f"{job.title}\n{counts.get('done', 0)} of {len(job.items)} "
                                                       f"restored · {job.state_text(self.running_id == job.id)}")
            item.setData(Qt.ItemDataRole.UserRole, job.id)
            self.job_list.addItem(item)
        self.job_list.blockSignals(False)
        self._fit_job_list()
        self.stack.setCurrentIndex(1 if jobs else 0)
        ids = [j.id for j in jobs]
        wanted = self.running_id if self.running_id in ids else self.job_id if self.job_id in ids else \
            (ids[0] if ids else None)
        if wanted is not None:
            self.job_list.setCurrentRow(ids.index(wanted))
            self._show_job(self.job(wanted))
        self._update_actions()

    def job(self, job_id: int | None) -> JobView | None:
        return next((j for j in self.jobs if j.id == job_id), None)

    def _job_changed(self, row: int) -> None:
        if row >= 0:
            self._show_job(self.job(self.job_list.item(row).data(Qt.ItemDataRole.UserRole)))

    def _show_job(self, job: JobView | None) -> None:
        self.job_id = job.id if job else None
        if job is None:
            return
        self.job_title.setText(job.title)
        self._show_folder_and_owner(job)
        self.items.clear()
        rows = []
        for entry in job.items:
            row = QTreeWidgetItem([entry.photo.name, _STATUS_TEXT.get(entry.status, entry.status),
                                   self._details(entry.status, entry.reason, entry.output)])
            row.setToolTip(0, str(entry.photo))
            row.setData(0, Qt.ItemDataRole.UserRole, entry.id)
            for line in entry.faces:  # whose each face was, what was done and why
                child = QTreeWidgetItem(["", "", line])
                child.setToolTip(2, line)
                row.addChild(child)
            colour = _STATUS_COLOUR.get(entry.status)
            if colour:
                row.setForeground(1, QColor(colour))
            rows.append(row)
        self.items.addTopLevelItems(rows)
        self.review.set_faces(job.review)
        self.review.set_busy(self._retrying is not None or self.running_job is not None)
        self._show_counts(job)
        self._update_actions()

    def _show_folder_and_owner(self, job: JobView) -> None:
        """"Results in …" (the path shortened in its middle to the card's width) and, on a line of its own,
        who runs the batch (another process: shown, never resumed here) or ran it (stopped: Resume)."""
        self.job_folder.set_lines(f"Results in {job.out_dir}", job.owner_text(self.running_id == job.id))

    def _fit_job_list(self) -> None:
        """The batch panel as wide as its longest line (within JOB_LIST_WIDTH), so that no state is cut off."""
        metrics = self.job_list.fontMetrics()
        lines = [line for n in range(self.job_list.count()) for line in self.job_list.item(n).text().split("\n")]
        text_width = max((metrics.horizontalAdvance(line) for line in lines), default=0)
        # icon, the item's padding and the panel's margins around the text
        chrome = self.job_list.iconSize().width() + 2 * 12 + 2 * 12 + 16
        self.jobs_panel.setFixedWidth(max(JOB_LIST_WIDTH[0], min(JOB_LIST_WIDTH[1], text_width + chrome)))

    @staticmethod
    def _details(status: str, reason: str | None, output: Path | None) -> str:
        if reason:
            return reason
        return f"saved as {output.name}" if status == "done" and output is not None else ""

    def _refresh_job_item(self, job: JobView) -> None:
        for row in range(self.job_list.count()):
            item = self.job_list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == job.id:
                counts = job.counts()
                item.setText(f"{job.title}\n{counts.get('done', 0)} of {len(job.items)} restored · "
                             f"{job.state_text(self.running_id == job.id)}")
        self._fit_job_list()

    def _show_counts(self, job: JobView) -> None:
        counts = job.counts()
        finished = sum(counts.get(s, 0) for s in ("done", "skipped", "failed"))
        self.overall.setRange(0, max(1, len(job.items)))
        self.overall.setValue(finished)
        parts = [f"{finished} of {plural(len(job.items), 'photo')} finished"]
        for status in ("done", "skipped", "failed"):
            if counts.get(status):
                parts.append(f"{counts[status]} {_STATUS_TEXT[status].lower()}")
        if self.running_id == job.id:
            parts.append(format_eta(self._eta(counts.get("pending", 0))))
        self.overall_text.setText(" · ".join(parts))
        if self.running_id != job.id:
            self.photo_text.setText("")
            self.photo_bar.setValue(0)

    def _eta(self, pending: int) -> float | None:
        return self._clock.time_left(pending)

    def _update_actions(self) -> None:
        job = self.job(self.job_id)
        running_this = job is not None and self.running_id == job.id
        counts = job.counts() if job else {}
        unfinished = bool(counts.get("pending"))
        self.pause_button.setVisible(running_this)
        self.cancel_button.setVisible(running_this or (job is not None and unfinished))
        self.resume_button.setVisible(job is not None and not running_this and unfinished)
        elsewhere = job.elsewhere if job is not None else None
        self.resume_button.setEnabled(self.running_job is None and not elsewhere)
        self.resume_button.setToolTip(f"This batch is {elsewhere}; it carries on there" if elsewhere else
                                      "Carry on with the photos left, with the batch's own settings")
        self.retry_button.setEnabled(job is not None and bool(counts.get("failed")) and self.running_job is None)
        self.open_button.setEnabled(job is not None)
        if running_this and self.running_job is not None:
            self.pause_button.setText("Resume" if self.running_job.is_paused else "Pause")
            self.pause_button.setIcon(theme.icon("play" if self.running_job.is_paused else "pause"))
        self.photo_bar.setVisible(running_this)
        self.photo_text.setVisible(running_this)

    # --- starting, running, stopping -----------------------------------------------------------
    def choose_new_batch(self) -> None:
        albums = list(self.context.preferences.albums)
        if not albums:
            self.context.navigate.emit("library")
            self.window().statusBar().showMessage("Add an album first: batches restore albums.", 6000)
            return
        dialog = NewBatchDialog(albums, self.context.preferences.batch_output_for, self, self._repair_models)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.roots() and dialog.out_dir.text().strip():
            self.new_batch(dialog.roots(), Path(dialog.out_dir.text().strip()), dialog.unmatched.currentData(),
                           dialog.whole_photo.recipe())

    def _options(self, unmatched: str = "blind", recipe=None):
        prefs = self.context.preferences
        return batch_flow.batch_options(self.context.settings, prefs.steps, prefs.guidance, unmatched, prefs.color_fix,
                                        prefs.identity_check, prefs.tries, recipe)

    def new_batch(self, roots: list[str], out_dir: Path, unmatched: str = "blind", recipe=None) -> None:
        """Create the batch in the catalog (scanning albums not yet scanned) and start it; `recipe`: each
        photo's whole-print repair (engine.repair.recipe.Recipe), kept with the batch."""
        context, options, models_dir = self.context, self._options(unmatched, recipe), self.context.settings.models_dir

        def work(progress, cancel):
            ready, missing = model_pack.restoration_ready(models_dir)
            if options.recipe is not None:  # the repair models the batch's recipe needs
                lacking = restore_flow.repair_availability(models_dir).missing
                missing += [part for part in options.recipe.parts() if part in lacking]
            if missing:
                return model_pack.PackMissing(missing)
            return batch_flow.create_job(context.catalog(), roots, out_dir, options, progress, cancel)

        context.runner.run(work, "Preparing the batch", on_result=self.start, on_failed=context.report)

    def _lead_to_models(self, missing: list[str]) -> None:
        self.context.navigate.emit("models")
        window = self.window()
        if hasattr(window, "models"):
            window.models.explain_missing(missing)

    def start(self, job_id) -> None:
        if isinstance(job_id, model_pack.PackMissing):
            self._lead_to_models(job_id.parts)
            return
        if job_id is None or self.running_job is not None:
            return
        context, settings, model = self.context, self.context.settings, self.context.model
        self.running_id = job_id
        self.job_id = job_id
        self._clock = batch_flow.RunClock()

        def work(progress, cancel):
            return batch_flow.run_job(context.catalog(), job_id, settings, model, progress, cancel,
                                      on_item=item_done.emit_item, on_photo=item_done.emit_photo)

        item_done = ItemRelay(self)
        item_done.item_finished.connect(self._item_finished)
        item_done.photo_progress.connect(self._photo_progress)
        self.running_job = context.runner.run(work, "Restoring a batch", on_result=self._batch_finished,
                                              on_failed=context.report, on_cancelled=self._batch_stopped,
                                              on_finished=self._batch_ended)
        self.running_job.paused_changed.connect(lambda _p: self._update_actions())
        self.reload()

    def _item_finished(self, item_id: int, status: str, reason: str) -> None:
        job = self.job(self.running_id)
        if job is None:
            return
        job.update_item(item_id, status, reason)
        self._clock.item_finished(status, reason)
        for n in range(self.items.topLevelItemCount()):
            row = self.items.topLevelItem(n)
            if row.data(0, Qt.ItemDataRole.UserRole) == item_id and self.job_id == job.id:
                row.setText(1, _STATUS_TEXT.get(status, status))
                entry = job.item(item_id)
                row.setText(2, self._details(status, reason, entry.output if entry else None))
                colour = _STATUS_COLOUR.get(status)
                if colour:
                    row.setForeground(1, QColor(colour))
                break
        self._refresh_job_item(job)
        if self.job_id == job.id:
            self._show_counts(job)

    def _photo_progress(self, item_id: int, name: str, done: int, total: int, message: str) -> None:
        self.photo_text.setText(f"{name}: {message}" if message else name)
        self.photo_bar.setRange(0, max(1, total))
        self.photo_bar.setValue(min(done, total))
        job = self.job(self.running_id)
        if job is not None:
            job.update_item(item_id, "running", "")
            for n in range(self.items.topLevelItemCount()):
                row = self.items.topLevelItem(n)
                if row.data(0, Qt.ItemDataRole.UserRole) == item_id:
                    if row.text(1) != _STATUS_TEXT["running"]:
                        row.setText(1, _STATUS_TEXT["running"])
                        row.setForeground(1, QColor(theme.ACCENT))
                    break

    def _batch_finished(self, summary) -> None:
        self.window().statusBar().showMessage(f"Batch finished: {summary}", 10000)

    def _batch_stopped(self) -> None:
        self.window().statusBar().showMessage("Batch stopped; press Resume to carry on.", 8000)

    def _batch_ended(self) -> None:
        stopped_id = self._cancel_requested
        self._cancel_requested = None
        self.running_job = None
        self.running_id = None
        if stopped_id is not None:
            context = self.context
            context.runner.run(lambda progress, cancel: batch_flow.cancel_job(context.catalog(), stopped_id),
                               "Cancelling the batch", on_result=lambda _: self.reload(), on_failed=context.report)
        else:
            self.reload()

    def toggle_pause(self) -> None:
        if self.running_job is None:
            return
        if self.running_job.is_paused:
            self.running_job.resume()
        else:
            self.running_job.pause()
        self._update_actions()

    def cancel(self) -> None:
        """Stop the batch (it is not resumed by itself at the next start; Resume carries on)."""
        if self.running_job is not None and self.running_id == self.job_id:
            self._cancel_requested = self.running_id
            self.running_job.cancel()
            self.photo_text.setText("Stopping after the current step…")
            return
        job_id, context = self.job_id, self.context
        if job_id is not None:
            context.runner.run(lambda progress, cancel: batch_flow.cancel_job(context.catalog(), job_id),
                               "Cancelling the batch", on_result=lambda _: self.reload(), on_failed=context.report)

    def retry_failed(self) -> None:
        job_id, context = self.job_id, self.context
        if job_id is None or self.running_job is not None:
            return
        context.runner.run(lambda progress, cancel: batch_flow.retry_failed(context.catalog(), job_id),
                           "Retrying failed photos", on_result=lambda _: self.start(job_id), on_failed=context.report)

    def retry_face(self, item_id: int) -> None:
        """A face to review: restore its photo again (new seed, best of several tries) and record it."""
        job_id, context = self.job_id, self.context
        if job_id is None or self.running_job is not None or self._retrying is not None:
            return
        settings, model = context.settings, context.model
        self.review.set_busy(True)
        self.photo_text.setVisible(True)
        self.photo_text.setText("Restoring the face again…")

        def finished() -> None:
            self._retrying = None
            self.review.set_busy(False)
            self.photo_text.setVisible(self.running_job is not None)
            self.reload()

        self._retrying = context.runner.run(
            lambda progress, cancel: batch_flow.retry_face(context.catalog(), job_id, item_id, settings, model,
                                                           progress, cancel),
            "Restoring a face again", on_result=lambda text: self.window().statusBar().showMessage(text, 10000),
            on_failed=context.report, on_finished=finished)

    def open_results(self) -> None:
        job = self.job(self.job_id)
        if job is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(job.out_dir)))

    def _open_item(self, row: QTreeWidgetItem, _column: int) -> None:
        job = self.job(self.job_id)
        entry = job.item(row.data(0, Qt.ItemDataRole.UserRole)) if job else None
        if entry is not None and entry.status == "done":
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(entry.output)))

    def resume_unfinished(self) -> None:
        """At start: carry on with a batch the app was running when it last closed (or crashed); one stopped
        in a terminal (`faceme batch`, Ctrl-C) stays "interrupted — resume" until the user resumes it."""
        context = self.context

        def found(job_id):
            if job_id is not None:
                log.info("resuming batch %s", job_id)
                self.context.navigate.emit("queue")
                self.start(job_id)

        context.runner.run(lambda progress, cancel: batch_flow.unfinished_job(context.catalog()),
                           "Looking for an unfinished batch", on_result=found, on_failed=context.report)

    def shutdown(self) -> None:
        if self.running_job is not None:
            self.running_job.cancel()
