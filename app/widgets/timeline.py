"""A person's timeline (issue 23): their faces by year, references marked, the eras that lack a reference
highlighted, and the birth year the user can set. Shows an `app.people_actions.TimelineView`; setting
the year is the page's job (`birth_year_changed`)."""

from __future__ import annotations

from datetime import date

from PySide6.QtCore import Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QHBoxLayout, QSpinBox, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from app import theme
from app.people_actions import TimelineView
from app.widgets.common import label
from engine.photo_dates import EARLIEST_YEAR
from engine.text import plural

#: the spin box's lowest value stands for "unknown" (the CLI's `--born unknown`)
UNKNOWN_YEAR = EARLIEST_YEAR - 101
#: the background of an era that lacks a reference
LACKING = "#fbe3e1"


class TimelineWidget(QWidget):
    birth_year_changed = Signal(object)  # int, or None for unknown

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.view: TimelineView | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        top = QHBoxLayout()
        top.addWidget(label("Born"))
        self.born = QSpinBox()
        self.born.setRange(UNKNOWN_YEAR, date.today().year)
        self.born.setSpecialValueText("unknown")
        self.born.setValue(UNKNOWN_YEAR)
        self.born.setToolTip("The year this person was born: references are then chosen by age")
        self.born.editingFinished.connect(self._born_edited)
        top.addWidget(self.born)
        self.born_note = label("", "Muted")
        top.addWidget(self.born_note, 1)
        layout.addLayout(top)
        self.years = QTreeWidget()
        self.years.setObjectName("TimelineYears")
        self.years.setHeaderLabels(["Year", "Age", "Faces", "References", "Photos"])
        self.years.setRootIsDecorated(False)
        layout.addWidget(self.years, 2)
        self.eras = QTreeWidget()
        self.eras.setObjectName("TimelineEras")
        self.eras.setHeaderLabels(["Era", "Faces", "References"])
        self.eras.setRootIsDecorated(False)
        layout.addWidget(self.eras, 1)
        self.set_view(None)

    def set_view(self, view: TimelineView | None) -> None:
        self.view = view
        self.years.clear()
        self.eras.clear()
        self.born.setEnabled(view is not None)
        self.born.blockSignals(True)
        self.born.setValue(view.born if view is not None and view.born is not None else UNKNOWN_YEAR)
        self.born.blockSignals(False)
        if view is None:
            self.born_note.setText("")
            return
        if view.born is None and view.estimated_born is not None:
            self.born_note.setText(f"about {view.estimated_born}, estimated from dated faces and apparent ages")
        elif view.born is None:
            self.born_note.setText("unknown: faces are grouped by decade")
        else:
            self.born_note.setText("")
        for year in view.years:
            item = QTreeWidgetItem([year.when, year.age, str(len(year.face_ids)),
                                    "★ " * year.references if year.references else "", ", ".join(year.photos)])
            item.setToolTip(4, "\n".join(year.photos))
            self.years.addTopLevelItem(item)
        for era in view.eras:
            status = plural(era.references, "reference") if era.references else "no reference"
            item = QTreeWidgetItem([era.name, str(era.faces), status])
            if era.lacks_reference:
                for column in range(3):
                    item.setBackground(column, QBrush(QColor(LACKING)))
                item.setForeground(2, QBrush(QColor(theme.DANGER)))
                tip = "No reference of this age: faces of this era are restored with references of another age."
                if era.suggested:
                    tip += "\nSuggested: " + ", ".join(era.suggested)
                item.setToolTip(2, tip)
            self.eras.addTopLevelItem(item)
        for tree in (self.years, self.eras):
            for column in range(tree.columnCount() - 1):
                tree.resizeColumnToContents(column)

    def lacking_eras(self) -> list[str]:
        return [e.name for e in self.view.eras if e.lacks_reference] if self.view is not None else []

    def set_born(self, year: int | None) -> None:
        """As the user types a year (or "unknown") and leaves the field."""
        self.born.setValue(UNKNOWN_YEAR if year is None else year)
        self._born_edited()

    def _born_edited(self) -> None:
        if self.view is None:
            return
        value = self.born.value()
        year = None if value == UNKNOWN_YEAR else value
        if year != self.view.born:
            self.birth_year_changed.emit(year)
