"""A photo's repair recipe and the one function that runs it.

The steps run in this order, each optional: damage (scratches, creases, dust: the detector's mask or
the user's, filled by LaMa) → fading (levels and balance) → upscaling (×2 / ×4) → colour (DDColor, off
by default). Faces are detected and restored afterwards, on the repaired photo and at its scale.
`Recipe` is stored with a batch job (inside `RestoreOptions`), so a resumed job repairs as it began.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import UsageError
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report

UPSCALE_FACTORS = (1, 2, 4)


@dataclass(frozen=True)
class Recipe:
    """`repair`: find and inpaint damage (`mask_file`: the user's mask instead of the detector's);
    `fade`: strength of the fading correction, 0 (off) to 1; `local_contrast`: its CLAHE clip limit (0
    off); `upscale`: 1, 2 or 4 (`upscaler`: the model part, None for the factor's default);
    `colourise`: colour a black-and-white photo with DDColor (labelled in the output's metadata)."""

    repair: bool = False
    fade: float = 0.0
    upscale: int = 1
    colourise: bool = False
    upscaler: str | None = None
    mask_file: str | None = None
    local_contrast: float = 0.0

    def __post_init__(self):
        if not 0.0 <= float(self.fade) <= 1.0:
            raise UsageError(f"the fade strength must be between 0 and 1 (got {self.fade})")
        if self.upscale not in UPSCALE_FACTORS:
            raise UsageError(f"upscaling is ×2 or ×4 (got {self.upscale})")
        if self.mask_file is not None and not self.repair:
            raise UsageError("a damage mask file is used by the repair step: add --repair")
        if self.local_contrast < 0:
            raise UsageError(f"local contrast must not be negative (got {self.local_contrast})")

    @property
    def active(self) -> bool:
        return self.repair or self.fade > 0 or self.upscale > 1 or self.colourise

    @property
    def steps(self) -> list[str]:
        """The steps this recipe runs, in order."""
        return [name for name, on in (("repair", self.repair), ("fade", self.fade > 0),
                                      ("upscale", self.upscale > 1), ("colourise", self.colourise)) if on]

    def upscaler_part(self) -> str:
        from engine.repair.models import DEFAULT_UPSCALERS

        return self.upscaler or DEFAULT_UPSCALERS[self.upscale]

    def parts(self) -> tuple[str, ...]:
        """The model parts this recipe needs."""
        needed = []
        if self.repair:
            needed += ["lama"] + ([] if self.mask_file else ["scratch-detector"])
        if self.upscale > 1:
            needed.append(self.upscaler_part())
        if self.colourise:
            needed.append("ddcolor")
        return tuple(needed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Recipe | None:
        if not data:
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class RepairResult:
    """The repaired pixels, how much larger they are than the input, whether they were colourised, the
    damage mask used (input size), the steps run, and each step's output when they were kept."""

    pixels: np.ndarray
    scale: int = 1
    colourised: bool = False
    mask: np.ndarray | None = None
    steps: list[str] = field(default_factory=list)
    stages: list[tuple[str, np.ndarray]] = field(default_factory=list)


def damage_mask_for(pixels: np.ndarray, recipe: Recipe, models, cancel: CancelCheck | None = None) -> np.ndarray:
    """The recipe's damage mask: the user's file, else the detector's."""
    from engine.repair.damage_mask import detect_damage, read_mask

    if recipe.mask_file:
        return read_mask(recipe.mask_file, pixels.shape[:2])
    return detect_damage(pixels, models.scratch_detector(), cancel=cancel)


def run_recipe(pixels: np.ndarray, recipe: Recipe, models, progress: ProgressCallback | None = None,
               cancel: CancelCheck | None = None, keep_stages: bool = False) -> RepairResult:
    """Run `recipe` on `pixels` (H×W×3 or ×4 uint8) with the repair models `models`
    (engine.repair.models.RepairModels). Progress: 1000 units per step. CancelledError when asked."""
    steps = recipe.steps
    total = 1000 * max(len(steps), 1)
    result = RepairResult(pixels=pixels, steps=list(steps))
    for index, step in enumerate(steps):
        check_cancelled(cancel, "repair")

        def step_progress(done: int, step_total: int, message: str, base: int = index * 1000) -> None:
            report(progress, base + (1000 * done // step_total if step_total else 0), total, message)

        step_progress(0, 0, {"repair": "finding damage", "fade": "correcting fading",
                             "upscale": f"upscaling ×{recipe.upscale}", "colourise": "colourising"}[step])
        if step == "repair":
            from engine.repair.inpaint import inpaint

            result.mask = damage_mask_for(result.pixels, recipe, models, cancel)
            result.pixels = inpaint(result.pixels, result.mask, models.inpainter(), progress=step_progress,
                                    cancel=cancel)
        elif step == "fade":
            from engine.repair.fade import FadeSettings, correct_fade

            result.pixels = correct_fade(result.pixels, FadeSettings(strength=float(recipe.fade),
                                                                     local_contrast=recipe.local_contrast))
        elif step == "upscale":
            from engine.repair.upscale import upscale

            result.pixels = upscale(result.pixels, models.upscaler(recipe.upscaler_part()), recipe.upscale,
                                    progress=step_progress, cancel=cancel)
            result.scale = recipe.upscale
        else:
            from engine.repair.colourise import colourise

            result.pixels = colourise(result.pixels, models.colouriser())
            result.colourised = True
        if keep_stages:
            result.stages.append((step, result.pixels))
        report(progress, (index + 1) * 1000, total, f"{step} done")
    return result


def repair_loaded_image(loaded, recipe: Recipe, models, progress: ProgressCallback | None = None,
                        cancel: CancelCheck | None = None):
    """`loaded` (engine.imageio.LoadedImage) repaired by `recipe`: (the LoadedImage to restore and write
    — repaired pixels, alpha resized with them, colourised photos no longer grey and labelled in their
    XMP — and the RepairResult). The input file is never touched."""
    from engine.repair.colourise import colourised_xmp

    pixels = loaded.pixels if loaded.alpha is None else np.concatenate([loaded.pixels[..., :3],
                                                                        loaded.alpha[..., None]], axis=2)
    result = run_recipe(pixels, recipe, models, progress, cancel)
    repaired = replace(loaded, pixels=np.ascontiguousarray(result.pixels[..., :3]),
                       alpha=None if loaded.alpha is None else np.ascontiguousarray(result.pixels[..., 3]))
    if result.colourised:
        repaired = replace(repaired, is_grayscale=False,
                           xmp=colourised_xmp(loaded.xmp, f"DDColor ({Path(models.checkpoint('ddcolor')).name})"))
    return repaired, result
