"""A badge saying whether a restored face still looks like the person ("looks like Ann"), with the
figures behind the verdict on hover. It shows an `engine.restore.identity_check.IdentityVerdict`;
the words come from the engine (`describe`, `describe_numbers`) so CLI and GUI say the same thing."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, QRect
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from app.widgets.common import restyle
from engine.restore.identity_check import IdentityVerdict, describe, describe_numbers

#: badge style (resources/styles/studio.qss) per verdict
BADGE_KIND = {"kept": "BadgeOk", "uncertain": "BadgeWarn", "drifted": "BadgeBad"}


class IdentityBadge(QLabel):
    """Hidden until a verdict is set; `set_verdict(None)` hides it again (a face not checked)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.verdict: IdentityVerdict | None = None
        self.hide()

    def set_verdict(self, verdict: IdentityVerdict | None) -> None:
        self.verdict = verdict
        if verdict is None:
            self.clear()
            self.setToolTip("")
            self.hide()
            return
        text = describe(verdict)
        self.setText(text[:1].upper() + text[1:])
        self.setToolTip(describe_numbers(verdict))
        self.setObjectName(BADGE_KIND[verdict.verdict])
        restyle(self)
        self.show()


class FaceBadges(QObject):
    """One IdentityBadge per checked face, over an image canvas (app.widgets.canvas.ImageCanvas): each
    sits just below its face's box and follows the canvas's zoom and pan. `set_faces([(box, verdict)])`
    with boxes in image pixels; a verdict of None gets no badge."""

    def __init__(self, canvas: QWidget):
        super().__init__(canvas)
        self.canvas = canvas
        self.badges: list[IdentityBadge] = []
        self._boxes: list[tuple[float, float, float, float]] = []
        canvas.installEventFilter(self)

    def set_faces(self, faces) -> None:
        for badge in self.badges:
            badge.deleteLater()
        self.badges, self._boxes = [], []
        for box, verdict in faces:
            if verdict is None:
                continue
            badge = IdentityBadge(self.canvas)
            badge.set_verdict(verdict)
            badge.adjustSize()
            self.badges.append(badge)
            self._boxes.append(tuple(float(v) for v in box))
        self.place()

    def place(self) -> None:
        if not self.badges or self.canvas.image() is None:
            for badge in self.badges:
                badge.setVisible(False)
            return
        placed: list[QRect] = []
        for badge, box in sorted(zip(self.badges, self._boxes), key=lambda pair: (pair[1][3], pair[1][0])):
            rect = self._free_spot(badge, box, placed)
            placed.append(rect)
            if badge.pos() != rect.topLeft():
                badge.move(rect.topLeft())
            badge.setVisible(True)

    def _free_spot(self, badge: IdentityBadge, box, placed: list[QRect]) -> QRect:
        """Where the badge goes: centred just below its face, moved down past any badge already there
        (neighbouring faces' badges would otherwise lie on each other and hide one); when that runs off
        the canvas, up past them from above the face instead."""
        x1, y1, x2, y2 = box
        below = self.canvas.to_widget(QPointF((x1 + x2) / 2, y2))
        x = int(max(0, min(below.x() - badge.width() / 2, self.canvas.width() - badge.width())))
        rect = QRect(x, int(below.y() + 4), badge.width(), badge.height())
        rect = _past_others(rect, placed, down=True)
        if rect.bottom() <= self.canvas.height():
            return rect
        top = self.canvas.to_widget(QPointF((x1 + x2) / 2, y1))
        rect.moveTop(int(top.y() - 4 - badge.height()))
        rect = _past_others(rect, placed, down=False)
        rect.moveTop(max(0, min(rect.top(), self.canvas.height() - badge.height())))
        return rect

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt API
        if watched is self.canvas and event.type() in (QEvent.Type.Paint, QEvent.Type.Resize):
            self.place()
        return False


#: space left between two badges moved apart
_BADGE_GAP = 2


def _past_others(rect: QRect, placed: list[QRect], down: bool) -> QRect:
    """`rect` moved down (or up) until it overlaps none of `placed`."""
    rect = QRect(rect)
    moved = True
    while moved:
        moved = False
        for other in placed:
            if rect.intersects(other):
                if down:
                    rect.moveTop(other.bottom() + 1 + _BADGE_GAP)
                else:
                    rect.moveBottom(other.top() - 1 - _BADGE_GAP)
                moved = True
    return rect
