"""Learn one album person end to end: choose their faces, fit, check on held-out faces, store.

    result = learn_person(catalog, "Ann", pipeline, fingerprint, check, LearnSettings(method="both"))
    print("\n".join(result.lines()))

One process learns a person at a time: the person's lease (`catalog_lock` "learning-person-<id>") is
held for the whole learning and a second process is refused at once, naming the holder. A fit is
checkpointed under the cache folder (engine.learn.store.checkpoint_folder) by person, method, faces,
pack and settings, so running the same learning again after Ctrl-C or a kill resumes it, and ends
where an uninterrupted run would have; the checkpoint is removed once the result is stored. Whatever
the check decides, the learning's figures are stored, and only an accepted one is used.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from engine.errors import JobBusyError, UsageError
from engine.learn.check import CheckReport, held_out_check
from engine.learn.denoising import DenoisingModels, FitSettings
from engine.learn.faces import FaceSplit, aligned_crops, choose_faces
from engine.progress import CancelCheck, ProgressCallback, report

log = logging.getLogger(__name__)

Method = Literal["identity", "adapter", "both"]


@dataclass(frozen=True)
class LearnSettings:
    """What to learn and how. `steps`: fit steps (None: each method's default, 300 identity / 400
    adapter); `check_steps`: denoising steps of the held-out restorations (50 as released);
    `resolution`: the side the faces are fitted at (512; smaller for tests); `without`: face ids left out."""

    method: Method = "both"
    steps: int | None = None
    seed: int = 0
    resolution: int = 512
    check_steps: int = 50
    guidance_scale: float = 5.0
    rank: int = 8
    pull: float = 1.0
    strength: float = 1.0
    identity_learning_rate: float | None = None
    adapter_learning_rate: float | None = None
    checkpoint_every: int | None = None
    without: tuple[int, ...] = ()

    def __post_init__(self):
        if self.method not in ("identity", "adapter", "both"):
            raise UsageError(f"method must be identity, adapter or both, not {self.method!r}")
        if self.steps is not None and self.steps < 1:
            raise UsageError(f"steps must be at least 1 (got {self.steps})")
        if not 0.0 <= self.strength <= 1.0:
            raise UsageError(f"the adapter strength must be between 0 and 1 (got {self.strength})")
        if self.check_steps < 1:
            raise UsageError(f"the check's steps must be at least 1 (got {self.check_steps})")

    def fit_settings(self, method: str) -> FitSettings:
        from engine.learn.adapter import ADAPTER_SETTINGS
        from engine.learn.fitted_identity import IDENTITY_SETTINGS

        base = IDENTITY_SETTINGS if method == "fitted" else ADAPTER_SETTINGS
        rate = self.identity_learning_rate if method == "fitted" else self.adapter_learning_rate
        return replace(base, steps=self.steps or base.steps, seed=self.seed, resolution=self.resolution,
                       learning_rate=rate or base.learning_rate,
                       checkpoint_every=self.checkpoint_every or base.checkpoint_every)

    @property
    def methods(self) -> tuple[str, ...]:
        return {"identity": ("fitted",), "adapter": ("adapter",), "both": ("fitted", "adapter")}[self.method]


@dataclass
class LearningResult:
    """What a learning did: the split, each method's fit figures, the check, the versions stored."""

    person_id: int
    person: str
    split: FaceSplit
    report: CheckReport
    fits: dict[str, dict] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)

    @property
    def chosen(self) -> str | None:
        return self.report.chosen

    def lines(self) -> list[str]:
        out = [f"learned {self.person} from {len(self.split.fit)} faces; {len(self.split.held_out)} held out "
               f"for the check (faces {', '.join(f'#{f.face_id}' for f in self.split.held_out)})"]
        for method, fit in self.fits.items():
            resumed = f", resumed at step {fit['resumed_from']}" if fit.get("resumed_from") else ""
            out.append(f"  {method} v{self.versions.get(method, '?')}: {fit['steps']} steps{resumed}, denoising loss "
                       f"{fit['loss_before']:.4f} → {fit['loss_after']:.4f} on the fit's first draws")
        return out + self.report.lines()


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _catalog_digest(catalog) -> str:
    return hashlib.sha256(str(getattr(catalog, "url", "")).encode()).hexdigest()[:12]


def learn_person(catalog, person_ref: str | int, pipeline, fingerprint: str, check,
                 settings: LearnSettings = LearnSettings(), progress: ProgressCallback | None = None,
                 cancel: CancelCheck | None = None, cache_dir: Path | None = None) -> LearningResult:
    """Learn the album person `person_ref` (id or name) with `pipeline` (a loaded FaceMePipeline) for the
    pack named `fingerprint` (engine.restore.identity.pack_fingerprint), checked by `check` (the identity
    check, engine.restore.identity_check). JobBusyError when another process is learning them;
    NotEnoughFacesError with fewer than 8 usable faces; CancelledError (checkpoint kept) when `cancel`
    stops it."""
    from engine.catalog.locks import LockTimeout, catalog_lock
    from engine.people.corrections import find_person

    with catalog.session() as session:
        person = find_person(session, person_ref)
        person_id, name = person.id, person.label
    waiting: list[str] = []
    try:
        with catalog_lock(catalog, f"learning-person-{person_id}", f"learning {name}", on_wait=waiting.append,
                          timeout=0):
            return _learn_held(catalog, person_id, pipeline, fingerprint, check, settings, progress, cancel,
                               cache_dir)
    except LockTimeout:
        holder = waiting[0].removeprefix("waiting for ").removesuffix(" to finish") if waiting else "another process"
        raise JobBusyError(f"another process is learning {name} ({holder}); wait for it to finish",
                           owner=holder) from None


