"""What every page has: a key, a title and icon for the side bar, a header, and hooks."""

from __future__ import annotations

from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.context import AppContext
from app.widgets.common import PageHeader


class Page(QWidget):
    key = ""
    title = ""
    subtitle = ""
    icon_name = ""

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.setSpacing(14)
        self.header = PageHeader(self.title, self.subtitle)
        self.layout_.addWidget(self.header)

    def activated(self) -> None:
        """Called each time the page is shown."""

    def shutdown(self) -> None:
        """Called when the window closes, before the jobs are stopped."""
