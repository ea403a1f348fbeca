"""Long work off the GUI thread (napari style): a Job is a QObject moved to its own QThread.

A job wraps a plain engine call `fn(progress, cancel)`. Progress, the result, errors (already turned
into plain words) and the end are reported through signals, which Qt delivers on the GUI thread.
Cancellation and pausing go through the engine's own CancelCheck: the check the engine calls between
steps returns True once the user cancelled, and blocks while the user has paused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from app.messages import UserMessage, describe
from engine.errors import CancelledError
from engine.progress import CancelCheck, ProgressCallback

log = logging.getLogger(__name__)

JobFunction = Callable[[ProgressCallback, CancelCheck], Any]

#: progress signals are rate-limited: more than ~30 per second only costs the GUI thread time
_PROGRESS_INTERVAL_S = 0.03


class Job(QObject):
    progress = Signal(int, int, str)
    result = Signal(object)
    failed = Signal(object)  # UserMessage
    cancelled = Signal()
    paused_changed = Signal(bool)
    finished = Signal()

    def __init__(self, fn: JobFunction, doing: str, parent: QObject | None = None):
        super().__init__(parent)
        self._fn = fn
        self.doing = doing
        self._cancel = threading.Event()
        self._running = threading.Event()
        self._running.set()  # cleared while paused
        self._last_progress = 0.0
        self.outcome: str = "pending"  # pending | running | done | failed | cancelled
        self.thread: QThread | None = None

    # --- called from the GUI thread -----------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()
        self._running.set()  # a paused job must wake up to notice

    def pause(self) -> None:
        if self._running.is_set() and not self._cancel.is_set():
            self._running.clear()
            self.paused_changed.emit(True)

    def resume(self) -> None:
        if not self._running.is_set():
            self._running.set()
            self.paused_changed.emit(False)

    @property
    def is_paused(self) -> bool:
        return not self._running.is_set()

    # --- called from the worker thread (through the engine) -----------------------------------
    def is_cancelled(self) -> bool:
        """The engine's CancelCheck: True once cancelled; waits here while paused."""
        while not self._running.wait(0.1):
            pass
        return self._cancel.is_set()

    def report(self, done: int, total: int, message: str = "") -> None:
        now = time.monotonic()
        if done >= total or now - self._last_progress >= _PROGRESS_INTERVAL_S:
            self._last_progress = now
            self.progress.emit(int(done), int(total), str(message))

    @Slot()
    def run(self) -> None:
        self.outcome = "running"
        try:
            value = self._fn(self.report, self.is_cancelled)
            if self._cancel.is_set():
                raise CancelledError(f"{self.doing} cancelled")
        except CancelledError:
            self.outcome = "cancelled"
            log.info("%s: cancelled", self.doing)
            self.cancelled.emit()
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the user, not kill the thread
            self.outcome = "failed"
            message: UserMessage = describe(exc, self.doing)
            log.error("%s failed: %s", self.doing, exc, exc_info=exc)
            self.failed.emit(message)
        else:
            self.outcome = "done"
            self.result.emit(value)
        finally:
            self.finished.emit()


class JobRunner(QObject):
    """Starts jobs on their own threads, keeps them alive while they run, stops them all on close."""

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._jobs: list[Job] = []
        self._closing = False

    def start(self, job: Job) -> Job:
        if self._closing:
            # shutdown() has begun: a thread started now (a page's refresh after its job ended, a timer)
            # would outlive the application, and Qt aborts when a running QThread is destroyed
            log.info("not starting %r: the app is closing", job.doing)
            job.outcome = "refused"
            return job
        thread = QThread()
        thread.setObjectName(job.doing[:40])
        job.thread = thread
        job.moveToThread(thread)
        thread.started.connect(job.run)
        # direct: QThread.quit is thread-safe, and a queued call would wait for a GUI thread that may be
        # blocked in shutdown() waiting for this very thread
        job.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.finished.connect(self._thread_finished)
        self._jobs.append(job)
        thread.start()
        if len(self._jobs) == 1:
            self.busy_changed.emit(True)
        return job

    def run(self, fn: JobFunction, doing: str, *, on_result=None, on_failed=None, on_progress=None,
            on_cancelled=None, on_finished=None) -> Job:
        """Start `fn` as a job; the callbacks run on the GUI thread (through a relay object)."""
        job = Job(fn, doing)
        relay = _Relay(on_result, on_failed, on_progress, on_cancelled, on_finished, parent=self)
        job.result.connect(relay.on_result)
        job.failed.connect(relay.on_failed)
        job.progress.connect(relay.on_progress)
        job.cancelled.connect(relay.on_cancelled)
        job.finished.connect(relay.on_finished)
        return self.start(job)

    @Slot()
    def _thread_finished(self) -> None:
        thread = self.sender()
        for job in list(self._jobs):
            if job.thread is thread:
                self._forget(job)

    def _forget(self, job: Job) -> None:
        if job in self._jobs:
            self._jobs.remove(job)
            if job.thread is not None:
                job.thread.deleteLater()
            job.deleteLater()
        if not self._jobs:
            self.busy_changed.emit(False)

    @property
    def jobs(self) -> list[Job]:
        return list(self._jobs)

    def is_busy(self) -> bool:
        return bool(self._jobs)

    def cancel_all(self) -> None:
        for job in list(self._jobs):
            job.cancel()

    @property
    def closing(self) -> bool:
        return self._closing

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel every job and wait for its thread; True when all stopped in time. No job starts after
        this (callbacks of the stopped jobs that would start more are refused)."""
        self._closing = True
        self.cancel_all()
        stopped = True
        for job in list(self._jobs):
            if job.thread is not None and not job.thread.wait(timeout_ms):
                log.error("%s did not stop within %d ms", job.doing, timeout_ms)
                stopped = False
            else:
                self._forget(job)
        return stopped


class _Relay(QObject):
    """Lives on the GUI thread so that plain Python callbacks run there, not on the worker thread.

    (PySide6 calls a lambda or function connected to a worker's signal on the worker's thread; a bound
    method of a QObject living on the GUI thread is called through the GUI thread's event queue.)
    """

    def __init__(self, on_result, on_failed, on_progress, on_cancelled, on_finished, parent: QObject):
        super().__init__(parent)
        self._callbacks = (on_result, on_failed, on_progress, on_cancelled, on_finished)

    @Slot(object)
    def on_result(self, value) -> None:
        if self._callbacks[0]:
            self._callbacks[0](value)

    @Slot(object)
    def on_failed(self, message) -> None:
        if self._callbacks[1]:
            self._callbacks[1](message)

    @Slot(int, int, str)
    def on_progress(self, done: int, total: int, message: str) -> None:
        if self._callbacks[2]:
            self._callbacks[2](done, total, message)

    @Slot()
    def on_cancelled(self) -> None:
        if self._callbacks[3]:
            self._callbacks[3]()

    @Slot()
    def on_finished(self) -> None:
        try:
            if self._callbacks[4]:
                self._callbacks[4]()
        finally:
            self._callbacks = (None, None, None, None, None)
            self.deleteLater()
