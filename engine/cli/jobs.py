"""`faceme jobs`: the batch jobs in the catalog; stop, resume or retry one.

    faceme jobs list [--json] [--catalog DB]
    faceme jobs cancel JOB [--catalog DB]
    faceme jobs resume JOB [--models DIR] [--device D] [--catalog DB]
    faceme jobs retry JOB [--models DIR] [--device D] [--catalog DB]

`list` shows each job's photos done / left / failed, its output folder, who runs it ("running in
process 1234 on host X") and the outputs it wrote that are since missing or changed. `cancel` stops a job for good (a process running it stops at its next
heartbeat). `resume` continues a job with the options it was started with (its model folder unless
--models is given); `retry` puts its failed photos back in line, then resumes it. A job that another
live process runs is not resumed here (exit 6).
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.cli.options import DEVICE_HELP, add_command_group
from engine.cli.printable import printable
from engine.cli.scan import add_catalog_argument, open_catalog_from
from engine.text import plural


def add_parser(subparsers) -> None:
    sub = add_command_group(subparsers, "jobs", "list batch jobs; cancel, resume or retry one", __doc__)
    q = sub.add_parser("list", help="every batch job, newest first")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(handler=run_list)
    q = sub.add_parser("cancel", help="stop a job for good")
    q.add_argument("job", type=int)
    q.set_defaults(handler=run_cancel)
    for name, handler, text in (("resume", run_resume, "continue a job where it stopped"),
                                ("retry", run_retry, "restore a job's failed photos again")):
        q = sub.add_parser(name, help=text)
        q.add_argument("job", type=int)
        q.add_argument("--models", type=Path, help="model pack folder (default: the one the job was started with)")
        q.add_argument("--device", default=None, help=DEVICE_HELP)
        q.add_argument("--verbose", dest="show_faces", action="store_true",
                       help="print every photo's faces (person, action, reason, seed, check), earlier runs' too")
        q.set_defaults(handler=handler)
    for parser in sub.choices.values():
        add_catalog_argument(parser)


def _counts(job) -> dict[str, int]:
    counts = {"done": 0, "pending": 0, "skipped": 0, "failed": 0}
    for item in job.items:
        counts[item.status] = counts.get(item.status, 0) + 1
    return counts


def run_list(args) -> int:
    from engine.catalog.jobs import list_jobs
    from engine.catalog.leases import owners

    with open_catalog_from(args) as catalog:
        jobs, held = list_jobs(catalog), owners(catalog)
    rows = []
    for job in jobs:
        owner = held.get(job.id)
        rows.append({"id": job.id, "status": job.status, "out_dir": str(job.out_dir), "roots": job.roots,
                     **_counts(job), "owner": owner.describe() if owner else None,
                     "running_elsewhere": bool(owner and owner.elsewhere),
                     # stopped by Ctrl-C or a kill: "running" in the table, run by nobody (the Queue's words)
                     "interrupted": job.status == "running" and not (owner and owner.alive),
                     "lost_outputs": [{"output": str(i.output), "problem": i.output_problem}
                                      for i in job.lost_outputs]})
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print("no batch jobs (faceme batch DIR --out OUTDIR starts one)")
    for row in rows:
        status = "interrupted — resume" if row["interrupted"] else row["status"]
        print(f"{row['id']:>4}  {status:<9} {row['done']} done, {row['pending']} left, {row['skipped']} skipped, "
              f"{row['failed']} failed → {printable(row['out_dir'])}")
        if row["owner"]:
            print(f"      {row['owner']}")
        lost = row["lost_outputs"]
        if lost:
            print(f"      {plural(len(lost), 'output')} missing or changed since written "
                  f"(`faceme jobs resume {row['id']}` restores {'them' if len(lost) != 1 else 'it'}; a changed file "
                  "is kept and the new output written beside it):")
            for entry in lost:
                print(f"        {printable(entry['output'])}: {entry['problem']}")
    return 0


def run_cancel(args) -> int:
    from engine.catalog.jobs import cancel_job, get_job
    from engine.catalog.leases import owner_of

    with open_catalog_from(args) as catalog:
        job = get_job(catalog, args.job)
        owner = owner_of(catalog, args.job)
        stopped = cancel_job(catalog, args.job)
    if not stopped:
        print(f"batch {args.job} is {job.status}; nothing to cancel")
        return 0
    elsewhere = f"; {owner.describe()} and stops at its next heartbeat" if owner and owner.alive else ""
    print(f"batch {args.job} cancelled{elsewhere} (`faceme jobs resume {args.job}` continues it)")
    return 0


def run_retry(args) -> int:
    from engine.catalog.jobs import retry_failed

    with open_catalog_from(args) as catalog:
        count = retry_failed(catalog, args.job)
    print(f"batch {args.job}: {plural(count, 'failed photo')} put back in line")
    return run_resume(args)


def run_resume(args) -> int:
    """Run the job's remaining photos with its recorded options (the same path as `faceme batch`; a job
    that is gone is a UsageError there)."""
    from engine.cli.batch import run_batch_job

    with open_catalog_from(args) as catalog:
        return run_batch_job(catalog, args.job, models=args.models, device=args.device, show_faces=args.show_faces)