def _learn_held(catalog, person_id, pipeline, fingerprint, check, settings, progress, cancel, cache_dir):
    from engine.catalog.models import Person
    from engine.learn.store import checkpoint_folder
    from engine.restore.album import person_identity
    from engine.restore.identity import IdentityTokens, references_key

    with catalog.session() as session:
        person = session.get(Person, person_id)
        identity = person_identity(session, person)
        if identity is None:
            raise UsageError(f"{person.label} has no reference photos to start from (faceme people refs)")
        split = choose_faces(session, person, [f.face_id for f in identity.faces], settings.without)
        refs_key = references_key(identity.faces)
    report(progress, 0, 0, f"reading {split.person_name}'s faces")
    start = IdentityTokens(fingerprint, catalog).tokens(identity, lambda images: pipeline.encode_identity(images))
    start = np.asarray(start, np.float32)
    fit_crops = aligned_crops(split.fit)
    held_crops = aligned_crops(split.held_out)
    scoring = held_crops + aligned_crops(split.others)
    models = DenoisingModels.from_pipeline(pipeline)
    run_key = {"person": person_id, "pack": fingerprint, "faces": split.key, "references": refs_key,
               "seed": settings.seed}
    folder = checkpoint_folder(cache_dir) / _catalog_digest(catalog)
    plans = [(m, settings.fit_settings(m)) for m in settings.methods]
    total = sum(s.steps for _, s in plans) + (len(plans) + 1) * settings.check_steps * len(held_crops)
    offset = 0

    def phase(done: int, _total: int, message: str) -> None:
        report(progress, offset + done, total, message)

    fits: dict[str, dict] = {}
    checkpoints: list[Path] = []
    fitted_tokens, adapter_result = None, None
    for method, fit_settings in plans:
        key = {**run_key, "method": method, "fit": fit_settings.trajectory_key(), "rank": settings.rank,
               "pull": settings.pull}
        checkpoint = folder / f"person-{person_id}-{method}-{_digest(key)[:16]}.safetensors"
        checkpoints.append(checkpoint)
        if method == "fitted":
            from engine.learn.fitted_identity import fit_identity

            result = fit_identity(models, start, fit_crops, fit_settings, settings.pull, checkpoint, run_key, phase,
                                  cancel)
            fitted_tokens = result.tokens
        else:
            from engine.learn.adapter import train_adapter
            from engine.learn.store import adapter_folder

            out = adapter_folder(cache_dir) / f"person-{person_id}-{_digest(key)[:16]}.safetensors"
            result = adapter_result = train_adapter(models, start, fit_crops, out, fit_settings, settings.rank,
                                                    checkpoint, run_key, phase, cancel)
        fits[method] = {"steps": fit_settings.steps, "loss_before": result.loss_before, "loss_after": result.loss_after,
                        "losses": [round(x, 6) for x in result.losses], "resumed_from": result.resumed_from,
                        "settings": asdict(fit_settings)}
        offset += fit_settings.steps

    adapter = None
    if adapter_result is not None:
        from engine.learn.adapter import adapter_use

        adapter = adapter_use(pipeline.unet, adapter_result.path, adapter_result.sha256, settings.strength)
    check_report = held_out_check(pipeline, check, split.person_name, start, held_crops, scoring, fit_crops,
                                  fitted_tokens, adapter, steps=settings.check_steps,
                                  guidance_scale=settings.guidance_scale, progress=phase, cancel=cancel)
    versions = _store(catalog, person_id, split, fingerprint, refs_key, fits, fitted_tokens, adapter_result,
                      check_report, settings)
    for checkpoint in checkpoints:
        checkpoint.unlink(missing_ok=True)
    report(progress, total, total, "done")
    return LearningResult(person_id, split.person_name, split, check_report, fits, versions)


def _store(catalog, person_id, split: FaceSplit, fingerprint, refs_key, fits, fitted_tokens, adapter_result,
           check_report: CheckReport, settings: LearnSettings) -> dict[str, int]:
    from engine.catalog.models import LearnedIdentity, Person
    from engine.learn.store import next_version

    versions = {}
    with catalog.transaction() as session:
        if session.get(Person, person_id) is None:
            raise UsageError(f"{split.person_name} was merged or removed while being learned; nothing was stored")
        for method, fit in fits.items():
            version = next_version(session, person_id, method)
            row = LearnedIdentity(
                person_id=person_id, method=method, version=version,
                status="accepted" if check_report.chosen == method else "rejected",
                pack_fingerprint=fingerprint, references_key=refs_key, faces_key=split.key[:64],
                fit_face_ids=[f.face_id for f in split.fit], held_out_face_ids=[f.face_id for f in split.held_out],
                strength=settings.strength, settings={**fit, "learn": asdict(settings)},
                figures=check_report.as_dict(), message=check_report.reasons.get(method, ""))
            if method == "fitted":
                tokens = np.asarray(fitted_tokens, "<f4")
                row.tokens, row.count, row.dim = tokens.tobytes(), int(tokens.shape[0]), int(tokens.shape[1])
            else:
                row.adapter_file, row.adapter_sha256 = str(adapter_result.path), adapter_result.sha256
            session.add(row)
            versions[method] = version
    return versions
