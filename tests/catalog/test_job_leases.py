"""Job ownership with real processes: a live owner keeps its job, a killed or silent one's lease is taken
over, two processes grabbing a job at the same moment never both get it (issue 14, item 6)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from engine.catalog import leases
from engine.catalog.jobs import cancel_job
from engine.catalog.db import open_catalog
from engine.catalog.models import BatchJob, utcnow
from engine.errors import JobBusyError, LeaseLostError

ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from engine.cli import main; sys.exit(main())"

_GRAB = """
import sys, time
from pathlib import Path
from engine.catalog.db import open_catalog
from engine.catalog.leases import acquire
from engine.errors import JobBusyError
catalog = open_catalog(sys.argv[1])
start, stop_file = float(sys.argv[3]), Path(sys.argv[4])
while time.time() < start:
    time.sleep(0.001)
try:
    acquire(catalog, int(sys.argv[2]))
    print("won", flush=True)
except JobBusyError:
    print("busy", flush=True)
while not stop_file.exists():  # stay alive: a dead winner's lease would rightly be taken over
    time.sleep(0.05)
"""


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture
def job(tmp_path) -> tuple[Path, int]:
    path = tmp_path / "catalog.sqlite3"
    catalog = open_catalog(path)
    with catalog.transaction() as session:
        row = BatchJob(out_dir=str(tmp_path / "out"), roots=[str(tmp_path / "album")], options={})
        session.add(row)
        session.flush()
        job_id = row.id
    catalog.close()
    return path, job_id


def _start_holder(path: Path, job_id: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "engine.testing.lease_holder", str(path), str(job_id)], cwd=ROOT,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "held", proc.stderr.read()
    return proc


def test_a_live_owner_keeps_its_job_and_a_killed_ones_lease_is_taken_over(job):
    path, job_id = job
    holder = _start_holder(path, job_id)
    catalog = open_catalog(path)
    try:
        owner = leases.owner_of(catalog, job_id)
        assert owner.alive and not owner.mine and owner.pid == holder.pid
        assert owner.describe().startswith(f"running in process {holder.pid} on {leases.this_host()}")
        with pytest.raises(JobBusyError, match=f"process {holder.pid}"):
            leases.acquire(catalog, job_id)
        time.sleep(0.5)  # heartbeats keep coming
        assert leases.owner_of(catalog, job_id).alive

        listed = subprocess.run([sys.executable, "-c", CLI, "jobs", "list", "--catalog", str(path)], cwd=ROOT,
                                env=_env(), capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0 and f"running in process {holder.pid}" in listed.stdout, listed
        resumed = subprocess.run([sys.executable, "-c", CLI, "jobs", "resume", str(job_id), "--catalog", str(path)],
                                 cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 6 and f"process {holder.pid}" in resumed.stderr, resumed

        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        owner = leases.owner_of(catalog, job_id)
        assert owner is not None and not owner.alive and "stopped" in owner.describe()
        lease = leases.acquire(catalog, job_id)  # at once: same host, pid gone; no waiting for staleness
        assert leases.owner_of(catalog, job_id).mine
        assert leases.release(catalog, lease)
        assert leases.owner_of(catalog, job_id) is None
    finally:
        catalog.close()
        if holder.poll() is None:
            holder.kill()


def test_an_owner_on_another_computer_counts_until_its_heartbeat_goes_stale(job):
    path, job_id = job
    catalog = open_catalog(path)
    try:
        def set_owner(age_seconds: float) -> None:
            with catalog.transaction() as session:
                session.execute(update(BatchJob).where(BatchJob.id == job_id).values(
                    owner_pid=4242, owner_host="nas-in-the-attic", owner_token="theirs",
                    owner_heartbeat=utcnow() - timedelta(seconds=age_seconds)))

        set_owner(5)
        with pytest.raises(JobBusyError, match="process 4242 on nas-in-the-attic"):
            leases.acquire(catalog, job_id)
        set_owner(leases.STALE_SECONDS + 30)
        lease = leases.acquire(catalog, job_id)
        assert leases.owner_of(catalog, job_id).mine
        leases.release(catalog, lease)
    finally:
        catalog.close()


def test_a_process_whose_lease_was_taken_over_learns_it_at_its_next_heartbeat(job):
    path, job_id = job
    catalog = open_catalog(path)
    try:
        first = leases.acquire(catalog, job_id)
        with catalog.transaction() as session:  # it hung for longer than the stale limit
            session.execute(update(BatchJob).where(BatchJob.id == job_id).values(
                owner_heartbeat=utcnow() - timedelta(seconds=leases.STALE_SECONDS + 1)))
        second = leases.acquire(catalog, job_id)
        with pytest.raises(LeaseLostError):
            leases.heartbeat(catalog, first)
        assert not leases.release(catalog, first)  # the old holder cannot free the new one's lease
        assert leases.heartbeat(catalog, second) == "running"
    finally:
        catalog.close()


@pytest.mark.parametrize("round_", range(3))
def test_processes_grabbing_one_job_at_the_same_moment_one_wins(job, tmp_path, round_):
    path, job_id = job
    stop = tmp_path / f"stop-{round_}"
    start = time.time() + 3.0
    procs = [subprocess.Popen([sys.executable, "-c", _GRAB, str(path), str(job_id), str(start), str(stop)], cwd=ROOT,
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    try:
        answers = sorted(p.stdout.readline().strip() for p in procs)
        assert answers == ["busy", "busy", "busy", "won"], [p.stderr.read() for p in procs if p.poll() is not None]
    finally:
        stop.touch()
        for p in procs:
            p.wait(timeout=30)


def test_cancelling_from_another_process_stops_the_holder(job):
    path, job_id = job
    holder = _start_holder(path, job_id)
    try:
        done = subprocess.run([sys.executable, "-c", CLI, "jobs", "cancel", str(job_id), "--catalog", str(path)],
                              cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and f"process {holder.pid}" in done.stdout, done
        out, err = holder.communicate(timeout=30)
        assert "stopped: cancelled elsewhere" in out, err
        assert holder.returncode == 0
    finally:
        if holder.poll() is None:
            holder.kill()
    catalog = open_catalog(path)
    try:
        assert leases.owner_of(catalog, job_id) is None  # released on the way out
        assert not cancel_job(catalog, job_id)  # already cancelled
    finally:
        catalog.close()


def test_a_catalog_of_the_previous_revision_gets_the_lease_columns_and_keeps_its_jobs(tmp_path):
    from sqlalchemy import text

    from engine.catalog.db import current_revision, head_revision, make_engine, upgrade

    path = tmp_path / "old.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine, "0001")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO batch_jobs (out_dir, roots, options, status, created_at) "
                                "VALUES ('/out', '[\"/album\"]', '{}', 'running', '2026-01-01 00:00:00')"))
    engine.dispose()
    catalog = open_catalog(path)
    try:
        assert current_revision(catalog.engine) == head_revision()
        assert leases.owner_of(catalog, 1) is None
        lease = leases.acquire(catalog, 1)
        assert leases.owner_of(catalog, 1).mine
        leases.release(catalog, lease)
    finally:
        catalog.close()
