""""Learn this person…" (issue 21): what to learn, the learning's progress with Cancel, and at its end the
held-out figures and the decision in the words `faceme people learn` prints. The page runs the job;
this dialog only shows it (`start_requested`, `cancel_requested`)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QComboBox, QDialog, QHBoxLayout, QPlainTextEdit, QProgressBar, QVBoxLayout,
                               QWidget)

from app.messages import UserMessage
from app.people_actions import LearnOutcome
from app.widgets.common import button, label

#: the methods offered, as `faceme people learn --method` names them
METHODS = (("both", "Fitted identity and person adapter (the check keeps the better)"),
           ("identity", "Fitted identity only (quicker)"),
           ("adapter", "Person adapter only"))

_CHOSEN = {"fitted": "Restorations of {name} now use the fitted identity.",
           "adapter": "Restorations of {name} now use the person adapter.",
           None: "What was learned did not beat {name}'s references on the held-out faces: restorations keep "
                 "using the references alone."}


class LearnDialog(QDialog):
    start_requested = Signal(str)  # method
    cancel_requested = Signal()

    def __init__(self, person_name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.person_name = person_name
        self.setWindowTitle(f"Learn {person_name}")
        self.resize(620, 420)
        layout = QVBoxLayout(self)
        layout.addWidget(label(
            f"FaceMe learns {person_name} from their own faces in the album (at least 8), then restores a few "
            "held-out faces with and without what it learned; it is used only where it does better.", wrap=True))
        self.method = QComboBox()
        for key, text in METHODS:
            self.method.addItem(text, key)
        layout.addWidget(self.method)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.status = label("", "Muted", wrap=True)
        layout.addWidget(self.status)
        self.figures = QPlainTextEdit()
        self.figures.setReadOnly(True)
        self.figures.setFont(QFont("monospace"))
        self.figures.setVisible(False)
        layout.addWidget(self.figures, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.start_button = button("Start learning", primary=True)
        self.start_button.clicked.connect(lambda: self.start_requested.emit(self.method.currentData()))
        self.cancel_button = button("Cancel", tooltip="Stop at the next step; learning again resumes from there")
        self.cancel_button.clicked.connect(self._cancel)
        self.cancel_button.setEnabled(False)
        self.close_button = button("Close")
        self.close_button.clicked.connect(self.close)
        for b in (self.start_button, self.cancel_button, self.close_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.running = False
        self.last_step = ""

    # --- what the page's job reports ----------------------------------------------------------------
    def show_started(self) -> None:
        self.running = True
        self.start_button.setEnabled(False)
        self.method.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.figures.setVisible(False)
        self.last_step = ""
        self.status.setText("Starting…")

    def show_progress(self, done: int, total: int, message: str) -> None:
        self.progress.setRange(0, max(total, 0))
        if total > 0:
            self.progress.setValue(min(done, total))
        if message:
            self.last_step = message
            self.status.setText(message[:1].upper() + message[1:])

    def show_result(self, outcome: LearnOutcome) -> None:
        self._ended()
        self.status.setText(_CHOSEN.get(outcome.chosen, _CHOSEN[None]).format(name=self.person_name))
        self.figures.setPlainText("\n".join(outcome.lines))
        self.figures.setVisible(True)

    def show_failure(self, message: UserMessage) -> None:
        self._ended()
        self.status.setText(message.text())

    def show_cancelled(self) -> None:
        self._ended()
        where = f" ({self.last_step})" if self.last_step else ""
        self.status.setText(f"Stopped{where}. What was learned so far is kept: Start learning again goes on from "
                            "there.")

    def _ended(self) -> None:
        self.running = False
        self.progress.setVisible(False)
        self.cancel_button.setEnabled(False)
        self.start_button.setEnabled(True)
        self.method.setEnabled(True)

    def _cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.status.setText("Stopping at the next step…")
        self.cancel_requested.emit()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self.running:  # closing the dialog stops the learning the same way Cancel does
            self.cancel_requested.emit()
        super().closeEvent(event)
