"""The held-out check that decides whether a learned identity is used.

The held-out faces (never fitted on) are degraded severely with a fixed seed (`SEVERE`: blur sigma
4–8, downsampling ×8–12, noise 8–15, JPEG 30–50: the hard end of paper Eq. 6, where a frozen encoder's
identity hallucinates) and restored by the pipeline in three ways, each face with the same seed every
way: with the references' tokens only, with the fitted tokens, and with the references' tokens and the
person's adapter on. Each restored face is scored:

- identity: the identity check's independent recogniser (engine.restore.identity_check: not the ArcFace
  FaceMe is conditioned on), mean cosine similarity to the person's clean faces that were not fitted on
  (the held-out faces as they are in the album, and any usable face in neither set);
- fidelity: PSNR (dB) against the clean held-out face (LPIPS would need torchvision, which does not
  install beside the pinned torch).

A learned way is kept only if its mean identity beats the references-only restorations' and its mean
PSNR is not more than `PSNR_MARGIN_DB` below theirs; of two kept ways the one with the higher identity
is used. Before that, the fit set itself must be the person: the recogniser's mean similarity of the
fitted faces to the clean held-out faces must reach its own `drifted` threshold (below it most genuine
pairs never fall), else nothing learned is kept — faces of someone else in the fit set (a wrong merge,
a wrong confirmation) would teach the model that other person — and the restorations are not run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from engine.faceme.degrade import DegradationRanges
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report

log = logging.getLogger(__name__)

#: the degradation of the held-out faces: the severe end of the training ranges
SEVERE = DegradationRanges(blur_sigma=(4.0, 8.0), downsample=(8.0, 12.0), noise_sigma=(8.0, 15.0),
                           jpeg_quality=(30, 50))
CHECK_SEED = 2109
#: how much fidelity (mean PSNR, dB) a learned way may lose against references only and still be kept
PSNR_MARGIN_DB = 0.5
WAYS = ("references", "fitted", "adapter")


@dataclass(frozen=True)
class WayFigures:
    """One way's restorations of the held-out faces: identity (mean similarity) and PSNR, per face and mean."""

    way: str
    identity: float
    psnr: float
    identity_per_face: tuple[float, ...] = ()
    psnr_per_face: tuple[float, ...] = ()


@dataclass(frozen=True)
class CheckReport:
    """The figures of the check and its decision (`chosen`: "fitted", "adapter" or None: references)."""

    person: str
    faces: int
    recogniser: str
    ways: dict[str, WayFigures]
    fit_similarity: float
    fit_threshold: float
    kept: dict[str, bool] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    chosen: str | None = None
    psnr_margin: float = PSNR_MARGIN_DB

    @property
    def message(self) -> str:
        """The decision in one sentence."""
        if self.fit_similarity < self.fit_threshold:
            return (f"learning did not help {self.person}: the faces it was fitted on do not look like the "
                    f"{self.faces} held-out faces ({self.fit_similarity:.3f} < {self.fit_threshold:.3f}); kept the "
                    f"references")
        base = self.ways["references"]
        learned = [w for w in ("fitted", "adapter") if w in self.ways]
        if self.chosen is not None:
            way = self.ways[self.chosen]
            label = "fitted identity" if self.chosen == "fitted" else "person adapter"
            return (f"learning helped {self.person}: the {label} is used from now on ({base.identity:.3f} → "
                    f"{way.identity:.3f} identity, {base.psnr:.2f} → {way.psnr:.2f} dB on "
                    f"{self.faces} held-out faces)")
        best = max((self.ways[w] for w in learned), key=lambda f: f.identity, default=base)
        return (f"learning did not help {self.person} ({base.identity:.2f} → {best.identity:.2f} on {self.faces} "
                f"held-out faces); kept the references")

    def lines(self) -> list[str]:
        """The comparison as a small table, each learned way's decision, and the decision."""
        out = [f"held-out check: {self.faces} faces of {self.person}, degraded severely (seed {CHECK_SEED}), "
               f"scored by {self.recogniser}",
               f"  {'way':<12} {'identity':>9} {'PSNR dB':>8}"]
        for way in WAYS:
            if way in self.ways:
                f = self.ways[way]
                figures = "(not restored)" if np.isnan(f.identity) else f"{f.identity:>9.3f} {f.psnr:>8.2f}"
                out.append(f"  {way:<12} {figures}")
        out.append(f"  faces fitted on vs held-out faces: {self.fit_similarity:.3f} "
                   f"(needs {self.fit_threshold:.3f}, the recogniser's own threshold)")
        for way in ("fitted", "adapter"):
            if way in self.reasons:
                out.append(f"  {way}: {'kept' if self.kept.get(way) else 'not kept'} — {self.reasons[way]}")
        out.append(self.message)
        return out

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CheckReport:
        ways = {k: WayFigures(**{**v, "identity_per_face": tuple(v.get("identity_per_face", ())),
                                 "psnr_per_face": tuple(v.get("psnr_per_face", ()))})
                for k, v in data["ways"].items()}
        return cls(**{**data, "ways": ways})


def severe_copies(crops: Sequence[np.ndarray], seed: int = CHECK_SEED) -> list[np.ndarray]:
    """Each clean crop degraded with the check's severe ranges (face i from seed + i), as uint8."""
    from engine.faceme.degrade import degrade, to_uint8

    return [to_uint8(degrade(crop, seed + i, SEVERE).image) for i, crop in enumerate(crops)]


