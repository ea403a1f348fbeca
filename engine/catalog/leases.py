"""Job ownership: one process at a time runs a batch job, recorded as a lease in the catalog.

    lease = acquire(catalog, job_id)        JobBusyError while a live process holds it
    heartbeat(catalog, lease)               every HEARTBEAT_SECONDS; LeaseLostError if taken over
    release(catalog, lease)                 when the run ends (any way but a kill)
    owner_of(catalog, job_id) -> JobOwner   for the GUI: owner.describe() "running in process 1234 on host X"
    with hold(catalog, job_id) as keeper:   acquire + heartbeat thread + release; keeper.should_stop()
        run_job(..., cancel=lambda: user_cancel() or keeper.should_stop())
    with guarded(catalog, lease) as session: one write transaction that first proves the lease is
        still ours (LeaseLostError otherwise); what the block writes (a record, an output's rename)
        happens only then, and no takeover can come between the proof and the write

Which program took the job last ("faceme", or "FaceMe Studio" for the app's runs, inside
`running_as(APP)`) is kept with the job after its lease is let go (`run_by`, in the job's options): the
app resumes at its start only a batch it was running itself when it closed or crashed, never one
stopped in a terminal, which stays "interrupted — resume" until the user resumes it.

A lease is the job row's owner_pid, owner_host, owner_token and owner_heartbeat. It is dead, and is
taken over by the next `acquire`, when its process is gone (same host, the pid no longer exists) or its
heartbeat is older than STALE_SECONDS (a process on another computer, a suspended or hung one, or a
reused pid). Every change is a compare-and-set on the token, so two processes acquiring at the same
moment cannot both win. A job cancelled from elsewhere (`faceme jobs cancel`) is seen by the holder's
next heartbeat.

Liveness means progress: the heartbeat thread renews the lease only while the work reports progress
(`LeaseKeeper.progressed`, called by run_job's cancel check between denoising steps and photos) within
STALL_SECONDS, so an owner whose main thread hangs goes stale and its job can be taken over; an owner
that was only suspended (SIGSTOP) and wakes after a takeover finds its lease gone at its next guarded
write and stops without touching the output folder or the records.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from engine.catalog.db import Catalog
from engine.catalog.models import BatchJob, JobStatus, utcnow
from engine.errors import JobBusyError, LeaseLostError, UsageError

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
#: a heartbeat older than this means the owner is gone (or hung) wherever it runs
STALE_SECONDS = 60.0
#: with no progress reported for this long, the heartbeat stops renewing the lease (a hung owner); it
#: is longer than any one step that reports none (loading a model pack from a slow disk)
STALL_SECONDS = 600.0


#: the programs that run jobs, as `run_by` records them
CLI, APP = "faceme", "FaceMe Studio"
#: the key of the job's options (a JSON column) that holds which program acquired it last
RUN_BY_KEY = "run_by"
_program: ContextVar[str] = ContextVar("faceme_job_program", default=CLI)


@contextmanager
def running_as(program: str) -> Iterator[None]:
    """Jobs this thread acquires inside the block are recorded as run by `program` (default CLI)."""
    token = _program.set(program)
    try:
        yield
    finally:
        _program.reset(token)


def run_by(options: dict | None) -> str | None:
    """The program that acquired the job last, from its stored options (None: never run, or run by a version
    that did not record it)."""
    return (options or {}).get(RUN_BY_KEY)


@dataclass(frozen=True)
class Lease:
    job_id: int
    pid: int
    host: str
    token: str


@dataclass(frozen=True)
class JobOwner:
    """Who holds a job's lease, as the GUI and `faceme jobs list` show it."""

    job_id: int
    pid: int
    host: str
    heartbeat: datetime
    alive: bool
    #: this very process holds it
    mine: bool

    @property
    def elsewhere(self) -> bool:
        """Another live process runs the job."""
        return self.alive and not self.mine

    #: the process still exists but gave no sign of life for STALE_SECONDS (suspended or hung)
    silent: bool = False

    def where(self) -> str:
        return "this process" if self.mine else f"process {self.pid} on {self.host}"

    def describe(self, now: datetime | None = None) -> str:
        seconds = max(0, int(((now or utcnow()) - self.heartbeat).total_seconds()))
        if self.alive:
            return f"running in {self.where()} (last seen {seconds} s ago)"
        return f"was running in {self.where()}, which {self.how_it_stopped(seconds)}; it can be resumed"

    def how_it_stopped(self, seconds: int) -> str:
        if self.silent:
            return f"stopped answering (no sign of life for {seconds} s: suspended or hung)"
        return f"stopped (last seen {seconds} s ago)"


