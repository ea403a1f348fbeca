"""Repairing the whole print before its faces are restored (issue 24): one module per step.

- `damage_mask`: scratches, creases and dust → a mask (the scratch detector of "Bringing Old Photos
  Back to Life", MIT, whose network and checkpoint reader are `scratch_detector`), or the user's mask.
- `inpaint`: the mask filled by LaMa; pixels outside the mask are returned unchanged, byte for byte.
- `fade`: levels per channel, a white-point / grey-world balance, optional local contrast; no model.
- `upscale`: whole-photo super-resolution (Real-ESRGAN, SwinIR) in feathered, overlapping tiles
  within a memory budget.
- `colourise`: DDColor; off by default, and the output is labelled as colourised in its metadata.
- `recipe`: the `Recipe` (which steps, how strong) and `run_recipe`, which runs them in that order.
- `models`: the repair models of a model pack, loaded once per process (`spandrel_loading` reads
  the released checkpoints through spandrel); `geometry`: face geometry carried to the repaired scale.
"""
