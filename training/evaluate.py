"""Evaluation on a folder of restoration cases, in the layout of the paper's Table 1.

Cases come from a CSV with columns `case_id` (optional), `lq`, `gt` (may be empty) and `refs`
(semicolon-separated), paths relative to the CSV — e.g. `../shared/data/celebref_refs/cases.csv`.
Each LQ is restored with the model pack's FaceMe (up to `max_refs` references; references without a
detectable face are left out) unless `restored_dir` already holds the restorations (then any method's
outputs can be scored). Full-reference metrics (PSNR, SSIM, LPIPS, LMD, IDS) need a ground truth;
MUSIQ is computed for every case; FID compares the set of restorations with the set of
high-quality photos of the cases (ground truths and references). The table says how many cases each
column covers, and puts the paper's FaceMe row beside ours.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import NoFaceError, UsageError
from engine.progress import ProgressCallback, report
from training.config import TrainingConfig
from training.metrics import IdentitySimilarity, LearnedMetrics, lmd, mean, psnr, ssim
from training.prepare import read_rgb, write_rgb

log = logging.getLogger(__name__)

#: The paper's column order (Table 1, CelebRef-HQ) and which way is better.
COLUMNS = (("PSNR", "↑"), ("SSIM", "↑"), ("LPIPS", "↓"), ("MUSIQ", "↑"), ("FID", "↓"), ("LMD", "↓"),
           ("IDS", "↑"))
PAPER_FACEME_ROW = {"PSNR": 24.37, "SSIM": 0.678, "LPIPS": 0.227, "MUSIQ": 75.62, "FID": 51.01, "LMD": 2.908,
                    "IDS": 0.647}
DECIMALS = {"PSNR": 2, "SSIM": 3, "LPIPS": 3, "MUSIQ": 2, "FID": 2, "LMD": 3, "IDS": 3}


@dataclass(frozen=True)
class Case:
    case_id: str
    lq: Path
    gt: Path | None
    refs: tuple[Path, ...]


def read_cases(csv_path: Path) -> list[Case]:
    csv_path = Path(csv_path)
    root = csv_path.parent
    try:
        with csv_path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise UsageError(f"cannot read the cases file ({exc.strerror})", csv_path) from exc
    if not rows or "lq" not in rows[0]:
        raise UsageError("not a cases file (needs at least an 'lq' column)", csv_path)
    cases = []
    for i, row in enumerate(rows):
        refs = tuple(root / r for r in (row.get("refs") or "").split(";") if r.strip())
        gt = (row.get("gt") or "").strip()
        cases.append(Case(row.get("case_id") or Path(row["lq"]).stem or f"case{i}", root / row["lq"],
                          root / gt if gt else None, refs))
    return cases


@dataclass
class MetricTable:
    """Mean per column and how many cases it covers; `notes` explain what was skipped."""

    label: str
    values: dict[str, float | None]
    counts: dict[str, int]
    total_cases: int
    notes: list[str] = field(default_factory=list)

    def _fmt(self, name: str, value: float | None) -> str:
        return "—" if value is None else f"{value:.{DECIMALS[name]}f}"

    def markdown(self) -> str:
        head = "| Method | " + " | ".join(f"{n}{arrow}" for n, arrow in COLUMNS) + " |"
        rule = "|---|" + "---:|" * len(COLUMNS)
        ours = f"| {self.label} | " + " | ".join(self._fmt(n, self.values.get(n)) for n, _ in COLUMNS) + " |"
        paper = "| FaceMe (paper, CelebRef-HQ) | " + " | ".join(self._fmt(n, PAPER_FACEME_ROW[n])
                                                             for n, _ in COLUMNS) + " |"
        cover = "| cases covered | " + " | ".join(f"{self.counts.get(n, 0)}/{self.total_cases}"
                                                  for n, _ in COLUMNS) + " |"
        lines = [head, rule, ours, paper, cover]
        if self.notes:
            lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines)

    def write(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        with (out_dir / "metrics.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["method"] + [n for n, _ in COLUMNS])
            writer.writerow([self.label] + ["" if self.values.get(n) is None else f"{self.values[n]:.6g}"
                                            for n, _ in COLUMNS])
            writer.writerow(["FaceMe (paper, CelebRef-HQ)"] + [PAPER_FACEME_ROW[n] for n, _ in COLUMNS])
            writer.writerow(["cases covered"] + [self.counts.get(n, 0) for n, _ in COLUMNS])
        (out_dir / "metrics.md").write_text(self.markdown() + "\n", encoding="utf-8")


def restore_cases(pipeline, cases: list[Case], out_dir: Path, steps: int, guidance: float, max_refs: int,
                  seed: int, color_fix: bool = True, progress: ProgressCallback | None = None) -> None:
    """Restore every case into `out_dir/<case_id>.png` (cases already there are kept: resumable)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, case in enumerate(cases):
        target = out_dir / f"{case.case_id}.png"
        if not target.exists():
            usable = []
            for ref in case.refs:
                if len(usable) == max_refs:
                    break
                try:
                    usable.append(pipeline.encode_identity([ref]))
                except NoFaceError:
                    log.warning("%s: no face detected; reference left out", ref)
            identity = None
            if usable:
                import torch

                identity = torch.cat(usable)
            restored = pipeline(read_rgb(case.lq), identity=identity, steps=steps, guidance_scale=guidance,
                                seed=seed, color_fix=color_fix)
            write_rgb(target, restored)
        report(progress, i + 1, len(cases), f"restoring {case.case_id}")