def this_host() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this computer."""
    if pid <= 0:
        return False
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return _not_a_zombie(pid)


def _not_a_zombie(pid: int) -> bool:
    """A killed child not yet reaped by its parent still has a pid; it runs nothing."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _is_alive(pid: int, host: str, heartbeat: datetime | None, now: datetime) -> bool:
    if heartbeat is None or now - heartbeat > timedelta(seconds=STALE_SECONDS):
        return False
    if host == this_host():
        return pid_alive(pid)
    return True  # another computer: only its heartbeat can tell


def _owner(job: BatchJob, now: datetime) -> JobOwner | None:
    if job.owner_token is None:
        return None
    pid, host = job.owner_pid or 0, job.owner_host or ""
    alive = _is_alive(pid, host, job.owner_heartbeat, now)
    mine = job.owner_pid == os.getpid() and job.owner_host == this_host()
    silent = not alive and (host != this_host() or pid_alive(pid))
    return JobOwner(job.id, pid, host or "?", job.owner_heartbeat or now, alive, mine, silent)


def owner_of(catalog: Catalog, job_id: int) -> JobOwner | None:
    """The holder of the job's lease (alive or not); None when nobody holds it."""
    with catalog.session() as session:
        job = session.get(BatchJob, job_id)
        if job is None:
            raise UsageError(f"batch {job_id} no longer exists in this catalog; `faceme jobs list` shows its batches")
        return _owner(job, utcnow())


def owners(catalog: Catalog) -> dict[int, JobOwner]:
    """Every held lease by job id (for a list of jobs)."""
    now = utcnow()
    with catalog.session() as session:
        return {job.id: _owner(job, now)
                for job in session.scalars(select(BatchJob).where(BatchJob.owner_token.is_not(None)))}


