"""The identity badge (app/widgets/identity_badge.py): words, figures on hover, colour per verdict."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QColor


@pytest.fixture
def styled(qapp):
    from app import theme

    theme.apply(qapp)
    return qapp


@pytest.fixture(scope="module")
def check():
    from engine.faces.dlib_backend import DlibFaceAnalyzer
    from engine.restore.identity_check import IdentityCheck

    return IdentityCheck(DlibFaceAnalyzer())  # the models load on first embedding: none here


def _background(badge) -> QColor:
    image = badge.grab().toImage()
    return image.pixelColor(6, image.height() // 2)


def test_badge_shows_the_verdict_and_its_figures(qtbot, styled, check):
    from app.widgets.identity_badge import IdentityBadge

    badge = IdentityBadge()
    qtbot.addWidget(badge)
    assert badge.isHidden()

    t = check.thresholds
    badge.set_verdict(check.verdict(t.kept + 0.02, t.kept - 0.01, "references", "Ann"))
    badge.show()
    assert badge.text() == "Looks like Ann" and badge.objectName() == "BadgeOk"
    tooltip = badge.toolTip()
    assert f"restored {t.kept + 0.02:.3f}" in tooltip and f"before restoration {t.kept - 0.01:.3f}" in tooltip
    kept_colour = _background(badge)

    badge.set_verdict(check.verdict(t.drifted - 0.05, t.kept + 0.01, "references", "Ann"))
    assert badge.text() == f"Does not look like Ann ({t.drifted - 0.05:.3f} < {t.drifted:.3f})"
    assert badge.objectName() == "BadgeBad"
    drifted_colour = _background(badge)
    assert kept_colour.green() > kept_colour.red() and drifted_colour.red() > drifted_colour.green()

    badge.set_verdict(check.verdict((t.kept + t.drifted) / 2, None, "unrestored"))
    assert badge.text().startswith("May not look like the original face (") and badge.objectName() == "BadgeWarn"

    badge.set_verdict(None)
    assert badge.isHidden() and badge.text() == "" and badge.toolTip() == ""
