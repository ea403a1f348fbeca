"""One photo end to end: a restoration plan in, restored pixels out.

    plan = album plan (engine.restore.album) or ad-hoc plan (engine.restore.plan.plan_ad_hoc)
    for each planned face: skipped -> left alone;  restored -> FaceMe with the plan's identity for it;
                           blind -> FaceMe without identity
      (options.tries > 1: once per seed s, s+1000, …, keeping the try the identity check rates best)
    the photo's faces (and tries) denoised together (denoise_faces: one batched denoising, each face as if alone)
    each restored face -> identity check (engine.restore.identity_check): kept / uncertain / drifted
    each restored crop -> paste-back (soft mask, tone matching) -> the output pixels

`restore_plan` never decides who is who: the plan says. Faces are cropped from the original photo;
crops are pasted back smallest first (a larger, usually nearer face wins where two overlap).
`restore_photo` is the ad-hoc shortcut (find the faces, match them to the people given, restore).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from engine.errors import FaceMeError, NoFaceError, UsageError
from engine.faces.align import align_face, warp_to_crop
from engine.faces.types import Face
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report
from engine.restore.options import RestoreOptions, try_seeds
from engine.restore.pasteback import paste_faces
from engine.restore.plan import (Identity, PersonReferences, PlannedFace, RestorationPlan, check_people,
                                 detect_faces, plan_ad_hoc)

log = logging.getLogger(__name__)

#: A face-parsing hook: aligned 512 crop (RGB uint8) -> mask (512, 512) in [0, 1] of what to paste.
FaceParser = Callable[[np.ndarray], np.ndarray]

#: identity -> tokens (N, D) to restore with (engine.restore.identity.IdentityTokens.tokens bound to an
#: encoder); the default encodes the identity's reference images with the pipeline every time
TokenSource = Callable[[Identity], object]


@dataclass(frozen=True)
class IdentityUse:
    """What a token source may return instead of bare tokens: the tokens, what the face's record says was
    used ("references", "fitted v2", "adapter v1": engine.learn), and a person adapter to switch on while
    the identity's faces are denoised (an engine.learn.adapter.AdapterUse; None: the UNet as it is)."""

    tokens: object
    used: str = "references"
    adapter: object = None

@dataclass
class PhotoRestoration:
    """The restored photo's pixels (same shape as the input) and one outcome per planned face."""

    pixels: np.ndarray
    faces: list[PlannedFace]

    @property
    def restored_count(self) -> int:
        return sum(1 for f in self.faces if f.action != "skipped")


def _is_gray(pixels: np.ndarray) -> bool:
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        return True
    return bool(np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2]))


def _pipeline_tensor(pipeline, tokens):
    """Tokens as the pipeline's tensor (stored tokens are float32 arrays)."""
    if hasattr(tokens, "detach"):
        return tokens
    import torch

    param = next(pipeline.mix.parameters()) if getattr(pipeline, "mix", None) is not None else None
    tensor = torch.from_numpy(np.ascontiguousarray(tokens))
    return tensor if param is None else tensor.to(device=param.device, dtype=param.dtype)


@dataclass
class FaceToDenoise:
    """One face of a photo ready for FaceMe: its aligned 512 crop, identity tokens (None: blind), seed."""

    crop: np.ndarray
    identity: object
    seed: int
    #: a person adapter on while this face is denoised (engine.learn.adapter.AdapterUse), or None
    adapter: object = None


