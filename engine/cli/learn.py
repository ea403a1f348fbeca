"""`faceme people learn PERSON`: learn a person from the album, and what `faceme people show` says of it.

    faceme people learn PERSON [--method identity|adapter|both] [--steps N] [--seed S] [--learning-rate R]
                       [--strength X] [--without FACE...] [--check-steps N] [--fit-size PX] [--models DIR]
                       [--device D]

A fitted identity (the person's identity tokens optimised on their own faces) and/or a person adapter
(LoRA on the UNet's attention) are learned from the person's album faces (at least 8: 2–3 are held out),
then the held-out faces, degraded severely, are restored with the references alone and with what was
learned; what was learned is used from then on only if it beats the references on identity without
losing fidelity. The figures and the decision are printed, and kept (`faceme people show PERSON`).
Ctrl-C stops at the next step and keeps a checkpoint: the same command resumes it (exit 130).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from dataclasses import replace

from engine.cli.printable import printable

log = logging.getLogger(__name__)


def add_learn_parser(sub) -> argparse.ArgumentParser:
    """The `learn` action of `faceme people` (its catalog option is added with the group's)."""
    from engine.cli.options import DEVICE_HELP, add_models_option

    q = sub.add_parser("learn", help="learn a person from the album (fitted identity, person adapter), kept only "
                                     "where a held-out check shows it helps")
    q.add_argument("person")
    q.add_argument("--method", choices=("identity", "adapter", "both"), default="both",
                   help="a fitted identity, a person adapter, or both (default; the check picks)")
    q.add_argument("--steps", type=int, default=None, metavar="N",
                   help="fit steps (default: 300 for the identity, 400 for the adapter)")
    q.add_argument("--seed", type=int, default=0, help="the fit's seed (same seed, same result; default 0)")
    q.add_argument("--learning-rate", type=float, default=None, metavar="R",
                   help="the fit's learning rate (default: 0.002 for the identity, 0.0001 for the adapter)")
    q.add_argument("--strength", type=float, default=1.0, metavar="X",
                   help="how strongly a person adapter is used in restorations, 0..1 (default 1)")
    q.add_argument("--without", nargs="+", default=[], metavar="FACE", help="leave these faces out (#12 …)")
    q.add_argument("--check-steps", type=int, default=50, metavar="N",
                   help="denoising steps of the held-out check's restorations (default 50, as released)")
    q.add_argument("--fit-size", type=int, default=512, metavar="PX",
                   help="the side faces are fitted at (default 512, as restored; smaller only for quick trials)")
    add_models_option(q)
    q.add_argument("--device", default=None, help=DEVICE_HELP)
    q.set_defaults(handler=run_learn)
    return q


def _interruptible():
    """(cancel check, restore): Ctrl-C asks the fit to stop at its next step (keeping a checkpoint)
    instead of interrupting wherever it is; a second Ctrl-C interrupts at once."""
    asked = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return asked.is_set, lambda: None
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum, frame):
        if asked.is_set():
            raise KeyboardInterrupt
        asked.set()

    signal.signal(signal.SIGINT, on_interrupt)
    return asked.is_set, lambda: signal.signal(signal.SIGINT, previous)


def run_learn(args) -> int:
    from engine.cli.batch import check_pack
    from engine.cli.progress_bar import ProgressBar
    from engine.cli.scan import open_catalog_from
    from engine.errors import CancelledError
    from engine.learn.learning import LearnSettings, learn_person
    from engine.people.corrections import find_faces
    from engine.restore.service import get_service
    from engine.settings import Settings

    settings = Settings().with_overrides(models_dir=args.models, device=args.device)
    learn = LearnSettings(method=args.method, steps=args.steps, seed=args.seed, resolution=args.fit_size,
                          check_steps=args.check_steps, strength=args.strength,
                          identity_learning_rate=args.learning_rate, adapter_learning_rate=args.learning_rate)
    check_pack(settings.models_dir)
    with open_catalog_from(args) as catalog:
        without = ()
        if args.without:
            with catalog.session() as session:
                without = tuple(f.id for ref in args.without for f in find_faces(session, ref))
            learn = replace(learn, without=without)
        service = get_service(settings.models_dir, settings.device, settings.dtype, settings.memory)
        cancel, restore_signal = _interruptible()
        bar = ProgressBar(f"learning {args.person}")
        try:
            result = learn_person(catalog, args.person, service.pipeline, service.fingerprint, service.identity_check,
                                  learn, progress=bar, cancel=cancel)
        except CancelledError as exc:
            bar.close()
            print(f"faceme: {exc}", flush=True)
            return 130
        finally:
            restore_signal()
            bar.close()
    for line in result.lines():
        print(printable(line))
    return 0


def learned_lines(session, person, fingerprint: str | None) -> list[str]:
    """What `faceme people show` says of a person's learnings: each with its status and figures."""
    from engine.learn.check import CheckReport
    from engine.learn.store import learnings

    found = learnings(session, person, fingerprint)
    if not found:
        return [f"learned: nothing yet (faceme people learn {person.id})"]
    lines = ["learned:"]
    tables_shown: set[str] = set()
    for learned in found:
        report = CheckReport.from_dict(learned.figures) if learned.figures else None
        if learned.status == "accepted":
            state = "used in restorations"
        elif report is not None and report.kept.get(learned.method) and report.chosen:
            label = "fitted identity" if report.chosen == "fitted" else "person adapter"
            state = f"not used: the check kept it, but preferred the {label} learned with it"
        else:
            state = "not used (the check did not keep it)"
        if learned.stale:
            state = f"stale, used no more: {learned.stale}; learn again with `faceme people learn {person.id}`"
        fit = learned.settings
        strength = f", strength {learned.strength:g}" if learned.method == "adapter" else ""
        lines.append(f"  {learned.label}{strength}: {state}")
        if fit.get("steps"):
            lines.append(f"    {fit['steps']} steps, denoising loss {fit.get('loss_before', float('nan')):.4f} → "
                         f"{fit.get('loss_after', float('nan')):.4f}")
        if learned.message:
            lines.append(f"    {learned.message}")
        key = json.dumps(learned.figures, sort_keys=True, default=str)
        if report is not None and key not in tables_shown:  # one table per learning run
            tables_shown.add(key)
            lines += [f"    {line}" for line in report.lines()[1:-1]]
    return lines


def pack_fingerprint_or_none() -> str | None:
    """The default pack's fingerprint when a pack is there (stale learnings are then named), else None."""
    from engine.models.layout import check_part
    from engine.restore.identity import IDENTITY_PARTS, pack_fingerprint
    from engine.settings import Settings

    models = Settings().models_dir
    if not all(check_part(models, part).ok for part in IDENTITY_PARTS):
        return None
    return pack_fingerprint(models)
