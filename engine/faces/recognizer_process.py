"""A face analyser in a child process, for recognisers that hold Python's GIL while they compute.

dlib's bindings keep the GIL through model loading (~2 s) and every embedding (~0.2 s on a loaded
CPU), so a check run in a worker thread of the app freezes its window for that long. The app's
identity check therefore asks this proxy, which forwards `detect` / `embed` / `embed_many` to the
analyser living in a spawned process; the calling thread only waits on a pipe (GIL released). The
CLI and batch have no window to keep responsive and use the analyser in-process.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading

log = logging.getLogger(__name__)


def _serve(conn) -> None:
    """The child: one DlibFaceAnalyzer answering (method, args, kwargs) until None arrives."""
    from engine.faces.dlib_backend import DlibFaceAnalyzer

    analyzer = DlibFaceAnalyzer()
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        method, args, kwargs = message
        try:
            reply = ("ok", getattr(analyzer, method)(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            reply = ("error", exc)
        try:
            conn.send(reply)
        except Exception as exc:  # an exception that does not pickle
            conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))


class ProcessDlibAnalyzer:
    """DlibFaceAnalyzer's `detect`, `embed` and `embed_many` answered by a child process (started on
    first use, stopped by `close` or with this process). Thread-safe: one call at a time."""

    def __init__(self):
        from engine.faces.dlib_backend import EMBEDDING_MODEL

        self.embedding_model = EMBEDDING_MODEL
        self._lock = threading.Lock()
        self._conn = None
        self._process = None

    def _call(self, method: str, *args, **kwargs):
        with self._lock:
            if self._process is None or not self._process.is_alive():
                context = multiprocessing.get_context("spawn")
                self._conn, child = context.Pipe()
                self._process = context.Process(target=_serve, args=(child,), daemon=True,
                                                name="faceme-dlib-recogniser")
                self._process.start()
                child.close()
                log.info("dlib recogniser started in process %s", self._process.pid)
            try:
                self._conn.send((method, args, kwargs))
                status, value = self._conn.recv()
            except (EOFError, OSError) as exc:
                self._process = None
                raise RuntimeError(f"the dlib recogniser process stopped ({exc})") from exc
        if status == "error":
            raise value
        return value

    def detect(self, image_rgb, *args, **kwargs):
        return self._call("detect", image_rgb, *args, **kwargs)

    def embed(self, image_rgb, face):
        return self._call("embed", image_rgb, face)

    def embed_many(self, image_rgb, faces):
        return self._call("embed_many", image_rgb, faces)

    def close(self) -> None:
        with self._lock:
            if self._process is not None and self._process.is_alive():
                try:
                    self._conn.send(None)
                except OSError:
                    pass
                self._process.join(5)
                if self._process.is_alive():
                    self._process.terminate()
            self._process = None
