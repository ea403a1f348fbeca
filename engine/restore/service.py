"""The restoration service: the one place that holds a loaded FaceMe pipeline and its face analyzer.

    service = service_for(options)   or   get_service(models_dir, device, dtype, memory)   (one per key)
    plan = service.plan_album_photo(catalog, photo_id, pixels, options)   or   service.plan_ad_hoc(...)
    result = service.restore(image, plan, options, catalog=catalog)
    look = service.preview(image, plan, options)   (a quick look in a few steps; never saved or recorded)

Batch (engine.restore.batch), GUI (app/model_service.py holds one) and CLI all restore through it, and
load the pipeline only through it (in the options' GPU memory mode, part of the key). It
refines the album's face geometry with the pack's detector (never the person), and takes identity
tokens from the catalog's store (engine.restore.identity), so each person is encoded once per pack,
and checks every restored face with the process's identity check (engine.restore.identity_check, loaded
on first use; each person's references embedded for it once per process).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.errors import UsageError
from engine.faces.types import Face
from engine.progress import CancelCheck, ProgressCallback
from engine.restore.identity import CheckReferences, IdentityTokens, ReferenceImages, pack_fingerprint
from engine.restore.options import RestoreOptions
from engine.restore.photo import FaceParser, PhotoRestoration, plan_photo_ad_hoc, restore_plan, same_file
from engine.restore.plan import PersonReferences, RestorationPlan, detect_faces

log = logging.getLogger(__name__)


class RestorationService:
    """A FaceMe pipeline loaded from `models_dir` on `device` in `dtype` with GPU memory mode `memory`
    (loaded on first use, or given), its face analyzer, and identity tokens per catalog."""

    def __init__(self, models_dir: str | Path, device: str = "auto", dtype: str = "auto", pipeline=None,
                 memory: str = "auto", isolate_check: bool = False):
        self.models_dir = Path(models_dir)
        #: run a GIL-holding check recogniser (dlib) in a child process (the app: its window stays responsive)
        self.isolate_check = isolate_check
        self.device = device or "auto"
        self.dtype = dtype or "auto"
        self.memory = memory or "auto"
        self._pipeline = pipeline
        self._lock = threading.RLock()
        self._fingerprint: str | None = None
        self._tokens: dict[str, IdentityTokens] = {}
        self._check_references: CheckReferences | None = None
        #: the references' pixels, read once for the tokens and the check together
        self._reference_images = ReferenceImages()

    @property
    def key(self) -> tuple:
        return (str(self.models_dir), self.device, self.dtype, self.memory)

    @property
    def pipeline(self):
        with self._lock:
            if self._pipeline is None:
                from engine.faceme.pipeline import FaceMePipeline

                started = time.monotonic()
                self._pipeline = FaceMePipeline.from_pack(self.models_dir, device=self.device, dtype=self.dtype,
                                                          memory=self.memory)
                log.info("FaceMe loaded from %s in %.1f s", self.models_dir, time.monotonic() - started)
            return self._pipeline

    def load(self) -> RestorationService:
        _ = self.pipeline
        return self

    @property
    def analyzer(self):
        """The pack's face analyzer (InsightFace SCRFD + ArcFace): restore-time detection and matching."""
        return self.pipeline.face_analyzer

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = pack_fingerprint(self.models_dir)
        return self._fingerprint

    @property
    def identity_check(self):
        """The identity check on a recogniser independent of FaceMe's (buffalo_l when installed, else
        dlib): made on first use, one per process and models folder (identity_check.shared_check)."""
        from engine.restore.identity_check import shared_check

        return shared_check(self.models_dir, isolated=self.isolate_check)

    @property
    def check_references(self) -> CheckReferences:
        """Each person's references embedded by the identity check, once per process (an album
        person's kept in the catalog too: `check_references.for_catalog`)."""
        with self._lock:
            if self._check_references is None:
                self._check_references = CheckReferences(self.identity_check, self._reference_images)
            return self._check_references

    def identity_tokens(self, catalog=None) -> IdentityTokens:
        """The identity-token store for `catalog` (None: ad hoc, memory only)."""
        key = getattr(catalog, "url", None) or ""
        with self._lock:
            if key not in self._tokens:
                self._tokens[key] = IdentityTokens(self.fingerprint, catalog, self._reference_images)
            return self._tokens[key]

    # -- plans
    def detect(self, pixels: np.ndarray, embed: bool = True) -> list[Face]:
        """The pack detector's faces (detector sizes 640 → 256 until one is found); `embed` False:
        geometry only."""
        return detect_faces(self.analyzer, pixels, embed=embed)

    def plan_album_photo(self, catalog, photo_id: int, pixels: np.ndarray | None,
                         options: RestoreOptions) -> RestorationPlan:
        """The album's plan for a catalogued photo; with `pixels`, geometry refined by the pack detector."""
        from engine.restore.album import plan_from_album

        # the album says who each face is: the detector only refines geometry, so nothing is embedded
        refine = self.detect(pixels, embed=False) if pixels is not None else None
        with catalog.transaction() as session:  # suggestions may be stored for people without any yet
            return plan_from_album(session, photo_id, options, refine=refine)

    def plan_ad_hoc(self, pixels: np.ndarray, people: Sequence[PersonReferences], options: RestoreOptions,
                    faces: Sequence[Face] | None = None, source=None) -> RestorationPlan:
        return plan_photo_ad_hoc(pixels, people, self.analyzer, options, faces, source)

    # -- restoring
    def restore(self, image, plan: RestorationPlan, options: RestoreOptions, catalog=None,
                progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
                face_parser: FaceParser | None = None) -> PhotoRestoration:
        check, references = None, None
        if options.runs_check and any(f.action != "skipped" for f in plan.faces):
            check, references = self.identity_check, self.check_references.for_catalog(catalog)
        tokens = self._token_source(catalog, cancel, options)
        return restore_plan(image, plan, self.pipeline, options, tokens, progress,
                            cancel, face_parser, check, references)

    def preview(self, image, plan: RestorationPlan, options: RestoreOptions, catalog=None,
                progress: ProgressCallback | None = None, cancel: CancelCheck | None = None) -> PhotoRestoration:
        """A quick look at `plan`'s result: the same faces, seeds and identities, denoised with the fast
        multistep solver in at most PREVIEW_STEPS steps — visibly different from `restore`'s released path,
        so it is for looking only (nothing here writes a file or records a restoration)."""
        from engine.faceme.pipeline import PREVIEW_STEPS

        quick = replace(options, steps=min(options.steps, PREVIEW_STEPS))
        tokens = self._token_source(catalog, cancel, quick)
        return restore_plan(image, plan, self.pipeline, quick, tokens, progress,
                            cancel, preview=True)

    def _token_source(self, catalog, cancel: CancelCheck | None, options: RestoreOptions | None = None):
        store = self.identity_tokens(catalog)
        pipeline = self.pipeline

        def tokens(identity):
            return store.tokens(identity, lambda images: pipeline.encode_identity(images, cancel=cancel))

        if catalog is None or (options is not None and options.identity == "references"):
            return tokens
        from engine.learn.store import learned_token_source

        # an album person's learned identity, where the held-out check kept one (engine.learn)
        return learned_token_source(tokens, catalog, self.fingerprint, pipeline.unet)

    def restore_album_photo(self, catalog, photo_id: int, input_path: str | Path, output_path: str | Path,
                            options: RestoreOptions, progress: ProgressCallback | None = None,
                            cancel: CancelCheck | None = None, write=None) -> PhotoRestoration:
        """Read, plan from the album, restore, write `output_path` atomically (not when no face was
        restored). `write(restoration, like)`, when given, writes it instead (a batch records the
        output's hash and faces before the file appears)."""
        from engine.imageio import read_image, write_image

        input_path, output_path = Path(input_path), Path(output_path)
        if same_file(input_path, output_path):
            raise UsageError("the output would overwrite the input photo; choose another output path", output_path)
        loaded = read_image(input_path)
        repairing = options.recipe is not None and options.recipe.active
        if repairing:  # the whole print first; its faces are then found and restored at its scale (issue 24)
            from engine.repair.restoring import plan_repaired_album_photo

            loaded, plan = plan_repaired_album_photo(self, catalog, photo_id, loaded, options, progress, cancel)
        else:
            plan = self.plan_album_photo(catalog, photo_id, loaded.pixels, options)
        result = self.restore(loaded, plan, options, catalog, progress, cancel)
        if result.restored_count or repairing:  # a repaired photo is written even without a face
            if write is not None:
                write(result, loaded)
            else:
                write_image(output_path, result.pixels, like=loaded)
        return result


