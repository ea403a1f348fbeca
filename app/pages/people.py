"""People: a card per person; rename, merge (drag a card onto another, or select and merge), split,
"not this person", confirm, hide; the unknown bucket of faces that fit no one. A person's Timeline tab
(faces by year, eras without a reference, the birth year) and "Learn this person…" (a badge on the
cards of people restored with what was learned)."""

from __future__ import annotations

import logging

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QFrame, QHBoxLayout, QLineEdit, QMenu, QMessageBox,
                               QSplitter, QStackedWidget, QTabWidget, QVBoxLayout, QWidget)

from app import catalog_views, people_actions, theme
from app.catalog_views import PersonCard
from app.pages.base import Page
from app.widgets.common import EmptyState, button, label
from app.widgets.learn_dialog import LearnDialog
from app.widgets.timeline import TimelineWidget
from app.widgets.thumbgrid import GridItem, ThumbnailGrid, ThumbnailModel
from engine.text import plural

log = logging.getLogger(__name__)


class PeopleGrid(ThumbnailGrid):
    """Person cards; dropping selected cards onto another card asks to merge them into it."""

    merge_requested = Signal(object, list)  # target PersonCard, [PersonCard]

    def __init__(self, model: ThumbnailModel):
        super().__init__(model, QSize(150, 178), 112, round_picture=True, object_name="PeopleGrid")
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setDropIndicatorShown(True)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.source() is self:
            event.acceptProposedAction()
        else:
            event.ignore()  # files go to the main window

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if event.source() is self and self.indexAt(event.position().toPoint()).isValid():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        if event.source() is not self:
            event.ignore()
            return
        self.drop_on(self.indexAt(event.position().toPoint()).row())
        event.setDropAction(Qt.DropAction.IgnoreAction)  # the model itself never moves rows
        event.accept()

    def drop_on(self, row: int) -> None:
        if row < 0:
            return
        model: ThumbnailModel = self.model()
        target = model.item(row).payload
        sources = [i.payload for i in self.selected_items() if i.payload is not target]
        if target is not None and sources:
            self.merge_requested.emit(target, sources)


