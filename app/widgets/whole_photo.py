"""The "Whole photo" panel: the repair recipe's steps as toggles (engine.repair.recipe.Recipe).

Shown on the Restore page and in the new-batch dialog. The panel only turns toggles into a Recipe and
back; which models are installed comes from a worker (app.restore_flow.repair_availability): a step whose
model is missing is disabled, its tooltip naming the model to download.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QPushButton, QSlider, QVBoxLayout, QWidget

from app.restore_flow import RepairAvailability
from app.widgets.common import label
from engine.repair.recipe import Recipe

#: the fading correction's strength when the toggle is first switched on (the slider's percent)
DEFAULT_FADE_PERCENT = 60
#: the model parts each upscaling factor uses (engine.repair.models.DEFAULT_UPSCALERS)
_UPSCALER_OF = {2: "realesrgan-x2", 4: "realesrgan-x4"}
_REPAIR_PARTS = ("scratch-detector", "lama")

_TIPS = {
    "repair": "Find scratches, creases and dust and paint them over (LaMa inpainting).",
    "fade": "Restore contrast and neutral colour to a faded print. No model; invents no colour.",
    "upscale": "Enlarge the whole photo (Real-ESRGAN); faces are then restored at the new size.",
    "colourise": "Colour a black-and-white photo (DDColor). Never applied unless ticked.",
    "show_damage": "Show the damage the detector finds, in red over the photo (what Repair paints over).",
}


class WholePhotoPanel(QWidget):
    """Toggles for repair, fading (with its strength), upscaling (off, ×2, ×4) and colourising (off by
    default). `recipe()` is what the page restores with; `changed` fires on every change. `damage_view`:
    offer "Show damage" (the Restore page draws the detector's mask over the photo)."""

    changed = Signal()
    #: the user asks to see (True) or hide (False) the damage mask over the photo
    show_damage_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None, title: bool = True, damage_view: bool = False):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        if title:
            layout.addWidget(label("Whole photo", "SectionTitle"))
        self.repair = QCheckBox("Repair scratches and dust")
        self.fade = QCheckBox("Fix fading")
        self.fade_strength = QSlider(Qt.Orientation.Horizontal)
        self.fade_strength.setRange(5, 100)
        self.fade_strength.setValue(DEFAULT_FADE_PERCENT)
        self.fade_strength.setToolTip("How strongly the fading is corrected")
        self.fade_strength.setEnabled(False)
        fade_row = QHBoxLayout()
        fade_row.addWidget(self.fade)
        fade_row.addWidget(self.fade_strength, 1)
        self.upscale = QComboBox()
        for text, factor in (("Upscale: off", 1), ("Upscale ×2", 2), ("Upscale ×4", 4)):
            self.upscale.addItem(text, factor)
        self.colourise = QCheckBox("Colourise")
        self.colour_note = label("A colourised photo is labelled as colourised in the saved file.", "Muted",
                                 wrap=True)
        for widget, key in ((self.repair, "repair"), (self.fade, "fade"), (self.upscale, "upscale"),
                            (self.colourise, "colourise")):
            widget.setToolTip(_TIPS[key])
        repair_row = QHBoxLayout()
        repair_row.addWidget(self.repair, 1)
        self.show_damage = QPushButton("Show damage")
        self.show_damage.setCheckable(True)
        self.show_damage.setToolTip(_TIPS["show_damage"])
        self.show_damage.setVisible(damage_view)
        self.show_damage.toggled.connect(self.show_damage_changed.emit)
        repair_row.addWidget(self.show_damage)
        layout.addLayout(repair_row)
        layout.addLayout(fade_row)
        layout.addWidget(self.upscale)
        layout.addWidget(self.colourise)
        layout.addWidget(self.colour_note)
        self.availability = RepairAvailability()
        self.repair.toggled.connect(lambda _on: self.changed.emit())
        self.fade.toggled.connect(self._fade_toggled)
        self.fade_strength.valueChanged.connect(lambda _v: self.changed.emit())
        self.upscale.currentIndexChanged.connect(lambda _i: self.changed.emit())
        self.colourise.toggled.connect(lambda _on: self.changed.emit())

    def _fade_toggled(self, on: bool) -> None:
        self.fade_strength.setEnabled(on)
        self.changed.emit()

    def recipe(self) -> Recipe | None:
        """The ticked steps (None: nothing ticked, the photo is restored as read)."""
        recipe = Recipe(repair=self.repair.isChecked() and self.repair.isEnabled(),
                        fade=self.fade_strength.value() / 100 if self.fade.isChecked() else 0.0,
                        upscale=int(self.upscale.currentData()),
                        colourise=self.colourise.isChecked() and self.colourise.isEnabled())
        return recipe if recipe.active else None

    def set_recipe(self, recipe: Recipe | None) -> None:
        recipe = recipe or Recipe()
        self.repair.setChecked(recipe.repair)
        self.fade.setChecked(recipe.fade > 0)
        if recipe.fade > 0:
            self.fade_strength.setValue(round(recipe.fade * 100))
        self.upscale.setCurrentIndex(max(0, self.upscale.findData(recipe.upscale)))
        self.colourise.setChecked(recipe.colourise)

    def set_availability(self, availability: RepairAvailability) -> None:
        """Disable the steps whose models are missing (unticking them), with a tooltip naming the model."""
        self.availability = availability
        for box, parts, key in ((self.repair, _REPAIR_PARTS, "repair"), (self.colourise, ("ddcolor",), "colourise")):
            ok = availability.ok(*parts)
            if not ok:
                box.setChecked(False)
            box.setEnabled(ok)
            box.setToolTip(_TIPS[key] if ok else availability.why_not(*parts))
        detector = availability.ok("scratch-detector")
        if not detector:
            self.show_damage.setChecked(False)
        self.show_damage.setEnabled(detector)
        self.show_damage.setToolTip(_TIPS["show_damage"] if detector else availability.why_not("scratch-detector"))
        model = self.upscale.model()
        missing = []
        for index in range(self.upscale.count()):
            part = _UPSCALER_OF.get(self.upscale.itemData(index))
            ok = part is None or availability.ok(part)
            item = model.item(index)
            item.setEnabled(ok)
            item.setToolTip("" if ok else availability.why_not(part))
            if not ok:
                missing.append(availability.why_not(part))
                if self.upscale.currentIndex() == index:
                    self.upscale.setCurrentIndex(0)
        self.upscale.setToolTip(" ".join([_TIPS["upscale"], *missing]))
        self.colour_note.setEnabled(self.colourise.isEnabled())
