"""The Queue's "to review" list: faces of a batch whose identity check says they may not look like the
person any more, each with a button that restores it again (app.batch_flow.retry_face)."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QFrame, QHeaderView, QStyle, QStyleOptionViewItem, QTreeWidget, QTreeWidgetItem,
                               QVBoxLayout)

from app import theme
from app.widgets.common import button, label

_VERDICT_TEXT = {"uncertain": "May not look alike", "drifted": "Does not look alike"}
_VERDICT_COLOUR = {"uncertain": "#b7791f", "drifted": theme.DANGER}


class ReviewList(QFrame):
    """Hidden while there is nothing to review. `retry_requested(item_id)` when a face's Retry is clicked."""

    retry_requested = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("Panel")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 10)
        layout.setSpacing(6)
        self.title = label("To review", "SectionTitle")
        layout.addWidget(self.title)
        layout.addWidget(label("The identity check doubts that these faces still look like the person. Look at "
                               "them, or restore them again with other seeds (best of several tries).", "Muted",
                               wrap=True))
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Photo", "Check", "Face", ""])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        for column in (0, 1, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        self.tree.setMaximumHeight(180)
        layout.addWidget(self.tree)
        self.faces = []
        self.buttons = []
        self.hide()

    def set_faces(self, faces) -> None:
        """`faces`: app.batch_flow.ReviewFace entries."""
        self.faces = list(faces)
        self.tree.clear()
        self.buttons = []
        self.title.setText(f"To review ({len(self.faces)})")
        margins = _cell_margins(self.tree)
        for face in self.faces:
            row = QTreeWidgetItem([face.photo.name, _VERDICT_TEXT.get(face.verdict, face.verdict), face.text, ""])
            row.setToolTip(0, str(face.photo))
            row.setToolTip(2, face.text)
            row.setForeground(1, QColor(_VERDICT_COLOUR.get(face.verdict, theme.DANGER)))
            row.setData(0, Qt.ItemDataRole.UserRole, face.item_id)
            self.tree.addTopLevelItem(row)
            retry = button("Retry", "retry", tooltip="Restore this photo again with new seeds, keeping the try "
                                                     "most like the person; the result replaces this one")
            retry.clicked.connect(lambda _=False, item_id=face.item_id: self.retry_requested.emit(item_id))
            # the column and the row are sized from the item, not from the widget over it: give the item
            # the button's size and the cell's padding, or "Retry" is cut off
            retry.ensurePolished()  # the style sheet's padding is part of the button's size
            row.setSizeHint(3, retry.sizeHint() + margins)
            self.tree.setItemWidget(row, 3, retry)
            self.buttons.append(retry)
        self.setVisible(bool(self.faces))

    def set_busy(self, busy: bool) -> None:
        for retry in self.buttons:
            retry.setEnabled(not busy)


def _cell_margins(tree: QTreeWidget) -> QSize:
    """How much of a cell the style keeps around its content (studio.qss pads tree items): a widget set
    on a cell gets only the rest."""
    option = QStyleOptionViewItem()
    tree.initViewItemOption(option)
    option.rect = QRect(0, 0, 200, 100)
    inner = tree.style().subElementRect(QStyle.SubElement.SE_ItemViewItemText, option, tree)
    return QSize(option.rect.width() - inner.width(), option.rect.height() - inner.height())