class PeoplePage(Page):
    key = "people"
    title = "People"
    subtitle = ("Faces grouped into people. Name them, merge the same person (drag one card onto another), "
                "split mixed groups, and say who is not who. Your corrections are kept on every scan.")
    icon_name = "people"

    def __init__(self, context, parent=None):
        super().__init__(context, parent)
        self.cards: list[PersonCard] = []
        self.current: PersonCard | None = None
        #: person id → the learned identity restorations use for them ("fitted v2")
        self.learned: dict[int, str] = {}
        self.learn_dialog: LearnDialog | None = None
        self.learn_job = None
        self.confirm_merges = True
        self.show_hidden = QCheckBox("Show hidden people")
        self.show_hidden.toggled.connect(lambda _: self.reload())
        self.header.add_action(self.show_hidden)
        self.merge_button = self.header.add_action(button("Merge selected", "merge",
                                                          tooltip="The selected people are the same person"))
        self.merge_button.clicked.connect(self.merge_selected)

        self.stack = QStackedWidget()
        self.empty = EmptyState("people", "No people yet",
                                "Add an album in the Library and scan it: the faces found are grouped into people "
                                "here.")
        self.empty.add_button(button("Go to Library", "library", primary=True)).clicked.connect(
            lambda: context.navigate.emit("library"))
        splitter = QSplitter(Qt.Orientation.Vertical)
        self.model = ThumbnailModel(context.thumbnails, thumb_size=160, square=True, parent=self)
        self.grid = PeopleGrid(self.model)
        self.grid.selectionModel().selectionChanged.connect(self._selection_changed)
        self.grid.merge_requested.connect(self._merge_dropped)
        splitter.addWidget(self.grid)
        splitter.addWidget(self._build_detail())
        splitter.setSizes([420, 300])
        splitter.setChildrenCollapsible(False)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(splitter)
        self.layout_.addWidget(self.stack, 1)
        context.catalog_changed.connect(self.reload)
        self._update_actions()

    def _build_detail(self) -> QWidget:
        panel = QFrame()
        panel.setObjectName("Panel")
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(16, 12, 16, 12)
        top = QHBoxLayout()
        self.avatar = label("")
        top.addWidget(self.avatar)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("Type a name and press Enter")
        self.name_edit.setMaximumWidth(280)
        self.name_edit.returnPressed.connect(self.rename_current)
        top.addWidget(self.name_edit)
        self.detail_info = label("", "Muted")
        top.addWidget(self.detail_info, 1)
        self.hide_button = button("Hide", "hide", tooltip="Hide strangers; their faces keep going to this card")
        self.hide_button.clicked.connect(self.toggle_hidden)
        top.addWidget(self.hide_button)
        self.refs_button = button("References…", "references")
        self.refs_button.clicked.connect(self._open_references)
        top.addWidget(self.refs_button)
        self.learn_button = button("Learn this person…", tooltip="Learn this person from their faces in the album; "
                                   "used only where a check shows it restores them better")
        self.learn_button.clicked.connect(self.open_learning)
        top.addWidget(self.learn_button)
        layout.addLayout(top)
        self.detail_tabs = QTabWidget()
        faces_tab = QWidget()
        faces_layout = QVBoxLayout(faces_tab)
        faces_layout.setContentsMargins(0, 6, 0, 0)
        self.timeline = TimelineWidget()
        self.timeline.birth_year_changed.connect(self.set_birth_year)
        self.detail_tabs.addTab(faces_tab, "Faces")
        self.detail_tabs.addTab(self.timeline, "Timeline")
        self.detail_tabs.currentChanged.connect(lambda _: self._load_timeline())
        layout.addWidget(self.detail_tabs, 1)
        self.faces_hint = label("Select faces below to correct them.", "Muted")
        faces_layout.addWidget(self.faces_hint)
        self.face_model = ThumbnailModel(self.context.thumbnails, thumb_size=128, square=True, parent=self)
        self.faces = ThumbnailGrid(self.face_model, QSize(108, 128), 84, round_picture=True, object_name="FaceStrip")
        self.faces.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        self.faces.empty_text = "Choose a person above to see their faces."
        faces_layout.addWidget(self.faces, 1)
        actions = QHBoxLayout()
        self.split_button = button("Move to a new person", "split",
                                   tooltip="These faces are someone else: they become a new person")
        self.split_button.clicked.connect(self.split_selected_faces)
        self.reject_button = button("Not this person", "reject",
                                    tooltip="Take these faces out; they will never be put back here")
        self.reject_button.clicked.connect(self.reject_selected_faces)
        self.confirm_button = button("Confirm", "check", tooltip="Yes, this is the person (never moved again)")
        self.confirm_button.clicked.connect(self.confirm_selected_faces)
        self.new_person_button = button("New person from these", "add")
        self.new_person_button.clicked.connect(self.new_person_from_selected)
        self.move_button = button("Move to…", "people", tooltip="These faces are someone you already have")
        self.move_menu = QMenu(self.move_button)
        self.move_menu.aboutToShow.connect(self._fill_move_menu)
        self.move_button.setMenu(self.move_menu)
        for b in (self.confirm_button, self.split_button, self.reject_button, self.new_person_button,
                  self.move_button):
            actions.addWidget(b)
        actions.addStretch(1)
        faces_layout.addLayout(actions)
        return panel

    # --- loading -------------------------------------------------------------------------------
    def activated(self) -> None:
        self.reload()

    def reload(self) -> None:
        context, hidden = self.context, self.show_hidden.isChecked()
        models_dir = context.preferences.models_dir

        def load(progress, cancel):
            catalog = context.catalog()
            return catalog_views.list_people(catalog, hidden), people_actions.learned_in_use(catalog, models_dir)

        self.context.runner.run(load, "Loading people", on_result=self._show_loaded, on_failed=context.report)

    def _show_loaded(self, loaded) -> None:
        cards, self.learned = loaded
        self._show_people(cards)

    def _show_people(self, cards: list[PersonCard]) -> None:
        keep = self.current.id if self.current is not None else "none"
        self.cards = cards
        items = []
        for card in cards:
            cover = card.cover
            subtitle = plural(card.face_count, "face")
            if card.hidden:
                subtitle += " · hidden"
            learned = self.learned.get(card.id)
            if learned:
                subtitle += " · ✦ learned"
            items.append(GridItem(key=("person", card.id), title=card.name, subtitle=subtitle,
                                  image=cover.photo if cover else None, crop=cover.box if cover else None,
                                  payload=card, accent=None if card.is_unknown else theme.person_colour(card.id).name(),
                                  tooltip=f"Restored with what FaceMe learned of {card.name} ({learned})"
                                  if learned else ""))
        self.model.set_items(items)
        self.stack.setCurrentIndex(1 if cards else 0)
        row = next((n for n, c in enumerate(cards) if c.id == keep), 0 if cards else None)
        if row is not None:
            self.grid.setCurrentIndex(self.model.index(row))
        else:
            self._show_person(None)

    def _selection_changed(self, *_args) -> None:
        selected = self.grid.selected_items()
        self._show_person(selected[-1].payload if len(selected) >= 1 else None)

    def _show_person(self, card: PersonCard | None) -> None:
        self.current = card
        if card is None:
            self.face_model.set_items([])
            self.name_edit.setText("")
            self.detail_info.setText("")
            self.timeline.set_view(None)
            self._update_actions()
            return
        self.avatar.setPixmap(theme.pixmap("unknown" if card.is_unknown else "person", 26,
                                           theme.person_colour(card.id).name()))
        self.name_edit.setText("" if card.is_unknown or card.name.startswith("person ") else card.name)
        self.name_edit.setPlaceholderText("Unknown faces (fit no one yet)" if card.is_unknown
                                          else "Type a name and press Enter")
        info = plural(card.face_count, "face")
        if card.reference_count:
            info += f" · {plural(card.reference_count, 'reference')}"
        if card.id in self.learned:
            info += f" · learned identity in use ({self.learned[card.id]})"
        self.detail_info.setText(info)
        self.hide_button.setText("Show" if card.hidden else "Hide")
        self.face_model.set_items([
            GridItem(key=("face", f.id), title="", subtitle="confirmed" if f.confirmed else "", image=f.photo,
                     crop=f.box, payload=f, tooltip=f"{f.photo.name}\nface #{f.id}")
            for f in card.faces])
        self._update_actions()
        self._load_timeline()

    def _update_actions(self) -> None:
        card = self.current
        person = card is not None and not card.is_unknown
        faces = bool(self.faces.selectionModel().selectedIndexes())
        selected_people = [i.payload for i in self.grid.selected_items() if not i.payload.is_unknown]
        self.merge_button.setEnabled(len(selected_people) >= 2)
        self.name_edit.setEnabled(person)
        self.hide_button.setEnabled(person)
        self.refs_button.setEnabled(person)
        self.learn_button.setEnabled(person)
        self.detail_tabs.setTabEnabled(1, person)
        self.split_button.setVisible(card is None or person)
        self.reject_button.setVisible(card is None or person)
        self.confirm_button.setVisible(card is None or person)
        self.new_person_button.setVisible(card is not None and card.is_unknown)
        for b in (self.split_button, self.reject_button, self.confirm_button, self.new_person_button,
                  self.move_button):
            b.setEnabled(faces)

    def selected_face_ids(self) -> list[int]:
        return [item.payload.id for item in self.faces.selected_items()]

    def select_people(self, person_ids: list[int | None]) -> None:
        """Select these cards (the People grid's own selection; used by keyboard and tests alike)."""
        selection = self.grid.selectionModel()
        selection.clearSelection()
        for pid in person_ids:
            row = self.model.row_of(("person", pid))
            if row is not None:
                selection.select(self.model.index(row), selection.SelectionFlag.Select)
                self.grid.setCurrentIndex(self.model.index(row)) if len(person_ids) == 1 else None

    def select_faces(self, face_ids: list[int]) -> None:
        selection = self.faces.selectionModel()
        selection.clearSelection()
        for fid in face_ids:
            row = self.face_model.row_of(("face", fid))
            if row is not None:
                selection.select(self.face_model.index(row), selection.SelectionFlag.Select)

    # --- actions -------------------------------------------------------------------------------
    def _run(self, fn, doing: str, on_result=None) -> None:
        context = self.context

        def done(value):
            if on_result is not None:
                on_result(value)
            context.catalog_changed.emit()

        context.runner.run(lambda progress, cancel: fn(context.catalog()), doing, on_result=done,
                           on_failed=context.report)

    def rename_current(self) -> None:
        card, name = self.current, self.name_edit.text().strip()
        if card is None or card.is_unknown or not name or name == card.name:
            return
        self._run(lambda catalog: people_actions.rename(catalog, card.id, name), f"Renaming {card.name}",
                  on_result=lambda namesakes: self._offer_namesake_merge(card.id, name, namesakes))

    def _offer_namesake_merge(self, person_id: int, name: str, namesakes: list[int]) -> None:
        """Names may repeat (two Sams), but a second "Ann" is more often Ann split in two: ask."""
        if namesakes and self.confirm_namesake_merge(name, len(namesakes)):
            self._run(lambda catalog: people_actions.merge(catalog, person_id, namesakes), f"Merging into {name}")

    def confirm_namesake_merge(self, name: str, others: int) -> bool:
        who = "Another person is" if others == 1 else f"{others} other people are"
        answer = QMessageBox.question(self, "Same name", f"{who} also named {name}. Are they the same person? "
                                      "Yes merges them into one; No keeps them apart (names may repeat).")
        return answer == QMessageBox.StandardButton.Yes

    def toggle_hidden(self) -> None:
        card = self.current
        if card is None or card.is_unknown:
            return
        self._run(lambda catalog: people_actions.hide(catalog, card.id, not card.hidden),
                  f"{'Showing' if card.hidden else 'Hiding'} {card.name}")

    def merge_selected(self) -> None:
        people = [i.payload for i in self.grid.selected_items() if not i.payload.is_unknown]
        if len(people) < 2:
            return
        into = max(people, key=lambda c: (not c.name.startswith("person "), c.face_count))
        self._merge(into, [p for p in people if p is not into])

    def _merge_dropped(self, target: PersonCard, sources: list[PersonCard]) -> None:
        sources = [s for s in sources if not s.is_unknown]
        if target.is_unknown or not sources:
            return
        if self.confirm_merges:
            names = ", ".join(s.name for s in sources)
            answer = QMessageBox.question(self, "Merge people", f"{names} and {target.name} are the same person?")
            if answer != QMessageBox.StandardButton.Yes:
                return
        self._merge(target, sources)

    def _merge(self, into: PersonCard, others: list[PersonCard]) -> None:
        ids = [o.id for o in others]
        self.current = into
        self._run(lambda catalog: people_actions.merge(catalog, into.id, ids), f"Merging into {into.name}")

    def split_selected_faces(self) -> None:
        card, faces = self.current, self.selected_face_ids()
        if card is None or card.is_unknown or not faces:
            return
        self._run(lambda catalog: people_actions.split(catalog, card.id, faces), f"Splitting {card.name}")

    def reject_selected_faces(self) -> None:
        card, faces = self.current, self.selected_face_ids()
        if card is None or card.is_unknown or not faces:
            return
        self._run(lambda catalog: people_actions.reject(catalog, card.id, faces), f"Correcting {card.name}")

    def confirm_selected_faces(self) -> None:
        card, faces = self.current, self.selected_face_ids()
        if card is None or card.is_unknown or not faces:
            return
        self._run(lambda catalog: people_actions.confirm(catalog, card.id, faces), f"Confirming {card.name}")

    def _fill_move_menu(self) -> None:
        self.move_menu.clear()
        current = self.current.id if self.current is not None else None
        for card in self.cards:
            if card.is_unknown or card.id == current:
                continue
            action = self.move_menu.addAction(theme.icon("person", theme.person_colour(card.id).name()), card.name)
            action.triggered.connect(lambda _=False, pid=card.id: self.move_selected_faces_to(pid))

    def move_selected_faces_to(self, person_id: int) -> None:
        """These faces are that person (confirmed there; they leave the current person or the unknown)."""
        faces = self.selected_face_ids()
        if faces:
            self._run(lambda catalog: people_actions.confirm(catalog, person_id, faces), "Moving faces")

    def new_person_from_selected(self) -> None:
        faces = self.selected_face_ids()
        if faces:
            self._run(lambda catalog: people_actions.new_person_from(catalog, faces), "Creating a person")

    def _open_references(self) -> None:
        if self.current is not None and not self.current.is_unknown:
            self.context.navigate.emit("references")
            window = self.window()
            if hasattr(window, "references"):
                window.references.select_person(self.current.id)

    # --- timeline (issue 23) --------------------------------------------------------------------
    def _load_timeline(self) -> None:
        """The Timeline tab's data, read when that tab is shown (not on every selection)."""
        card = self.current
        if card is None or card.is_unknown:
            self.timeline.set_view(None)
            return
        if self.detail_tabs.currentWidget() is not self.timeline:
            return
        context, person_id = self.context, card.id

        def show(view) -> None:
            if self.current is not None and self.current.id == view.person_id:
                self.timeline.set_view(view)

        context.runner.run(lambda progress, cancel: people_actions.timeline(context.catalog(), person_id),
                           f"Reading {card.name}'s timeline", on_result=show, on_failed=context.report)

    def set_birth_year(self, year: int | None) -> None:
        card = self.current
        if card is None or card.is_unknown:
            return
        self._run(lambda catalog: people_actions.set_birth_year(catalog, card.id, year),
                  f"Setting {card.name}'s birth year")

    # --- learning (issue 21) --------------------------------------------------------------------
    def open_learning(self) -> LearnDialog | None:
        card = self.current
        if card is None or card.is_unknown:
            return None
        if self.learn_dialog is not None and self.learn_dialog.running:
            self.learn_dialog.raise_()  # one learning at a time: the one running is shown
            return self.learn_dialog
        dialog = LearnDialog(card.name, self)
        dialog.start_requested.connect(lambda method: self.start_learning(card, method))
        dialog.cancel_requested.connect(self.cancel_learning)
        self.learn_dialog = dialog
        dialog.show()
        return dialog

    def start_learning(self, card: PersonCard, method: str) -> None:
        from engine.errors import CancelledError
        from engine.learn.learning import LearnSettings

        context, dialog = self.context, self.learn_dialog
        settings, person_id = context.settings, card.id

        def work(progress, cancel):
            progress(0, 0, f"checking {card.name}'s faces")
            catalog = context.catalog()
            people_actions.check_learnable(catalog, person_id)  # before loading the model: a quick "too few"
            if cancel():
                raise CancelledError(f"learning {card.name} cancelled before it began")
            with context.model.use(settings, progress) as service:
                return people_actions.learn(catalog, service, person_id, LearnSettings(method=method), progress,
                                            cancel)

        def done(outcome) -> None:
            dialog.show_result(outcome)
            context.catalog_changed.emit()  # the badge

        dialog.show_started()
        self.learn_job = context.runner.run(work, f"Learning {card.name}", on_result=done,
                                            on_failed=dialog.show_failure, on_progress=dialog.show_progress,
                                            on_cancelled=dialog.show_cancelled)
        if self.learn_job.outcome == "refused":  # the window is closing
            dialog.show_cancelled()

    def cancel_learning(self) -> None:
        """Stops at the fit's next step, keeping its checkpoint (as Ctrl-C in `faceme people learn`)."""
        if self.learn_job is not None:
            self.learn_job.cancel()
