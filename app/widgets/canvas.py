"""Photo views with zoom and pan: a plain viewer, the faces view and the before/after comparison.

Everything is painted from QImages already decoded by workers; painting only scales what is visible.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (QColor, QFont, QImage, QMouseEvent, QPainter, QPainterPath, QPen, QWheelEvent)
from PySide6.QtWidgets import QSizePolicy, QWidget

from app import theme

_MIN_SCALE_FACTOR = 0.5  # of the fitted scale
_MAX_SCALE = 16.0


class ImageCanvas(QWidget):
    """Shows one image fitted to the widget; wheel zooms around the cursor, dragging pans."""

    zoom_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("PhotoCanvas")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(240, 200)
        self.setMouseTracking(True)
        self._image: QImage | None = None
        self._zoom = 1.0  # relative to "fit"
        self._centre = QPointF()  # image coordinates at the widget's centre
        self._drag_from: QPointF | None = None
        self.placeholder = ""

    # --- public --------------------------------------------------------------------------------
    def set_image(self, image: QImage | None, keep_view: bool = False) -> None:
        same_size = self._image is not None and image is not None and image.size() == self._image.size()
        self._image = image
        if not (keep_view and same_size):
            self.fit()
        self.update()

    def image(self) -> QImage | None:
        return self._image

    def fit(self) -> None:
        self._zoom = 1.0
        if self._image is not None:
            self._centre = QPointF(self._image.width() / 2, self._image.height() / 2)
        self.zoom_changed.emit(self.scale())
        self.update()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        if self._image is None:
            return
        anchor = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        before = self.to_image(anchor)
        fit = self._fit_scale()
        self._zoom = max(_MIN_SCALE_FACTOR, min(_MAX_SCALE / max(fit, 1e-6), self._zoom * factor))
        after = self.to_image(anchor)
        self._centre += before - after
        self.zoom_changed.emit(self.scale())
        self.update()

    def scale(self) -> float:
        return self._fit_scale() * self._zoom

    # --- geometry ------------------------------------------------------------------------------
    def _fit_scale(self) -> float:
        if self._image is None or self._image.isNull():
            return 1.0
        margin = 16
        return min((self.width() - margin) / self._image.width(), (self.height() - margin) / self._image.height())

    def to_image(self, p: QPointF) -> QPointF:
        s = self.scale()
        return QPointF((p.x() - self.width() / 2) / s + self._centre.x(), (p.y() - self.height() / 2) / s + self._centre.y())

    def to_widget(self, p: QPointF) -> QPointF:
        s = self.scale()
        return QPointF((p.x() - self._centre.x()) * s + self.width() / 2, (p.y() - self._centre.y()) * s + self.height() / 2)

    def image_rect(self) -> QRectF:
        if self._image is None:
            return QRectF()
        return QRectF(self.to_widget(QPointF(0, 0)), self.to_widget(QPointF(self._image.width(), self._image.height())))

    # --- painting ------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.scale() < 2)
        rect = QRectF(self.rect())
        path = QPainterPath()
        path.addRoundedRect(rect, 10, 10)
        painter.fillPath(path, QColor("#22262e"))
        if self._image is None or self._image.isNull():
            painter.setPen(QColor("#aab2c0"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
            return
        painter.setClipPath(path)
        self.paint_content(painter)

    def paint_content(self, painter: QPainter) -> None:
        painter.drawImage(self.image_rect(), self._image)

    # --- interaction ---------------------------------------------------------------------------
    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom_by(1.25 ** steps, event.position())

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag_from = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._drag_from is not None:
            delta = event.position() - self._drag_from
            self._drag_from = event.position()
            s = self.scale()
            self._centre -= QPointF(delta.x() / s, delta.y() / s)
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._drag_from = None
        self.unsetCursor()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.fit()

    def resizeEvent(self, event) -> None:  # noqa: N802
        self.zoom_changed.emit(self.scale())
        super().resizeEvent(event)


def _draw_tag(painter: QPainter, anchor: QPointF, text: str, colour: QColor, right: bool = False) -> None:
    font = QFont(painter.font())
    font.setPointSizeF(9)
    font.setBold(True)
    painter.setFont(font)
    metrics = painter.fontMetrics()
    w = metrics.horizontalAdvance(text) + 14
    h = metrics.height() + 6
    x = anchor.x() - w if right else anchor.x()
    box = QRectF(x, anchor.y(), w, h)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(colour)
    painter.drawRoundedRect(box, 5, 5)
    painter.setPen(QColor("#ffffff"))
    painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)


class CompareView(ImageCanvas):
    """Before on the left of a draggable divider, after on the right; the same zoom and pan for both."""

    divider_moved = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("CompareView")
        self._after: QImage | None = None
        self._after_label = "After"
        self._divider = 0.5  # fraction of the widget's width
        self._dragging_divider = False

    def set_images(self, before: QImage | None, after: QImage | None, after_label: str = "After") -> None:
        """`after_label`: the tag over the after side (e.g. "Preview" for a quick preview)."""
        self._after = after
        self._after_label = after_label
        self.set_image(before, keep_view=True)

    def after_image(self) -> QImage | None:
        return self._after

    def after_label(self) -> str:
        return self._after_label

    def divider(self) -> float:
        return self._divider

    def set_divider(self, fraction: float) -> None:
        self._divider = max(0.0, min(1.0, fraction))
        self.divider_moved.emit(self._divider)
        self.update()

    def _divider_x(self) -> float:
        return self._divider * self.width()

    def paint_content(self, painter: QPainter) -> None:
        target = self.image_rect()
        before = self.image()
        if self._after is None:
            painter.drawImage(target, before)
            return
        x = self._divider_x()
        painter.save()
        painter.setClipRect(QRectF(0, 0, x, self.height()), Qt.ClipOperation.IntersectClip)
        painter.drawImage(target, before)
        painter.restore()
        painter.save()
        painter.setClipRect(QRectF(x, 0, self.width() - x, self.height()), Qt.ClipOperation.IntersectClip)
        painter.drawImage(target, self._after)
        painter.restore()
        # the divider and its handle
        painter.setPen(QPen(QColor("#ffffff"), 2))
        painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        centre = QPointF(x, self.height() / 2)
        painter.setBrush(QColor("#ffffff"))
        painter.setPen(QPen(QColor(0, 0, 0, 60), 1))
        painter.drawEllipse(centre, 15, 15)
        painter.setPen(QPen(QColor(theme.ACCENT), 2.2))
        for sign in (-1, 1):
            tip = centre + QPointF(sign * 9, 0)
            painter.drawLine(tip, tip + QPointF(-sign * 5, -5))
            painter.drawLine(tip, tip + QPointF(-sign * 5, 5))
        _draw_tag(painter, QPointF(12, 12), "Before", QColor(0, 0, 0, 150))
        _draw_tag(painter, QPointF(self.width() - 12, 12), self._after_label, QColor(theme.ACCENT), right=True)

    def _near_divider(self, pos: QPointF) -> bool:
        return self._after is not None and abs(pos.x() - self._divider_x()) <= 12

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton and self._near_divider(event.position()):
            self._dragging_divider = True
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._dragging_divider:
            self.set_divider(event.position().x() / max(1, self.width()))
            return
        if self._drag_from is None:
            if self._near_divider(event.position()):
                self.setCursor(Qt.CursorShape.SplitHCursor)
            else:
                self.unsetCursor()
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._dragging_divider = False
        super().mouseReleaseEvent(event)


@dataclass
class FaceMark:
    """One face drawn on the photo: its box in image pixels, who it is, and whether to restore it."""

    box: tuple[float, float, float, float]
    label: str
    person_id: int | None
    checked: bool = True
    note: str = ""


class FacesView(ImageCanvas):
    """The photo with each face outlined in its person's colour and labelled; clicking toggles it."""

    face_toggled = Signal(int, bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("PhotoFaces")
        self._faces: list[FaceMark] = []
        self._press: QPointF | None = None

    def set_faces(self, faces: list[FaceMark]) -> None:
        self._faces = list(faces)
        self.update()

    def faces(self) -> list[FaceMark]:
        return list(self._faces)

    def set_checked(self, index: int, checked: bool) -> None:
        if 0 <= index < len(self._faces) and self._faces[index].checked != checked:
            self._faces[index].checked = checked
            self.update()

    def paint_content(self, painter: QPainter) -> None:
        super().paint_content(painter)
        for face in self._faces:
            x1, y1, x2, y2 = face.box
            rect = QRectF(self.to_widget(QPointF(x1, y1)), self.to_widget(QPointF(x2, y2)))
            colour = theme.person_colour(face.person_id)
            pen = QPen(colour if face.checked else QColor(255, 255, 255, 150), 2.5 if face.checked else 1.5)
            if not face.checked:
                pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(rect, 6, 6)
            tag = ("✓ " if face.checked else "") + face.label
            _draw_tag(painter, QPointF(rect.left(), rect.bottom() + 4), tag,
                      colour if face.checked else QColor(40, 44, 52, 200))

    def face_at(self, pos: QPointF) -> int | None:
        p = self.to_image(pos)
        for index, face in enumerate(self._faces):
            x1, y1, x2, y2 = face.box
            if x1 <= p.x() <= x2 and y1 <= p.y() <= y2:
                return index
        return None

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._press = event.position()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        press, self._press = self._press, None
        super().mouseReleaseEvent(event)
        if press is not None and (event.position() - press).manhattanLength() < 4:
            index = self.face_at(event.position())
            if index is not None:
                face = self._faces[index]
                face.checked = not face.checked
                self.update()
                self.face_toggled.emit(index, face.checked)