def acquire(catalog: Catalog, job_id: int) -> Lease:
    """Make this process the job's owner. JobBusyError (naming the owner) while a live process holds
    it; a dead owner's lease is taken over (logged)."""
    lease = Lease(job_id, os.getpid(), this_host(), uuid.uuid4().hex)
    with catalog.session() as session:  # read first, outside the write: a WAL reader never blocks
        job = session.get(BatchJob, job_id)
        if job is None:
            raise UsageError(f"batch {job_id} no longer exists in this catalog; `faceme jobs list` shows its batches")
        now = utcnow()
        current = _owner(job, now)
        seen = job.owner_token
        options = {**(job.options or {}), RUN_BY_KEY: _program.get()}
    if current is not None and current.alive:
        raise JobBusyError(f"batch {job_id} is {current.describe(now)}; wait for it to finish or stop it "
                           "there", owner=current.describe(now))
    # compare-and-set in its own write transaction: only if nobody changed the lease since we read it
    with catalog.transaction() as session:
        claimed = session.execute(
            update(BatchJob).where(BatchJob.id == job_id,
                                   BatchJob.owner_token.is_(None) if seen is None else BatchJob.owner_token == seen)
            .values(owner_pid=lease.pid, owner_host=lease.host, owner_token=lease.token, owner_heartbeat=utcnow(),
                    options=options)
            .execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        current = owner_of(catalog, job_id)
        text = current.describe() if current else "taken by another process"
        raise JobBusyError(f"batch {job_id} is {text}; wait for it to finish or stop it there", owner=text)
    if current is not None:
        seconds = max(0, int((now - current.heartbeat).total_seconds()))
        log.warning("batch %d: taken over from %s, which %s", job_id, current.where(),
                    current.how_it_stopped(seconds))
    return lease


def heartbeat(catalog: Catalog, lease: Lease) -> str:
    """Renew the lease; returns the job's status ("cancelled" when stopped from elsewhere).
    LeaseLostError when another process has taken the job over."""
    with catalog.transaction() as session:
        renewed = session.execute(update(BatchJob).where(BatchJob.id == lease.job_id,
                                                         BatchJob.owner_token == lease.token)
                                  .values(owner_heartbeat=utcnow())
                                  .execution_options(synchronize_session=False)).rowcount
        status = session.scalar(select(BatchJob.status).where(BatchJob.id == lease.job_id))
    if renewed != 1:
        raise LeaseLostError(f"batch {lease.job_id} was taken over by another process (or removed); "
                             "this process stops working on it (`faceme jobs list` shows who runs it)")
    return JobStatus(status).value


@contextmanager
def guarded(catalog: Catalog, lease: Lease) -> Iterator:
    """A write transaction that starts by renewing the lease (compare-and-set on its token, which takes
    the database's write lock): the block runs only while the lease is ours, and no other process can
    take the job over before the block's work is committed. LeaseLostError, with nothing written, when
    it was taken over. A guarded write counts as progress (it renews the heartbeat)."""
    with catalog.transaction() as session:
        renewed = session.execute(update(BatchJob).where(BatchJob.id == lease.job_id,
                                                         BatchJob.owner_token == lease.token)
                                  .values(owner_heartbeat=utcnow())
                                  .execution_options(synchronize_session=False)).rowcount
        if renewed != 1:
            raise LeaseLostError(f"batch {lease.job_id} was taken over by another process (or removed); "
                                 "this process stopped without writing anything more (`faceme jobs list` shows "
                                 "who runs it)")
        yield session


def release(catalog: Catalog, lease: Lease) -> bool:
    """Give the job back; False when the lease was no longer ours."""
    with catalog.transaction() as session:
        return session.execute(update(BatchJob).where(BatchJob.id == lease.job_id,
                                                      BatchJob.owner_token == lease.token)
                               .values(owner_pid=None, owner_host=None, owner_token=None, owner_heartbeat=None)
                               .execution_options(synchronize_session=False)).rowcount == 1


class LeaseKeeper:
    """A held lease with a background heartbeat. `should_stop()` turns True when the lease was lost
    or the job was cancelled from another process; pass it into run_job's cancel check."""

    def __init__(self, catalog: Catalog, lease: Lease, interval: float = HEARTBEAT_SECONDS,
                 stall_seconds: float | None = None):
        self.catalog = catalog
        self.lease = lease
        self.interval = interval
        self.stall_seconds = STALL_SECONDS if stall_seconds is None else stall_seconds
        self.lost = False
        self.cancelled_elsewhere = False
        self._last_progress = time.monotonic()
        self._stalled = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease of batch {lease.job_id}", daemon=True)

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def should_stop(self) -> bool:
        return self.lost or self.cancelled_elsewhere

    def progressed(self) -> None:
        """The work moved on (a denoising step, a photo): the heartbeat may go on renewing the lease."""
        self._last_progress = time.monotonic()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            quiet = time.monotonic() - self._last_progress
            if quiet > self.stall_seconds:
                if not self._stalled:
                    log.warning("batch %d: no progress for %.0f s; the lease is no longer renewed, so another "
                                "process may take the job over", self.lease.job_id, quiet)
                self._stalled = True
                continue
            self._stalled = False
            try:
                if heartbeat(self.catalog, self.lease) == JobStatus.cancelled.value:
                    self.cancelled_elsewhere = True
            except LeaseLostError as exc:
                log.warning("%s", exc)
                self.lost = True
                return
            except Exception as exc:  # a busy or full disk: keep trying; staleness is the judge
                log.warning("batch %d: heartbeat failed (%s)", self.lease.job_id, exc)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if not self.lost:
            try:
                release(self.catalog, self.lease)
            except Exception as exc:  # the lease goes stale on its own
                log.warning("batch %d: could not release the lease (%s)", self.lease.job_id, exc)


@contextmanager
def hold(catalog: Catalog, job_id: int, interval: float = HEARTBEAT_SECONDS,
         stall_seconds: float | None = None) -> Iterator[LeaseKeeper]:
    """Own the job for the duration of the block (acquire, heartbeat in the background while progress is
    reported, release)."""
    keeper = LeaseKeeper(catalog, acquire(catalog, job_id), interval, stall_seconds).start()
    try:
        yield keeper
    finally:
        keeper.close()
