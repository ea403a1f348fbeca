"""A virtualised grid of thumbnails (photos, people, faces): QListView + a list model + a delegate.

Only the rows Qt paints ask for their thumbnail, and thumbnails are decoded on the loader's thread, so
a grid of 10,000 photos scrolls without the GUI thread ever reading an image file.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app import theme
from app.thumbnails import ThumbnailLoader

PayloadRole = Qt.ItemDataRole.UserRole + 1
KeyRole = Qt.ItemDataRole.UserRole + 2
SubtitleRole = Qt.ItemDataRole.UserRole + 3
AccentRole = Qt.ItemDataRole.UserRole + 4
_model_ids = itertools.count(1)


@dataclass
class GridItem:
    key: Any
    title: str
    subtitle: str = ""
    image: Path | None = None
    crop: tuple[float, float, float, float] | None = None
    payload: Any = None
    accent: str | None = None  # a colour for a ring (a person's colour, a reference pick)
    tooltip: str = ""


class ThumbnailModel(QAbstractListModel):
    def __init__(self, loader: ThumbnailLoader, thumb_size: int = 256, square: bool = False, parent=None,
                 cache_size: int = 3000):
        super().__init__(parent)
        self._id = next(_model_ids)
        self._loader = loader
        self._items: list[GridItem] = []
        self._rows: dict[Any, int] = {}
        self._key_rows: dict[Any, list[int]] = {}
        self._cache: OrderedDict[Any, QPixmap] = OrderedDict()
        self._requested: set[Any] = set()
        self._failed: set[Any] = set()
        self._cache_size = cache_size
        self.thumb_size = thumb_size
        self.square = square
        loader.loaded.connect(self._loaded)
        loader.failed.connect(self._load_failed)
        loader.dropped.connect(self._load_dropped)

    # --- content -------------------------------------------------------------------------------
    def set_items(self, items: list[GridItem]) -> None:
        self.beginResetModel()
        self._items = list(items)
        self._rows = {item.key: n for n, item in enumerate(self._items)}
        self._key_rows: dict[Any, list[int]] = {}
        for n, item in enumerate(self._items):
            self._key_rows.setdefault(self._cache_key(item), []).append(n)
        self._requested.clear()
        self.endResetModel()

    def items(self) -> list[GridItem]:
        return list(self._items)

    def item(self, row: int) -> GridItem:
        return self._items[row]

    def row_of(self, key) -> int | None:
        return self._rows.get(key)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._items):
            return None
        item = self._items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return item.title
        if role == Qt.ItemDataRole.DecorationRole:
            return self._thumbnail(item)
        if role == Qt.ItemDataRole.ToolTipRole:
            return item.tooltip or (str(item.image) if item.image else item.title)
        if role == PayloadRole:
            return item.payload
        if role == KeyRole:
            return item.key
        if role == SubtitleRole:
            return item.subtitle
        if role == AccentRole:
            return item.accent
        return None

    def flags(self, index: QModelIndex):
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsDragEnabled | Qt.ItemFlag.ItemIsDropEnabled if index.isValid() else base

    # --- thumbnails ----------------------------------------------------------------------------
    def _cache_key(self, item: GridItem):
        return (self._id, str(item.image), item.crop)

    def _thumbnail(self, item: GridItem) -> QPixmap | None:
        if item.image is None:
            return None
        key = self._cache_key(item)
        pixmap = self._cache.get(key)
        if pixmap is not None:
            self._cache.move_to_end(key)
            return pixmap
        if key not in self._requested and key not in self._failed:
            self._requested.add(key)
            self._loader.request(key, item.image, self.thumb_size, item.crop)
        return None

    def _loaded(self, key, image: QImage) -> None:
        if not isinstance(key, tuple) or key[0] != self._id:
            return
        self._requested.discard(key)
        self._cache[key] = QPixmap.fromImage(image)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        for row in self._key_rows.get(key, ()):
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def _load_failed(self, key, reason: str) -> None:
        if isinstance(key, tuple) and key[0] == self._id:
            self._requested.discard(key)
            self._failed.add(key)

    def _load_dropped(self, key) -> None:
        """Scrolled past before its turn: forgotten, so it is asked for again when painted again."""
        self._requested.discard(key)

    def loaded_count(self) -> int:
        return len(self._cache)


class ThumbnailDelegate(QStyledItemDelegate):
    """A rounded picture (cropped to fill for faces, fitted for photos), a title and a subtitle."""

    def __init__(self, cell: QSize, picture: int, round_picture: bool = False, parent=None):
        super().__init__(parent)
        self.cell = cell
        self.picture = picture
        self.round_picture = round_picture

    def sizeHint(self, option, index) -> QSize:  # noqa: N802
        return self.cell

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        rect = QRectF(option.rect).adjusted(4, 4, -4, -4)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hover = bool(option.state & QStyle.StateFlag.State_MouseOver)
        if selected or hover:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#dbe5fb") if selected else QColor("#f0f3f8"))
            painter.drawRoundedRect(rect, 10, 10)
        pic = QRectF(rect.center().x() - self.picture / 2, rect.top() + 8, self.picture, self.picture)
        path = QPainterPath()
        if self.round_picture:
            path.addEllipse(pic)
        else:
            path.addRoundedRect(pic, 8, 8)
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        painter.save()
        painter.setClipPath(path)
        painter.fillPath(path, QColor("#e8ebf0"))
        if isinstance(pixmap, QPixmap) and not pixmap.isNull():
            if self.round_picture:  # fill: crop the middle
                scaled = pixmap.scaled(pic.size().toSize(), Qt.AspectRatioMode.KeepAspectRatioByExpanding,
                                       Qt.TransformationMode.SmoothTransformation)
                sx = (scaled.width() - pic.width()) / 2
                sy = (scaled.height() - pic.height()) / 2
                painter.drawPixmap(pic.topLeft(), scaled, QRectF(sx, sy, pic.width(), pic.height()))
            else:  # fit: the whole photo
                scaled = pixmap.scaled(pic.size().toSize(), Qt.AspectRatioMode.KeepAspectRatio,
                                       Qt.TransformationMode.SmoothTransformation)
                x = pic.x() + (pic.width() - scaled.width()) / 2
                y = pic.y() + (pic.height() - scaled.height()) / 2
                painter.drawPixmap(int(x), int(y), scaled)
        else:
            painter.drawPixmap(int(pic.center().x() - 14), int(pic.center().y() - 14),
                               theme.pixmap("person" if self.round_picture else "open", 28, "#b3bac6"))
        painter.restore()
        accent = index.data(AccentRole)
        if accent:
            painter.setPen(QPen(QColor(accent), 3))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(path)
        title = index.data(Qt.ItemDataRole.DisplayRole) or ""
        subtitle = index.data(SubtitleRole) or ""
        font = QFont(option.font)
        text_top = pic.bottom() + 6
        if title:
            font.setBold(self.round_picture)
            painter.setFont(font)
            painter.setPen(QColor(theme.TEXT))
            metrics = painter.fontMetrics()
            box = QRect(int(rect.left() + 4), int(text_top), int(rect.width() - 8), metrics.height())
            painter.drawText(box, Qt.AlignmentFlag.AlignHCenter, metrics.elidedText(title, Qt.TextElideMode.ElideMiddle,
                                                                                   box.width()))
            text_top += metrics.height() + 1
        if subtitle:
            font.setBold(False)
            font.setPointSizeF(max(7.5, font.pointSizeF() - 1))
            painter.setFont(font)
            painter.setPen(QColor(theme.MUTED))
            metrics = painter.fontMetrics()
            box = QRect(int(rect.left() + 4), int(text_top), int(rect.width() - 8), metrics.height())
            painter.drawText(box, Qt.AlignmentFlag.AlignHCenter,
                             metrics.elidedText(subtitle, Qt.TextElideMode.ElideRight, box.width()))
        painter.restore()


class ThumbnailGrid(QListView):
    """The grid view: icon mode, uniform cells, batched layout (so 10,000 rows lay out lazily)."""

    activated_item = Signal(object)  # GridItem

    def __init__(self, model: ThumbnailModel, cell: QSize, picture: int, round_picture: bool = False,
                 object_name: str = "ThumbGrid", parent=None):
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setModel(model)
        self.setItemDelegate(ThumbnailDelegate(cell, picture, round_picture, self))
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(200)
        self.setGridSize(cell)
        self.setSpacing(0)
        self.setWrapping(True)
        self.setMouseTracking(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.doubleClicked.connect(lambda index: self.activated_item.emit(model.item(index.row())))

    #: shown in the middle of the grid while it has no items
    empty_text = ""

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().paintEvent(event)
        if self.empty_text and self.model().rowCount() == 0:
            painter = QPainter(self.viewport())
            painter.setPen(QColor(theme.MUTED))
            painter.drawText(self.viewport().rect().adjusted(20, 0, -20, 0),
                             int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap), self.empty_text)
            painter.end()

    def selected_items(self) -> list[GridItem]:
        model: ThumbnailModel = self.model()
        return [model.item(i.row()) for i in sorted(self.selectionModel().selectedIndexes(), key=lambda i: i.row())]