def score_cases(cases: list[Case], restored_dir: Path, analyzer, label: str, learned: LearnedMetrics | None = None,
                per_case_csv: Path | None = None, progress: ProgressCallback | None = None) -> MetricTable:
    import cv2

    learned = learned or LearnedMetrics()
    ids_metric = IdentitySimilarity(analyzer) if analyzer is not None else None
    rows = []
    for i, case in enumerate(cases):
        path = restored_dir / f"{case.case_id}.png"
        if not path.exists():
            raise UsageError(f"no restoration for case {case.case_id}", path)
        restored = read_rgb(path)
        row = {"case_id": case.case_id, "MUSIQ": learned.musiq(restored)}
        if case.gt is not None:
            gt = read_rgb(case.gt)
            if gt.shape != restored.shape:
                restored_for_gt = cv2.resize(restored, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_AREA)
            else:
                restored_for_gt = restored
            row.update(PSNR=psnr(restored_for_gt, gt), SSIM=ssim(restored_for_gt, gt),
                       LPIPS=learned.lpips(restored_for_gt, gt), LMD=lmd(restored_for_gt, gt),
                       IDS=ids_metric(restored_for_gt, gt) if ids_metric else None)
        rows.append(row)
        report(progress, i + 1, len(cases), f"scoring {case.case_id}")

    values, counts = {}, {}
    for name, _ in COLUMNS:
        if name == "FID":
            continue
        values[name], counts[name] = mean([r.get(name) for r in rows])
    notes = []
    fid = None
    if "FID" in learned.metrics:
        import tempfile

        with tempfile.TemporaryDirectory() as hq_dir:
            hq = {p for c in cases for p in ((c.gt,) if c.gt else ()) + c.refs}
            for k, p in enumerate(sorted(hq)):
                write_rgb(Path(hq_dir) / f"{k:05d}.png", read_rgb(p))
            fid = learned.fid(str(restored_dir), hq_dir)
    values["FID"], counts["FID"] = fid, (len(cases) if fid is not None else 0)
    for name, reason in sorted(learned.unavailable.items()):
        notes.append(f"{name} skipped: {reason}")
    if ids_metric is None:
        notes.append("IDS skipped: no ArcFace model")
    elif ids_metric.fallbacks:
        notes.append(f"IDS: no face detected in {ids_metric.fallbacks} restoration(s); the ground truth's "
                     "landmarks were used for them")
    no_gt = sum(c.gt is None for c in cases)
    if no_gt:
        notes.append(f"{no_gt} of {len(cases)} cases have no ground truth: only no-reference metrics for them")
    if per_case_csv is not None:
        with per_case_csv.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["case_id"] + [n for n, _ in COLUMNS if n != "FID"])
            writer.writeheader()
            for r in rows:
                writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return MetricTable(label, values, counts, len(cases), notes)


def evaluate_from_config(config: TrainingConfig, cases_csv: Path, out_dir: Path, restored_dir: str | None = None,
                         limit: int | None = None, progress: ProgressCallback | None = None) -> MetricTable:
    from engine.models.layout import part_dir

    if config.run.cpu_threads:
        import torch

        torch.set_num_threads(config.run.cpu_threads)
    cases = read_cases(cases_csv)[:limit] if limit else read_cases(cases_csv)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ev = config.evaluate
    analyzer = None
    if restored_dir is None:
        from engine.faceme.pipeline import FaceMePipeline

        pipeline = FaceMePipeline.from_pack(config.models_dir, device="auto", dtype="auto")
        restored = out_dir / "restored"
        restore_cases(pipeline, cases, restored, ev.num_inference_steps, ev.guidance_scale, ev.max_refs, ev.seed,
                      ev.color_fix, progress)
        analyzer = pipeline.face_analyzer
        label = f"ours ({Path(config.models_dir).name}, {ev.num_inference_steps} steps)"
    else:
        from engine.faces.insightface_backend import InsightFaceAnalyzer

        restored = Path(restored_dir)
        analyzer = InsightFaceAnalyzer(part_dir(Path(config.models_dir), "antelopev2"),
                                       providers=["CPUExecutionProvider"])
        label = f"{restored.name}"
    table = score_cases(cases, restored, analyzer, label, per_case_csv=out_dir / "per_case.csv", progress=progress)
    table.write(out_dir)
    return table
