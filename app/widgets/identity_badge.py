"""A badge saying whether a restored face still looks like the person ("looks like Ann"), with the
figures behind the verdict on hover. It shows an `engine.restore.identity_check.IdentityVerdict`;
the words come from the engine (`describe`, `describe_numbers`) so CLI and GUI say the same thing."""

from __future__ import annotations

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
