"""The app's look: the style sheet and the icon set in `resources/`, tinted at load time."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PySide6.QtCore import QByteArray, QSize, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication


def find_resources() -> Path:
    """The `resources/` folder: inside the package in an installed wheel (the build copies it to
    app/resources, see installers/build_hooks.py), next to the package folders in a checkout or an
    editable install. The style sheet marks the right folder, so an unrelated `resources/` beside an
    installed package is never taken for ours."""
    package = Path(__file__).resolve().parent
    candidates = (package / "resources", package.parent / "resources")
    for candidate in candidates:
        if (candidate / "styles" / "studio.qss").is_file():
            return candidate
    raise FileNotFoundError(
        f"FaceMe Studio's resources (icons, style sheet) are missing: looked in {candidates[0]} and "
        f"{candidates[1]}; reinstall the app"
    )


RESOURCES = find_resources()
ICONS = RESOURCES / "icons"
STYLE_SHEET = RESOURCES / "styles" / "studio.qss"

TEXT = "#1f2430"
MUTED = "#5b6472"
ACCENT = "#3d6ce0"
ACCENT_DARK = "#2349b5"
DANGER = "#c8423b"
SUCCESS = "#2f9e5b"
#: the stroke colour the SVG files are drawn with; replaced to tint an icon
_DRAWN_WITH = "#1f2430"

#: one colour per person, used for face outlines so the same person keeps the same colour
PERSON_COLOURS = ("#3d6ce0", "#e0803d", "#2f9e5b", "#c8423b", "#8a4fd6", "#1d9bb0", "#c2a01e", "#d14f93")


def person_colour(person_id: int | None) -> QColor:
    if person_id is None:
        return QColor("#9aa3b2")
    return QColor(PERSON_COLOURS[person_id % len(PERSON_COLOURS)])


@lru_cache(maxsize=256)
def _svg_pixmap(name: str, colour: str, size: int) -> QPixmap:
    svg = (ICONS / f"{name}.svg").read_text(encoding="utf-8").replace(_DRAWN_WITH, colour)
    renderer = QSvgRenderer(QByteArray(svg.encode("utf-8")))
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    renderer.render(painter)
    painter.end()
    return pixmap


def icon(name: str, colour: str = TEXT, active_colour: str | None = None) -> QIcon:
    """An icon from resources/icons/NAME.svg drawn in `colour` (and `active_colour` when selected)."""
    result = QIcon()
    for size in (16, 24, 32, 48):
        result.addPixmap(_svg_pixmap(name, colour, size), QIcon.Mode.Normal, QIcon.State.Off)
        result.addPixmap(_svg_pixmap(name, "#a3aab6", size), QIcon.Mode.Disabled, QIcon.State.Off)
        if active_colour:
            result.addPixmap(_svg_pixmap(name, active_colour, size), QIcon.Mode.Selected, QIcon.State.Off)
    return result


def pixmap(name: str, size: int, colour: str = TEXT) -> QPixmap:
    return _svg_pixmap(name, colour, size)


def app_icon() -> QIcon:
    result = QIcon()
    renderer = QSvgRenderer(str(ICONS / "logo.svg"))
    for size in (16, 32, 64, 128, 256):
        pm = QPixmap(QSize(size, size))
        pm.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pm)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        result.addPixmap(pm)
    return result


def apply(app: QApplication) -> None:
    """Fusion style + our palette and style sheet, so the app looks the same on every platform."""
    app.setStyle("Fusion")
    palette = app.palette()
    palette.setColor(QPalette.ColorRole.Window, QColor("#f6f7f9"))
    palette.setColor(QPalette.ColorRole.Base, QColor("#ffffff"))
    palette.setColor(QPalette.ColorRole.Text, QColor(TEXT))
    palette.setColor(QPalette.ColorRole.WindowText, QColor(TEXT))
    palette.setColor(QPalette.ColorRole.ButtonText, QColor(TEXT))
    palette.setColor(QPalette.ColorRole.Highlight, QColor("#dbe5fb"))
    palette.setColor(QPalette.ColorRole.HighlightedText, QColor(TEXT))
    palette.setColor(QPalette.ColorRole.PlaceholderText, QColor("#8a92a0"))
    app.setPalette(palette)
    font = QFont(app.font())
    font.setPointSizeF(10)
    app.setFont(font)
    # url() in a style sheet is relative to the working directory: point it at our icons
    app.setStyleSheet(STYLE_SHEET.read_text(encoding="utf-8").replace("@ICONS@", ICONS.as_posix()))
    app.setWindowIcon(app_icon())