_SERVICES: dict[tuple, RestorationService] = {}
_SERVICES_LOCK = threading.Lock()


def get_service(models_dir: str | Path, device: str = "auto", dtype: str = "auto",
                memory: str = "auto", isolate_check: bool = False) -> RestorationService:
    """The process's service for this models folder, device, precision and GPU memory mode (the pipeline
    loads on first use). `isolate_check`: the identity check's recogniser runs in a child process (the app,
    whose window must stay responsive while dlib holds the GIL)."""
    from engine.faceme.memory import check_memory_mode

    check_memory_mode(memory or "auto")
    key = (str(Path(models_dir).resolve()), device or "auto", dtype or "auto", memory or "auto", bool(isolate_check))
    with _SERVICES_LOCK:
        if key not in _SERVICES:
            _SERVICES[key] = RestorationService(key[0], key[1], key[2], memory=key[3], isolate_check=key[4])
        return _SERVICES[key]


def release_service(service: RestorationService) -> None:
    """Forget `service` (its pipeline is freed once its last user lets go): the GUI, on reloading the model
    in another folder, device or memory mode. Anything else is ignored."""
    with _SERVICES_LOCK:
        for key, held in list(_SERVICES.items()):
            if held is service:
                del _SERVICES[key]


def service_for(options: RestoreOptions) -> RestorationService:
    """The service for the options' models folder, device, precision and memory mode (the user's settings
    fill gaps)."""
    from engine.settings import Settings

    settings = Settings().with_overrides(models_dir=options.models_dir, device=options.device)
    return get_service(settings.models_dir, options.device or settings.device, options.dtype or settings.dtype,
                       options.memory)
