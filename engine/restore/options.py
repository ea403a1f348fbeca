"""The one options type of a restoration, persisted with a batch job so a resumed job restores as it began.

`RestoreOptions` says how every face is restored (FaceMe's released defaults for the model settings),
what to do with faces of nobody known, and which model pack, device, precision and GPU memory mode to use. Batch, GUI
and CLI build it, `engine.restore.service` runs it; `to_dict` / `from_dict` are its stored form.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from engine.errors import UsageError
from engine.restore.pasteback import DEFAULT_MASK, MaskShape
from engine.repair.recipe import Recipe

#: Faces whose box is smaller than this (larger side, photo pixels) are left alone by default: the
#: 512 px model would have to invent a face from a few dozen pixels (about 13x enlargement).
DEFAULT_MIN_FACE_SIZE = 40

Unmatched = Literal["blind", "skip"]
#: what an album person is restored with: what was learned of them when the check kept it, or their references
IdentitySource = Literal["auto", "references"]


@dataclass(frozen=True)
class RestoreOptions:
    """How to restore a photo.

    `seed`: None draws a fresh one per photo; an int makes the run reproducible (face i uses seed + i).
    `unmatched`: what to do with a face of nobody known (or of a person without references) — restore
    it "blind" (no identity) or "skip" it.
    `min_face_size`: faces smaller than this (larger box side, pixels) are left alone.
    `match_threshold`: ad-hoc matching only; None uses the embedding model's documented threshold.
    `max_faces`: restore at most this many faces (the largest); None restores all.
    `models_dir`, `device`, `dtype`: the model pack and where it runs (None: the user's settings).
    `memory`: what stays on the GPU (engine.faceme.memory.MEMORY_MODES); every mode gives the same output.
    `identity_check`: check every restored face against its person's references (or, blind, against
    the unrestored face) with an independent recogniser (engine.restore.identity_check); cheap next to
    a restoration (docs/BENCHMARKS.md).
    `identity`: "auto" restores an album person with what was learned of them when the held-out check
    kept it (engine.learn: a fitted identity or a person adapter), else their references; "references"
    always with the references alone.
    `tries`: best of N by identity: each face is restored with `tries` seeds (`try_seeds`) and the try
    the check rates most like the person is kept (ties: the first). Needs the check, so tries > 1 runs
    it whatever `identity_check` says. A batch follows the same rule: a face that drifts on one try is
    not retried beyond these N; the Queue's "to review" list retries it by hand.
    """

    steps: int = 50
    guidance_scale: float = 5.0
    conditioning_scale: float = 1.0
    seed: int | None = None
    color_fix: bool = True
    unmatched: Unmatched = "blind"
    min_face_size: float = DEFAULT_MIN_FACE_SIZE
    match_threshold: float | None = None
    max_faces: int | None = None
    mask: MaskShape = field(default=DEFAULT_MASK)
    models_dir: str | None = None
    device: str | None = None
    dtype: str | None = None
    memory: str = "auto"
    identity_check: bool = True
    tries: int = 1
    identity: IdentitySource = "auto"
    #: the whole print repaired before its faces are found (engine.repair.recipe.Recipe; None: as read)
    recipe: Recipe | None = None

    def __post_init__(self):
        from engine.faceme.memory import check_memory_mode

        check_memory_mode(self.memory)
        if self.unmatched not in ("blind", "skip"):
            raise UsageError(f"unmatched must be 'blind' or 'skip', not {self.unmatched!r}")
        if self.steps < 1:
            raise UsageError(f"steps must be at least 1 (got {self.steps})")
        if self.max_faces is not None and self.max_faces < 0:
            raise UsageError(f"max_faces must not be negative (got {self.max_faces})")
        if not isinstance(self.tries, int) or self.tries < 1:
            raise UsageError(f"tries must be a whole number of at least 1 (got {self.tries!r})")
        if self.identity not in ("auto", "references"):
            raise UsageError(f"identity must be 'auto' or 'references', not {self.identity!r}")
        if self.min_face_size < 0:
            raise UsageError(f"min_face_size must not be negative (got {self.min_face_size})")

    @property
    def runs_check(self) -> bool:
        """Whether restorations run the identity check (asked for, or needed by best of N)."""
        return self.identity_check or self.tries > 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (stored with a batch job)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestoreOptions:
        """The options stored by `to_dict` (unknown keys of older or newer versions are ignored; a job stored
        before memory modes existed reads as "auto")."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in (data or {}).items() if k in known}
        if isinstance(values.get("mask"), dict):
            values["mask"] = MaskShape(**values["mask"])
        if isinstance(values.get("recipe"), dict):
            values["recipe"] = Recipe.from_dict(values["recipe"])
        return cls(**values)


#: seeds of one face's tries are this far apart (try k of a face restored with seed s uses s + k * TRY_STRIDE),
#: so they never collide with the next face's seed (face i of a photo uses the photo's seed + i)
TRY_STRIDE = 1000


def try_seeds(seed: int, tries: int) -> list[int]:
    """The seeds of a face's tries: seed, seed + 1000, seed + 2000, … (each try reproducible alone:
    restoring with `--seed` set to a try's seed, tries 1, gives that try's face again when the face is
    the photo's first)."""
    return [int(seed) + k * TRY_STRIDE for k in range(tries)]
