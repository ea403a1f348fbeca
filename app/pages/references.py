"""References: per person, the photos FaceMe uses to keep them recognisable — suggested with the reason,
or picked by the user (from their faces, or any photo file)."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (QDialog, QFileDialog, QFrame, QHBoxLayout, QListWidget, QListWidgetItem,
                               QStackedWidget, QVBoxLayout)

from app import catalog_views, people_actions, theme
from app.catalog_views import PersonCard, ReferenceRow
from app.pages.base import Page
from app.widgets.common import EmptyState, ProgressRow, button, label
from app.widgets.face_choice import FaceChoiceDialog
from app.widgets.thumbgrid import GridItem, ThumbnailGrid, ThumbnailModel

log = logging.getLogger(__name__)


class ReferencesPage(Page):
    key = "references"
    title = "References"
    subtitle = ("FaceMe keeps a face recognisable by looking at one to four clear photos of the same person. "
                "We suggest the best ones and say why; your own picks always win.")
    icon_name = "references"

    def __init__(self, context, parent=None):
        super().__init__(context, parent)
        self.people: list[PersonCard] = []
        self.person_id: int | None = None
        self.picks: list[ReferenceRow] = []
        self.suggestions: list[ReferenceRow] = []
        self._likeliest_face: int | None = None

        body = QHBoxLayout()
        body.setSpacing(16)
        left = QFrame()
        left.setObjectName("Panel")
        left.setFixedWidth(230)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(12, 12, 12, 12)
        left_layout.addWidget(label("People", "SectionTitle"))
        self.people_list = QListWidget()
        self.people_list.setIconSize(QSize(18, 18))
        self.people_list.setStyleSheet("QListWidget { border: none; }")
        self.people_list.currentRowChanged.connect(self._person_changed)
        left_layout.addWidget(self.people_list, 1)
        body.addWidget(left)

        self.stack = QStackedWidget()
        self.empty = EmptyState("references", "No people yet",
                                "References come from the people found in your albums. Scan an album first, "
                                "or restore a single photo without references.")
        self.stack.addWidget(self.empty)
        right = QFrame()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.setSpacing(8)

        picks_head = QHBoxLayout()
        self.picks_title = label("Your picks", "SectionTitle")
        picks_head.addWidget(self.picks_title)
        picks_head.addStretch(1)
        self.add_file_button = button("Add photo from disk…", "add")
        self.add_file_button.clicked.connect(self._choose_file)
        self.remove_button = button("Remove", "close")
        self.remove_button.clicked.connect(self.remove_selected_picks)
        self.reset_button = button("Use suggestions instead", "retry")
        self.reset_button.clicked.connect(self.clear_picks)
        for b in (self.add_file_button, self.remove_button, self.reset_button):
            picks_head.addWidget(b)
        right_layout.addLayout(picks_head)
        self.picks_hint = label("", "Muted", wrap=True)
        right_layout.addWidget(self.picks_hint)
        self.picks_model = ThumbnailModel(context.thumbnails, thumb_size=192, square=True, parent=self)
        self.picks_grid = ThumbnailGrid(self.picks_model, QSize(180, 214), 132, round_picture=False,
                                        object_name="FaceStrip")
        self.picks_grid.setMaximumHeight(250)
        self.picks_grid.empty_text = ("No picks yet: the suggestions below are used. Choose your own when you know "
                                      "better — a clear, recent photo of the face works best.")
        self.picks_grid.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        right_layout.addWidget(self.picks_grid)

        sugg_head = QHBoxLayout()
        sugg_head.addWidget(label("Suggested", "SectionTitle"))
        sugg_head.addStretch(1)
        self.use_button = button("Use selected", "check", primary=True)
        self.use_button.clicked.connect(self.pick_selected_suggestions)
        sugg_head.addWidget(self.use_button)
        right_layout.addLayout(sugg_head)
        self.suggested_model = ThumbnailModel(context.thumbnails, thumb_size=192, square=True, parent=self)
        self.suggested_grid = ThumbnailGrid(self.suggested_model, QSize(250, 226), 132, round_picture=False,
                                            object_name="FaceStrip")
        self.suggested_grid.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        right_layout.addWidget(self.suggested_grid, 1)
        self.progress = ProgressRow()
        right_layout.addWidget(self.progress)
        self.stack.addWidget(right)
        body.addWidget(self.stack, 1)
        self.layout_.addLayout(body, 1)
        context.catalog_changed.connect(self._catalog_changed)
        self._update_actions()

    # --- people --------------------------------------------------------------------------------
    def activated(self) -> None:
        self.reload_people()

    def _catalog_changed(self) -> None:
        if self.isVisible():
            self.reload_people()

    def reload_people(self) -> None:
        context = self.context
        context.runner.run(lambda progress, cancel: [c for c in catalog_views.list_people(context.catalog(), False, 1)
                                                     if not c.is_unknown],
                           "Loading people", on_result=self._show_people, on_failed=context.report)

    def _show_people(self, people: list[PersonCard]) -> None:
        self.people = people
        self.people_list.blockSignals(True)
        self.people_list.clear()
        for card in people:
            text = (f"{card.name}\n{card.picked_count} picked by you" if card.picked_count
                    else f"{card.name}\nusing suggestions")
            item = QListWidgetItem(theme.icon("person", theme.person_colour(card.id).name()), text)
            item.setData(Qt.ItemDataRole.UserRole, card.id)
            self.people_list.addItem(item)
        self.people_list.blockSignals(False)
        self.stack.setCurrentIndex(1 if people else 0)
        ids = [c.id for c in people]
        wanted = self.person_id if self.person_id in ids else (ids[0] if ids else None)
        if wanted is not None:
            self.select_person(wanted)

    def select_person(self, person_id: int) -> None:
        self.person_id = person_id
        for row in range(self.people_list.count()):
            if self.people_list.item(row).data(Qt.ItemDataRole.UserRole) == person_id:
                if self.people_list.currentRow() == row:
                    self.reload_references()
                else:
                    self.people_list.setCurrentRow(row)
                return

    def _person_changed(self, row: int) -> None:
        if row >= 0:
            self.person_id = self.people_list.item(row).data(Qt.ItemDataRole.UserRole)
            self.reload_references()

    # --- references ----------------------------------------------------------------------------
    def reload_references(self) -> None:
        if self.person_id is None:
            return
        context, pid = self.context, self.person_id
        context.runner.run(lambda progress, cancel: people_actions.references(context.catalog(), pid),
                           "Loading references", on_result=self._show_references, on_failed=context.report)

    def _show_references(self, result: tuple[list[ReferenceRow], list[ReferenceRow]]) -> None:
        self.picks, self.suggestions = result
        name = next((c.name for c in self.people if c.id == self.person_id), "")
        self.picks_title.setText(f"Your picks for {name}" if name else "Your picks")
        self.picks_hint.setText(
            "These photos are used when restoring this person." if self.picks else
            "You have not picked any photos, so the suggestions below are used. Select some and press "
            "“Use selected”, or add a photo from disk.")
        picked_ids = {r.face.id for r in self.picks}
        self.picks_model.set_items([GridItem(key=("pick", r.face.id), title=r.face.photo.name, subtitle="picked by you",
                                             image=r.face.photo, crop=r.face.box, payload=r,
                                             accent=theme.ACCENT) for r in self.picks])
        items = []
        for r in self.suggestions:
            lead, _, details = r.reason.partition(": ")
            items.append(GridItem(key=("sugg", r.face.id), title=lead[:1].upper() + lead[1:], subtitle=details,
                                  image=r.face.photo, crop=r.face.box, payload=r,
                                  accent=theme.ACCENT if r.face.id in picked_ids else None,
                                  tooltip=f"{r.face.photo}\nWhy: {r.reason}"))
        self.suggested_model.set_items(items)
        self._update_actions()

    def _update_actions(self) -> None:
        self.use_button.setEnabled(bool(self.suggested_grid.selectionModel().selectedIndexes()))
        self.remove_button.setEnabled(bool(self.picks_grid.selectionModel().selectedIndexes()))
        self.reset_button.setEnabled(bool(self.picks))
        self.add_file_button.setEnabled(self.person_id is not None)

    def select_suggestions(self, face_ids: list[int]) -> None:
        selection = self.suggested_grid.selectionModel()
        selection.clearSelection()
        for fid in face_ids:
            row = self.suggested_model.row_of(("sugg", fid))
            if row is not None:
                selection.select(self.suggested_model.index(row), selection.SelectionFlag.Select)

    def _save_picks(self, face_ids: list[int], doing: str) -> None:
        context, pid = self.context, self.person_id
        context.runner.run(lambda progress, cancel: people_actions.set_references(context.catalog(), pid, face_ids),
                           doing, on_result=lambda _: (self.reload_references(), context.catalog_changed.emit()),
                           on_failed=context.report)

    def pick_selected_suggestions(self) -> None:
        chosen = [i.payload.face.id for i in self.suggested_grid.selected_items()]
        current = [r.face.id for r in self.picks]
        self._save_picks(current + [f for f in chosen if f not in current], "Saving references")

    def remove_selected_picks(self) -> None:
        gone = {i.payload.face.id for i in self.picks_grid.selected_items()}
        self._save_picks([r.face.id for r in self.picks if r.face.id not in gone], "Saving references")

    def clear_picks(self) -> None:
        self._save_picks([], "Returning to suggestions")

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A photo of this person", "",
                                              "Photos (*.jpg *.jpeg *.png *.tif *.tiff *.webp *.heic *.heif *.bmp)")
        if path:
            self.add_file(Path(path))

    def add_file(self, path: Path) -> None:
        """A photo from disk as a reference: its only face, or the face the user picks (`choose_face`)."""
        context, pid = self.context, self.person_id
        self.progress.start(f"Reading {path.name}…")
        job = context.runner.run(
            lambda progress, cancel: _faces_and_likeliest(context.catalog(), pid, path, progress, cancel),
            f"Reading the faces of {path.name}", on_result=lambda found: self._faces_found(path, *found),
            on_failed=context.report, on_progress=self.progress.update_progress, on_finished=self.progress.stop)
        self.progress.cancel_clicked.connect(job.cancel)

    def _faces_found(self, path: Path, faces, likeliest: int | None = None) -> None:
        self._likeliest_face = likeliest  # the face "Which face?" chooses first
        face_id = faces[0].id if len(faces) == 1 else self.choose_face(path, faces)
        if face_id is None:
            return
        context, pid, picks = self.context, self.person_id, [r.face.id for r in self.picks]
        context.runner.run(
            lambda progress, cancel: people_actions.add_reference_file(context.catalog(), pid, path, picks,
                                                                       progress, cancel, face_id=face_id),
            f"Adding {path.name} as a reference", on_result=lambda _: self.reload_references(),
            on_failed=context.report)

    def choose_face(self, path: Path, faces) -> int | None:
        """Which face of a photo of several people is this person's (None: cancelled): the faces as
        thumbnails, the likeliest (most like the person's own faces, else the largest) chosen already."""
        name = next((c.name for c in self.people if c.id == self.person_id), "this person")
        dialog = FaceChoiceDialog(self.context.thumbnails, path, faces, name, self._likeliest_face, self)
        return dialog.chosen_id() if dialog.exec() == QDialog.DialogCode.Accepted else None


def _faces_and_likeliest(catalog, person_id: int, path: Path, progress, cancel):
    """A photo file's faces (scanned into the catalog) and, of several, the one most like the person."""
    faces = people_actions.reference_file_faces(catalog, person_id, path, progress, cancel)
    likeliest = people_actions.likeliest_face(catalog, person_id, [f.id for f in faces]) if len(faces) > 1 else None
    return faces, likeliest