def psnr(restored: np.ndarray, clean: np.ndarray) -> float:
    a = np.asarray(restored, np.float64)
    b = np.asarray(clean, np.float64)
    if a.shape != b.shape:
        import cv2

        a = cv2.resize(np.asarray(restored), (b.shape[1], b.shape[0]), interpolation=cv2.INTER_AREA).astype(np.float64)
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def decide(ways: dict[str, WayFigures], fit_similarity: float, fit_threshold: float,
           margin: float = PSNR_MARGIN_DB) -> tuple[dict[str, bool], dict[str, str], str | None]:
    """Which learned ways are kept, why, and which is used (see the module's rules)."""
    base = ways.get("references")
    kept, reasons = {}, {}
    for way in ("fitted", "adapter"):
        if way not in ways:
            continue
        f = ways[way]
        if fit_similarity < fit_threshold:
            kept[way], reasons[way] = False, (f"the faces it was fitted on do not look like the held-out faces "
                                              f"({fit_similarity:.3f} < {fit_threshold:.3f})")
        elif f.identity <= base.identity:
            kept[way], reasons[way] = False, (f"identity {f.identity:.3f} does not beat the references' "
                                              f"{base.identity:.3f}")
        elif f.psnr < base.psnr - margin:
            kept[way], reasons[way] = False, (f"fidelity {f.psnr:.2f} dB is more than {margin:g} dB below the "
                                              f"references' {base.psnr:.2f} dB")
        else:
            kept[way], reasons[way] = True, (f"identity {base.identity:.3f} → {f.identity:.3f}, fidelity "
                                             f"{base.psnr:.2f} → {f.psnr:.2f} dB (margin {margin:g} dB)")
    candidates = [w for w, ok in kept.items() if ok]
    chosen = max(candidates, key=lambda w: ways[w].identity) if candidates else None
    return kept, reasons, chosen


def held_out_check(pipeline, check, person: str, reference_tokens, held_out: Sequence[np.ndarray],
                   scoring: Sequence[np.ndarray], fit: Sequence[np.ndarray], fitted_tokens=None, adapter=None,
                   steps: int = 50, guidance_scale: float = 5.0, seed: int = CHECK_SEED,
                   progress: ProgressCallback | None = None, cancel: CancelCheck | None = None) -> CheckReport:
    """Restore the `held_out` clean crops (aligned 512), degraded severely, with the references' tokens,
    with `fitted_tokens` (when given) and with `adapter` (an engine.learn.adapter.AdapterUse, when given);
    score them against `scoring` (the person's clean faces not fitted on) and decide.

    `check`: an engine.restore.identity_check.IdentityCheck (its recogniser and thresholds); `fit`: the
    fitted faces' clean crops (the fit set must be the person, see the module's rules)."""
    import torch

    from engine.restore.identity_check import similarity_to_references

    lq = severe_copies(held_out, seed)
    seeds = [seed + i for i in range(len(lq))]
    ways_to_run = [("references", reference_tokens, None)]
    if fitted_tokens is not None:
        ways_to_run.append(("fitted", fitted_tokens, None))
    if adapter is not None:
        ways_to_run.append(("adapter", reference_tokens, adapter))
    total = len(ways_to_run) * steps * len(lq)
    scoring_embeddings = np.stack([check.embed_crop(c) for c in scoring])
    held_embeddings = np.stack([check.embed_crop(c) for c in held_out])
    fit_similarity = float(np.mean([similarity_to_references(check.embed_crop(c), held_embeddings) for c in fit]))
    threshold = float(check.thresholds.drifted)
    figures: dict[str, WayFigures] = {}
    if fit_similarity < threshold:  # the fit set is not the person: decided without restoring anything
        figures = {way: WayFigures(way, float("nan"), float("nan")) for way, _, _ in ways_to_run[1:]}
        ways_to_run = []
    for n, (way, tokens, use) in enumerate(ways_to_run):
        check_cancelled(cancel, "the held-out check")

        def way_progress(done: int, way_total: int, message: str, offset: int = n * steps * len(lq),
                         label: str = way) -> None:
            share = round(done / way_total * steps * len(lq)) if way_total else 0
            report(progress, offset + share, total, f"held-out check ({label})")

        identity = torch.from_numpy(np.asarray(tokens, np.float32)).to(pipeline.device, pipeline.dtype)
        restore = lambda: pipeline.restore_faces(lq, [identity] * len(lq), seeds, steps=steps,  # noqa: E731
                                                 guidance_scale=guidance_scale, progress=way_progress,
                                                 cancel=cancel)
        if use is not None:
            with use.active():
                restored = restore()
        else:
            restored = restore()
        ids = tuple(similarity_to_references(check.embed_crop(r), scoring_embeddings) for r in restored)
        psnrs = tuple(psnr(r, c) for r, c in zip(restored, held_out))
        figures[way] = WayFigures(way, float(np.mean(ids)), float(np.mean(psnrs)), ids, psnrs)
    kept, reasons, chosen = decide(figures, fit_similarity, threshold)
    result = CheckReport(person, len(lq), check.model, figures, fit_similarity, threshold, kept, reasons, chosen)
    log.info("%s", result.message)
    return result
