"""A badge saying whether a restored face still looks like the person ("looks like Ann"), with the
figures behind the verdict on hover. It shows an `engine.restore.identity_check.IdentityVerdict`;
the words come from the engine (`describe`, `describe_numbers`) so CLI and GUI say the same thing."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF
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
        for badge, (x1, y1, x2, y2) in zip(self.badges, self._boxes):
            bottom = self.canvas.to_widget(QPointF((x1 + x2) / 2, y2))
            x = int(bottom.x() - badge.width() / 2)
            y = int(bottom.y() + 4)
            x = max(0, min(x, self.canvas.width() - badge.width()))
            y = max(0, min(y, self.canvas.height() - badge.height()))
            if badge.pos().x() != x or badge.pos().y() != y:
                badge.move(x, y)
            badge.setVisible(True)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt API
        if watched is self.canvas and event.type() in (QEvent.Type.Paint, QEvent.Type.Resize):
            self.place()
        return False
