"""`python -m training COMMAND --config FILE …` — FaceMe training, reference pools and evaluation.

Commands:
  faces          aligned 512 px (or --size) face crops of every photo in a folder (dlib landmarks)
  degrade        degraded copies of a folder of ground truths (the training degradation) + parameters
  degradation-grid  a picture: each face's ground truth beside several degradations with their parameters
  precompute     ArcFace + CLIP embeddings of every training image (resumable)
  stage1         train ControlNet + Mix (identity always on)
  stage2         train a fresh ControlNet with stage I's Mix frozen (identity dropped with p = 0.5)
  export-pack    a model pack (for `faceme restore-face --models`) with the trained controlnet/ and mix/
  build-refpool  synthesise an FFHQRef-style reference pool (pose/expression clusters, ArcFace filter)
  evaluate       restore a folder of cases and write the paper's metric table (CSV + Markdown)

Multi-GPU / multi-node: `accelerate launch [--num_processes N …] -m training stage1 --config FILE`.
Exit codes as for `faceme`: 0 ok, 1 other error, 2 usage error, 3 no face, 4 model pack problem.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.errors import FaceMeError

log = logging.getLogger("training")


def _progress_bar(label: str):
    from engine.cli.progress_bar import ProgressBar

    return ProgressBar(label)


def _config(args):
    from training.config import load_config

    return load_config(args.config, args.set or ())


def cmd_faces(args) -> int:
    from training.prepare import make_face_folder

    written = make_face_folder(args.src, args.out, args.size, progress=_progress_bar("aligning"))
    print(f"{len(written)} aligned faces in {args.out}")
    return 0


def cmd_degrade(args) -> int:
    from training.prepare import degrade_folder

    written = degrade_folder(args.gt, args.out, seed=args.seed, progress=_progress_bar("degrading"))
    print(f"{len(written)} degraded images in {args.out} (parameters in degradations.json)")
    return 0


def cmd_degradation_grid(args) -> int:
    from engine.imageio import write_image
    from training.prepare import aligned_crop, degradation_grid

    faces = [aligned_crop(Path(p), 512) for p in args.photos]
    grid = degradation_grid(faces, per_face=args.per_face, seed=args.seed, tile=args.tile)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_image(args.out, grid)
    print(f"{args.out}: {len(faces)} faces × {args.per_face} degradations ({grid.shape[1]}×{grid.shape[0]})")
    return 0


def cmd_precompute(args) -> int:
    from training.data import build_index
    from training.embeddings import EngineReferenceEmbedder, precompute
    from training.models import load_reference_models

    config = _config(args)
    if not config.data.embeddings_dir:
        raise FaceMeError("data.embeddings_dir is not set in the config")
    index = build_index(config.data.layout, config.data.gt_dir, config.data.ref_dir, config.data.include_gt_in_pool)
    analyzer, id_encoder = load_reference_models(config.models_dir, device=args.device)
    written = precompute(index.images, Path(config.data.embeddings_dir), EngineReferenceEmbedder(analyzer, id_encoder),
                         shard_size=config.data.shard_size, progress=_progress_bar("embedding"), part=args.part,
                         encoder_info={"models_dir": str(config.models_dir), "detector": analyzer.pack_dir.name,
                                       "arcface": analyzer.embedding_model})
    print(f"{len(index.images)} images; {written} new shard(s) in {config.data.embeddings_dir}")
    return 0


def cmd_stage(args) -> int:
    from training.train import TrainingInterrupted, train_stage

    config = _config(args)
    try:
        result = train_stage(config, args.command, resume=args.resume, stop_after_step=args.stop_after_step,
                             progress=None if args.quiet else _progress_bar(args.command))
    except TrainingInterrupted as exc:
        print(f"{args.command}: {exc}; continue with --resume latest", file=sys.stderr)
        return 1
    if not result.is_main_process:
        return 0
    if result.losses:
        print(f"{args.command}: {result.steps} steps, loss {result.losses[0]:.4f} → {result.losses[-1]:.4f}; "
              f"weights in {result.output_dir} (controlnet/, mix/mix.safetensors)")
    else:
        print(f"{args.command}: already at step {result.steps}; weights in {result.output_dir}")
    return 0


def cmd_export_pack(args) -> int:
    from training.models import assemble_pack

    config = _config(args)
    trained = Path(args.stage_dir) if args.stage_dir else config.stage_output_dir("stage2")
    out = assemble_pack(config.models_dir, trained, Path(args.out))
    print(f"model pack with the trained controlnet/ and mix/: {out} (faceme restore-face --models {out})")
    return 0


def cmd_build_refpool(args) -> int:
    from training.refpool import build_refpool_from_config

    config = _config(args)
    summary = build_refpool_from_config(config, Path(args.source), Path(args.out), limit=args.limit,
                                        progress=_progress_bar("reference pool"))
    print(summary.describe())
    return 0


def cmd_evaluate(args) -> int:
    from training.evaluate import evaluate_from_config

    config = _config(args)
    table = evaluate_from_config(config, Path(args.cases), Path(args.out), restored_dir=args.restored,
                                 limit=args.limit, progress=_progress_bar("evaluation"))
    print(table.markdown())
    print(f"\ntables: {Path(args.out) / 'metrics.csv'}, {Path(args.out) / 'metrics.md'}")
    return 0


def _part(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"I must be in 0..N-1, got {text!r}")
    return i, n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("-v", "--verbose", action="count", default=1, help="more logging (-vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_config(p):
        p.add_argument("--config", type=Path, required=True, help="YAML file (training/configs/*.yaml)")
        p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                       help="override one config value (repeatable), e.g. --set run.batch_size=2")
        return p

    p = sub.add_parser("faces", help="aligned face crops of a folder of photos")
    p.add_argument("--src", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--size", type=int, default=512)
    p.set_defaults(handler=cmd_faces)

    p = sub.add_parser("degrade", help="degrade a folder of ground truths")
    p.add_argument("--gt", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cmd_degrade)

    p = sub.add_parser("degradation-grid", help="a picture of degraded examples (ground truth + N draws per face)")
    p.add_argument("photos", nargs="+", type=Path, help="photos with one face each (aligned with dlib)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--per-face", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tile", type=int, default=224)
    p.set_defaults(handler=cmd_degradation_grid)

    p = with_config(sub.add_parser("precompute", help="ArcFace + CLIP embeddings of the training images"))
    p.add_argument("--device", default="cpu", help="device of the CLIP encoder (ArcFace follows: CUDA if cuda)")
    p.add_argument("--part", type=_part, default=(0, 1), metavar="I/N",
                   help="only shards k with k mod N == I (split the work over N processes)")
    p.set_defaults(handler=cmd_precompute)

    for stage in ("stage1", "stage2"):
        p = with_config(sub.add_parser(stage, help=f"train {stage}"))
        p.add_argument("--resume", default=None, help="'latest' or a checkpoint folder")
        p.add_argument("--stop-after-step", type=int, default=None, help=argparse.SUPPRESS)
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(handler=cmd_stage)

    p = with_config(sub.add_parser("export-pack", help="a model pack using the trained weights"))
    p.add_argument("--out", required=True, help="the pack folder to write")
    p.add_argument("--stage-dir", default=None, help="training output to use (default: the stage-2 output)")
    p.set_defaults(handler=cmd_export_pack)

    p = with_config(sub.add_parser("build-refpool", help="synthesise a reference pool (FFHQRef layout)"))
    p.add_argument("--source", required=True, help="folder of identity images (FFHQ ground truths)")
    p.add_argument("--out", required=True, help="output folder (target_pose_i/target_pose_i_j/<id>.png)")
    p.add_argument("--limit", type=int, default=None, help="only the first N source images")
    p.set_defaults(handler=cmd_build_refpool)

    p = with_config(sub.add_parser("evaluate", help="metrics table on a folder of cases"))
    p.add_argument("--cases", required=True, help="cases.csv (columns lq, gt, refs; paths relative to it)")
    p.add_argument("--out", required=True, help="output folder (restored/, metrics.csv, metrics.md)")
    p.add_argument("--restored", default=None, help="score an existing folder of restorations instead")
    p.add_argument("--limit", type=int, default=None)
    p.set_defaults(handler=cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose > 1 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.handler(args) or 0)
    except FaceMeError as exc:
        print(f"training: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("training: interrupted", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