def denoise_faces(pipeline, faces: Sequence[FaceToDenoise], options: RestoreOptions,
                  progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
                  preview: bool = False) -> list[np.ndarray]:
    """The restored crops of `faces`, denoised together (`pipeline.restore_faces`: B faces per batched
    forward, each with its own generator, so each equals restoring it alone within 1/255). `preview`: the
    fast multistep solver. Progress counts denoising steps per face: len(faces) × options.steps in all."""
    from engine.faceme.memory import batch_size_for

    n, steps = len(faces), options.steps
    if n == 0:
        return []
    size = batch_size_for(pipeline.device, n, None)
    batches = [(start, min(start + size, n)) for start in range(0, n, size)]

    def face_progress(done: int, _total: int, message: str) -> None:
        b = min(done // steps, len(batches) - 1)  # restore_faces counts `steps` per batch
        start, end = batches[b]
        faces_step = start * steps + (done - b * steps) * (end - start)
        which = f"face {start + 1}" if end - start == 1 else f"faces {start + 1}–{end}"
        report(progress, faces_step, n * steps, f"{which} of {n}: {message}")

    return pipeline.restore_faces([f.crop for f in faces], [f.identity for f in faces], [f.seed for f in faces],
                                  steps=steps, guidance_scale=options.guidance_scale,
                                  conditioning_scale=options.conditioning_scale, color_fix=options.color_fix,
                                  progress=face_progress if progress is not None else None, cancel=cancel,
                                  batch_size=size, preview=preview)


def _denoise_by_adapter(pipeline, faces: Sequence[FaceToDenoise], options: RestoreOptions,
                       progress: ProgressCallback | None, cancel: CancelCheck | None,
                       preview: bool) -> list[np.ndarray]:
    """`denoise_faces`, the faces that use a person adapter denoised apart, with it switched on (all of
    one person's faces together, so an adapter is switched once per photo, never per face); without any
    adapter, exactly `denoise_faces`."""
    groups: dict[int, list[int]] = {}
    for n, face in enumerate(faces):
        groups.setdefault(id(face.adapter) if face.adapter is not None else 0, []).append(n)
    if len(groups) == 1 and faces and faces[0].adapter is None:
        return denoise_faces(pipeline, faces, options, progress, cancel, preview)
    results: list = [None] * len(faces)
    done_before = 0
    for members in groups.values():
        adapter = faces[members[0]].adapter

        def group_progress(done: int, _total: int, message: str, offset: int = done_before) -> None:
            report(progress, offset + done, len(faces) * options.steps, message)

        denoise = lambda: denoise_faces(pipeline, [faces[n] for n in members], options,  # noqa: E731
                                        group_progress if progress else None, cancel, preview)
        if adapter is not None:
            with adapter.active():
                restored = denoise()
        else:
            restored = denoise()
        for n, crop in zip(members, restored):
            results[n] = crop
        done_before += len(members) * options.steps
    return results


#: identity -> that person's references embedded by the identity check's recogniser (PersonEmbeddings);
#: engine.restore.identity.CheckReferences is the one the engine uses
ReferencesForCheck = Callable[[Identity], object]


def _references_or_none(references: ReferencesForCheck, identity: Identity):
    """The person's check references; None (the check then compares with the unrestored face) when
    the check's recogniser finds no face in them: the check must never stop a restoration."""
    try:
        return references(identity)
    except FaceMeError as exc:
        log.warning("the identity check cannot use %s's references (%s); the restored face is compared "
                    "with the unrestored one instead", identity.name, exc)
        return None


def restore_plan(image, plan: RestorationPlan, pipeline, options: RestoreOptions = RestoreOptions(),
                 tokens: TokenSource | None = None, progress: ProgressCallback | None = None,
                 cancel: CancelCheck | None = None, face_parser: FaceParser | None = None,
                 check=None, check_references: ReferencesForCheck | None = None, *,
                 preview: bool = False) -> PhotoRestoration:
    """Restore `image` (an `engine.imageio.LoadedImage`, or RGB uint8 pixels) as `plan` says.

    `pipeline`: a loaded `FaceMePipeline`; `tokens`: where identity tokens come from (default: encode the
    identity's references with the pipeline). Each face restored with seed (options.seed or a fresh one)
    + its index in the plan; with `options.tries` > 1, with each of `try_seeds(that seed, tries)`,
    keeping the try the identity check scores highest (ties: the first). The outcomes carry the seed
    kept, the tries and the check's verdict. The photo's faces and their tries are denoised together
    (`denoise_faces`). `preview`: the quick solver, one try, no check (a look, not the released output).

    `check`: the identity check (engine.restore.identity_check.IdentityCheck); None takes the
    process's (`shared_check(options.models_dir)`) when `options.runs_check`. `check_references`:
    identity -> references embedded by the check (default: embedded here, once per identity).
    CancelledError when `cancel` asks to stop."""
    pixels = image.pixels if hasattr(image, "pixels") else np.asarray(image)
    grayscale = bool(getattr(image, "is_grayscale", False)) or _is_gray(pixels)
    if tokens is None:
        def tokens(identity: Identity):
            from engine.restore.identity import encode_references, reference_images

            return encode_references(lambda images: pipeline.encode_identity(images, cancel=cancel),
                                     reference_images(identity))

    check_cancelled(cancel, "restoration")
    outcomes = list(plan.faces)
    todo = [i for i, o in enumerate(outcomes) if o.action != "skipped"]
    if preview:
        check, options = None, replace(options, tries=1)
    elif todo and options.runs_check and check is None:
        from engine.restore.identity_check import shared_check

        check = shared_check(options.models_dir)
    if check is None:
        check_references = None
    elif check_references is None:
        from engine.restore.identity import CheckReferences

        check_references = CheckReferences(check)
    tries = options.tries
    face_steps = options.steps * tries
    total = max(len(todo) * face_steps, 1)
    identities: dict[str, object] = {}
    to_denoise: list[list[FaceToDenoise]] = [[] for _ in range(tries)]  # per try: every face, in order
    prepared = []  # per face: (index, crop, alignment, check references, try seeds)
    base_seed = options.seed if options.seed is not None else int.from_bytes(os.urandom(6), "little")
    for i in todo:
        check_cancelled(cancel, "restoration")
        outcome = outcomes[i]
        identity = None
        who = None
        if outcome.action == "restored":
            if outcome.identity not in plan.identities:
                raise UsageError(f"the plan restores face {i + 1} as {outcome.person_name}, but has no identity "
                                 f"{outcome.identity!r}")
            who = plan.identities[outcome.identity]
            if outcome.identity not in identities:
                report(progress, 0, total, f"reading {who.name}'s references")
                use = tokens(who)
                use = use if isinstance(use, IdentityUse) else IdentityUse(use)
                identities[outcome.identity] = replace(use, tokens=_pipeline_tensor(pipeline, use.tokens))
            identity = identities[outcome.identity]
        alignment = align_face(outcome.face.landmarks)
        crop = warp_to_crop(np.ascontiguousarray(pixels[..., :3]), alignment)
        references = None
        if check is not None and who is not None:
            references = _references_or_none(check_references, who)
        seeds = try_seeds(base_seed + i, tries)
        for k, seed in enumerate(seeds):
            to_denoise[k].append(FaceToDenoise(crop, identity.tokens if identity else None, seed,
                                               identity.adapter if identity else None))
        prepared.append((i, crop, alignment, references, seeds))

    # Try k of every face is one batched denoising of the photo's faces, exactly as a one-try restoration
    # with seed + k * TRY_STRIDE would run it: so each try reproduces alone, bit for bit.
    by_try = []
    for k, batch in enumerate(to_denoise):
        check_cancelled(cancel, "restoration")

        def try_progress(done: int, _total: int, message: str, offset: int = k * len(batch) * options.steps,
                         label: str = f"try {k + 1} of {tries}, " if tries > 1 else "") -> None:
            report(progress, offset + done, total, label + message)

        by_try.append(_denoise_by_adapter(pipeline, batch, options, try_progress if progress else None, cancel,
                                          preview))
    restored_pairs = []
    for n, (i, crop, alignment, references, seeds) in enumerate(prepared):
        by_seed = {seed: by_try[k][n] for k, seed in enumerate(seeds)}
        kept_tries: tuple = ()
        if tries > 1:
            from engine.restore.identity_check import best_of_n

            # the tries are already denoised: only scored here, and the kept one is not embedded again
            scorer = check.scorer(crop, references)
            kept, result, attempts = best_of_n(by_seed.__getitem__, seeds, scorer, cancel)
            seed, kept_tries = seeds[kept], tuple(attempts)
            verdict = scorer.check(result)
        else:
            seed, result = seeds[0], by_seed[seeds[0]]
            verdict = check.check(result, crop, references) if check is not None else None
        parsing = face_parser(result) if face_parser is not None else None
        restored_pairs.append((result, alignment, parsing, crop))
        outcome = outcomes[i]
        use = identities.get(outcome.identity) if outcome.action == "restored" else None
        outcomes[i] = replace(outcome, seed=seed, check=verdict, tries=kept_tries,
                              identity_used=use.used if use is not None else None)
        if verdict is not None:
            from engine.restore.identity_check import describe_short

            log.info("face %d: %s — %s; %s", i + 1, outcome.action, outcome.reason, describe_short(verdict))
        else:
            log.info("face %d: %s — %s", i + 1, outcome.action, outcome.reason)
    check_cancelled(cancel, "restoration")
    if restored_pairs:
        report(progress, total, total, "pasting back")
        output = paste_faces(pixels, [(r, a) for r, a, _, _ in restored_pairs], shape=options.mask,
                             grayscale=grayscale, parsing_masks=[m for _, _, m, _ in restored_pairs],
                             unrestored=[c for _, _, _, c in restored_pairs])
    else:
        output = pixels.copy()
    return PhotoRestoration(output, outcomes)


def plan_photo_ad_hoc(pixels: np.ndarray, people: Sequence[PersonReferences], analyzer,
                      options: RestoreOptions = RestoreOptions(), faces: Sequence[Face] | None = None,
                      source=None) -> RestorationPlan:
    """Find the faces (detector sizes 640 → 256 for InsightFace) unless given, and match them to `people`.
    NoFaceError when the photo has no face, UsageError when `faces` is given empty."""
    check_people(people)
    if faces is None:
        faces = detect_faces(analyzer, pixels)
        if not faces:
            raise NoFaceError("no face found in the photo; nothing was restored", source)
    elif not faces:
        raise UsageError("no face was chosen, so there is nothing to restore", source)
    return plan_ad_hoc(list(faces), people, analyzer, options, str(source) if source else None)


def restore_photo(image, people: Sequence[PersonReferences], pipeline, analyzer=None,
                  options: RestoreOptions = RestoreOptions(), progress: ProgressCallback | None = None,
                  cancel: CancelCheck | None = None, face_parser: FaceParser | None = None,
                  faces: Sequence[Face] | None = None, check=None) -> PhotoRestoration:
    """Ad hoc: restore every eligible face of `image`, matching faces to `people` by embedding.

    `analyzer`: finds the faces and embeds the references (default: the pipeline's InsightFace). `faces`:
    faces already found in this image (only these are planned). Raises NoFaceError when the photo has
    no face (UsageError when `faces` is empty), CancelledError when `cancel` asks to stop."""
    pixels = image.pixels if hasattr(image, "pixels") else np.asarray(image)
    analyzer = analyzer if analyzer is not None else getattr(pipeline, "face_analyzer", None)
    if analyzer is None and (faces is None or people):
        raise UsageError("no face analyzer: pass one or use a pipeline loaded from a model pack")
    check_cancelled(cancel, "restoration")
    if faces is None:
        report(progress, 0, 0, "finding faces")
    plan = plan_photo_ad_hoc(pixels, people, analyzer, options, faces, getattr(image, "path", None))
    return restore_plan(image, plan, pipeline, options, progress=progress, cancel=cancel, face_parser=face_parser,
                        check=check)


def same_file(a: Path, b: Path) -> bool:
    """True when `a` and `b` name the same file (same path after resolving links, or same inode)."""
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def restore_photo_file(input_path: str | Path, output_path: str | Path, people: Sequence[PersonReferences],
                       pipeline, analyzer=None, options: RestoreOptions = RestoreOptions(),
                       progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
                       face_parser: FaceParser | None = None) -> PhotoRestoration:
    """Read `input_path`, restore it ad hoc, write `output_path` (same format, EXIF and ICC as the input,
    atomically). The input is only read. Nothing is written on any error (NoFaceError included)."""
    from engine.imageio import read_image, write_image

    input_path, output_path = Path(input_path), Path(output_path)
    if same_file(input_path, output_path):
        raise UsageError("the output would overwrite the input photo; choose another output path", output_path)
    loaded = read_image(input_path)
    result = restore_photo(loaded, people, pipeline, analyzer, options, progress, cancel, face_parser)
    write_image(output_path, result.pixels, like=loaded)
    return result
