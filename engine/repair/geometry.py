"""Face geometry carried between the photo as read and the repaired (upscaled) photo."""

from __future__ import annotations

from dataclasses import replace

import numpy as np


def scale_face(face, factor: float):
    """`face` (engine.faces.types.Face) with its box and landmarks multiplied by `factor`."""
    if factor == 1:
        return face
    box = tuple(float(v) * factor for v in face.box)
    return replace(face, box=box, landmarks=np.asarray(face.landmarks, dtype=np.float32) * np.float32(factor))


def scale_plan(plan, factor: float):
    """`plan` (engine.restore.plan.RestorationPlan) with every face's geometry multiplied by `factor`."""
    if factor == 1:
        return plan
    return replace(plan, faces=[replace(f, face=scale_face(f.face, factor)) for f in plan.faces])
