""""Which face?": a photo of several people added as someone's reference, each face shown as a
thumbnail of its crop, the one most likely theirs chosen already (the user confirms or picks another)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QSize
from PySide6.QtWidgets import QAbstractItemView, QDialog, QDialogButtonBox, QVBoxLayout, QWidget

from app.thumbnails import ThumbnailLoader
from app.widgets.common import label
from app.widgets.thumbgrid import GridItem, ThumbnailGrid, ThumbnailModel

#: a face's cell in the dialog, and the picture in it
FACE_CELL = QSize(150, 190)
FACE_PICTURE = 120


def face_size(face) -> float:
    """The longer side of the face's box, in photo pixels."""
    x1, y1, x2, y2 = face.box
    return max(x2 - x1, y2 - y1)


def likeliest_face(faces, likeliest_id: int | None = None) -> int:
    """The index of the face to choose first: `likeliest_id` (the face most like the person, when the
    person has faces to compare with), else the largest: someone adding a photo as a person's reference
    has usually taken it for that person, the main subject. Only a first choice: the user confirms."""
    ids = [face.id for face in faces]
    if likeliest_id in ids:
        return ids.index(likeliest_id)
    return max(range(len(faces)), key=lambda n: face_size(faces[n]))


def _where(n: int, count: int) -> str:
    return ("left", "middle", "right")[min(2, n * 3 // count)]


class FaceChoiceDialog(QDialog):
    """`faces`: engine.people.listing.FaceRow of one photo, left to right. `chosen_id()` after exec()."""

    def __init__(self, thumbnails: ThumbnailLoader, path: Path, faces, person: str = "this person",
                 likeliest_id: int | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Which face?")
        self.faces = list(faces)
        layout = QVBoxLayout(self)
        layout.addWidget(label(f"{path.name} shows {len(self.faces)} faces. Which one is {person}?", wrap=True))
        self.model = ThumbnailModel(thumbnails, thumb_size=FACE_PICTURE * 2, square=True, parent=self)
        self.model.set_items([GridItem(key=("face", face.id), title=f"Face {n + 1}",
                                       subtitle=f"{_where(n, len(self.faces))}, {face_size(face):.0f} px",
                                       image=face.photo, crop=face.box, payload=face)
                              for n, face in enumerate(self.faces)])
        self.grid = ThumbnailGrid(self.model, FACE_CELL, FACE_PICTURE, object_name="FaceStrip")
        self.grid.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        # room for a row of up to four faces beside each other, with the grid's padding and a scroll bar
        self.grid.setMinimumSize(FACE_CELL.width() * min(4, len(self.faces)) + 48, FACE_CELL.height() + 32)
        self.grid.activated_item.connect(lambda _item: self.accept())  # a double click chooses
        layout.addWidget(self.grid, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.choose_button = buttons.addButton("Use this face", QDialogButtonBox.ButtonRole.AcceptRole)
        self.choose_button.setProperty("primary", True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.grid.selectionModel().selectionChanged.connect(
            lambda *_: self.choose_button.setEnabled(self.chosen_id() is not None))
        if self.faces:
            self.select(likeliest_face(self.faces, likeliest_id))

    def select(self, row: int) -> None:
        self.grid.selectionModel().select(self.model.index(row), QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.grid.setCurrentIndex(self.model.index(row))

    def chosen_id(self) -> int | None:
        chosen = self.grid.selected_items()
        return chosen[0].payload.id if chosen else None
