"""Small typed results of face analysis."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Face:
    """One detected face in an image's pixel coordinates (after EXIF orientation).

    `embedding` is L2-normalised; `embedding_model` names the model that produced it (for example
    "insightface/antelopev2/glintr100" or "dlib/resnet-128"). Embeddings of different models are
    never compared.
    """

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    score: float
    landmarks: np.ndarray  # (5, 2): left eye, right eye, nose tip, left mouth, right mouth
    embedding: np.ndarray | None = None
    embedding_model: str | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def size(self) -> float:
        """Face size in pixels: the larger side of the box."""
        return max(self.width, self.height)

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def scaled(self, factor: float) -> Face:
        """This face in pixels `factor` times larger (a photo decoded at another size)."""
        return replace(self, box=tuple(float(v) * factor for v in self.box),
                       landmarks=np.asarray(self.landmarks, np.float32) * np.float32(factor))


#: two boxes for one face from two detectors (SCRFD's include the forehead, dlib's are tight squares)
#: overlap at least this much
PAIR_IOU = 0.3


def box_iou(a, b) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def pair_by_overlap(known, found, threshold: float = PAIR_IOU) -> dict[int, int]:
    """{index in known: index in found} for two lists of boxes of the same faces (two detectors, or
    one photo analysed twice), greedily by the largest overlap, each box paired at most once, in that
    order."""
    pairs = sorted(((box_iou(k, f), i, j) for i, k in enumerate(known) for j, f in enumerate(found)), reverse=True)
    taken_k, taken_f, out = set(), set(), {}
    for overlap, i, j in pairs:
        if overlap < threshold:
            break
        if i in taken_k or j in taken_f:
            continue
        out[i] = j
        taken_k.add(i)
        taken_f.add(j)
    return out
