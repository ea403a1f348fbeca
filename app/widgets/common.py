"""Small building blocks every page uses, so that pages look alike."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSizePolicy, QToolButton,
                               QVBoxLayout, QWidget)

from app import theme
from app.messages import UserMessage


def button(text: str, icon_name: str | None = None, *, primary: bool = False, danger: bool = False,
           tooltip: str = "") -> QPushButton:
    b = QPushButton(text)
    if icon_name:
        b.setIcon(theme.icon(icon_name, "#ffffff" if primary else theme.TEXT))
    if primary:
        b.setProperty("primary", True)
    if danger:
        b.setProperty("danger", True)
    if tooltip:
        b.setToolTip(tooltip)
    b.setCursor(Qt.CursorShape.PointingHandCursor)
    return b


def tool_button(icon_name: str, tooltip: str) -> QToolButton:
    b = QToolButton()
    b.setIcon(theme.icon(icon_name))
    b.setToolTip(tooltip)
    b.setAutoRaise(False)
    b.setCursor(Qt.CursorShape.PointingHandCursor)
    return b


def label(text: str = "", object_name: str | None = None, *, wrap: bool = False) -> QLabel:
    lab = QLabel(text)
    if object_name:
        lab.setObjectName(object_name)
    lab.setWordWrap(wrap)
    return lab


def badge(text: str, kind: str = "") -> QLabel:
    """kind: "" (accent), "Warn", "Ok", "Bad"."""
    lab = QLabel(text)
    lab.setObjectName(f"Badge{kind}")
    lab.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
    return lab


def restyle(widget: QWidget) -> None:
    """Re-apply the style sheet after a dynamic property changed."""
    widget.style().unpolish(widget)
    widget.style().polish(widget)


class PageHeader(QWidget):
    def __init__(self, title: str, subtitle: str, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        text = QVBoxLayout()
        text.setSpacing(2)
        self.title = label(title, "PageTitle")
        self.subtitle = label(subtitle, "PageSubtitle", wrap=True)
        text.addWidget(self.title)
        text.addWidget(self.subtitle)
        layout.addLayout(text, 1)
        self.actions = QHBoxLayout()
        self.actions.setSpacing(8)
        layout.addLayout(self.actions)

    def add_action(self, widget: QWidget) -> QWidget:
        self.actions.addWidget(widget)
        return widget


class Banner(QFrame):
    """An inline message (error / info / success) with an optional action; never a blocking dialog."""

    action_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Banner")
        self.setProperty("kind", "info")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 10, 10, 10)
        layout.setSpacing(12)
        self._icon = QLabel()
        self._icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self._icon)
        text = QVBoxLayout()
        text.setSpacing(2)
        self.title = label("", "BannerTitle", wrap=True)
        self.body = label("", wrap=True)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        text.addWidget(self.title)
        text.addWidget(self.body)
        layout.addLayout(text, 1)
        self.action = button("")
        self.action.clicked.connect(lambda: self.action_clicked.emit(self._action_key))
        layout.addWidget(self.action, 0, Qt.AlignmentFlag.AlignTop)
        close = tool_button("close", "Dismiss")
        close.setAutoRaise(True)
        close.setStyleSheet("QToolButton { border: none; background: transparent; }")
        close.clicked.connect(self.hide)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self._action_key = ""
        self.hide()

    def show_message(self, kind: str, title: str, body: str, action: str = "", action_key: str = "") -> None:
        self.setProperty("kind", kind)
        restyle(self)
        colour = {"error": theme.DANGER, "success": theme.SUCCESS}.get(kind, theme.ACCENT)
        self._icon.setPixmap(theme.pixmap({"error": "warning", "success": "check"}.get(kind, "info"), 22, colour))
        self.title.setText(title)
        self.body.setText(body)
        self.body.setVisible(bool(body))
        self._action_key = action_key
        self.action.setText(action)
        self.action.setVisible(bool(action))
        self.show()

    def show_error(self, message: UserMessage) -> None:
        title = message.title[:1].upper() + message.title[1:]
        action, key = ("Open Models", "models") if message.go_to == "models" else ("", "")
        self.show_message("error", title, message.text(), action, key)


class ProgressRow(QWidget):
    """A label above a thin progress bar and a cancel button, shown while a job runs.

    The label has a line of its own (wrapped when long): side by side in a narrow panel (Restore's), the
    label's minimum width, the bar and the button did not fit, and the bar was drawn over the label."""

    cancel_clicked = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.text = label("", "Muted", wrap=True)
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.cancel = button("Cancel", "stop")
        self.cancel.clicked.connect(self.cancel_clicked)
        layout.addWidget(self.text)
        row = QHBoxLayout()
        row.setSpacing(10)
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel)
        layout.addLayout(row)
        self.hide()

    def start(self, text: str) -> None:
        self.text.setText(text)
        self.bar.setRange(0, 0)
        self.cancel.setEnabled(True)
        self.show()

    def update_progress(self, done: int, total: int, message: str) -> None:
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))
        else:
            self.bar.setRange(0, 0)
        if message:
            self.text.setText(message)

    def stop(self) -> None:
        self.hide()


class ElidedPathLabel(QLabel):
    """A muted line with a path, shortened in its middle to the label's width (as it is resized), and
    below it, wrapped, an optional sentence; the tooltip has both in full."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Muted")
        self.setWordWrap(True)
        # any width will do: the path is shortened to it rather than widening the window
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._path_line = ""
        self._more = ""

    def set_lines(self, path_line: str, more: str = "") -> None:
        self._path_line, self._more = path_line, more
        self.setToolTip("\n".join(t for t in (path_line, more) if t))
        self._show()

    def full_text(self) -> str:
        return "\n".join(t for t in (self._path_line, self._more) if t)

    def _show(self) -> None:
        width = max(80, self.contentsRect().width())
        shown = self.fontMetrics().elidedText(self._path_line, Qt.TextElideMode.ElideMiddle, width)
        self.setText("\n".join(t for t in (shown, self._more) if t))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._show()


class EmptyState(QWidget):
    """A centred picture, a sentence and a button: what an empty page shows instead of a blank."""

    def __init__(self, icon_name: str, title: str, text: str, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        pic = QLabel()
        pic.setPixmap(theme.pixmap(icon_name, 56, "#aab2c0"))
        pic.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(pic)
        t = label(title, "SectionTitle")
        t.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(t)
        self.text = label(text, "EmptyState", wrap=True)
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.text)
        self.buttons = QHBoxLayout()
        self.buttons.addStretch(1)
        self.buttons.addStretch(1)
        layout.addSpacing(8)
        layout.addLayout(self.buttons)
        layout.addStretch(2)

    def add_button(self, widget: QWidget) -> QWidget:
        self.buttons.insertWidget(self.buttons.count() - 1, widget)
        return widget


def card() -> QFrame:
    frame = QFrame()
    frame.setObjectName("Card")
    return frame
