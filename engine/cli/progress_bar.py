"""A progress bar on stderr for long operations, shown only once an operation passes one second."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from engine.cli.printable import printable


class ProgressBar:
    """Callable as a `ProgressCallback`: bar(done, total, message)."""

    #: True while some bar has drawn a line without ending it (so a message must start a new line)
    line_open = False

    def __init__(self, label: str, stream: TextIO | None = None, delay: float = 1.0, unit: str = ""):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.delay = delay
        self.unit = unit
        self.start = time.monotonic()
        self._shown = False
        self._last = 0.0

    def __call__(self, done: int, total: int, message: str = "") -> None:
        now = time.monotonic()
        elapsed = now - self.start
        final = total > 0 and done >= total
        if elapsed < self.delay and not (final and self._shown):
            return
        if not final and now - self._last < 0.1:
            return
        self._last = now
        self._shown = True
        if total > 0:
            frac = min(done / total, 1.0)
            bar = "#" * int(frac * 24)
            eta = elapsed / done * (total - done) if done else 0.0
            text = f"\r{self.label} [{bar:<24}] {done}/{total}{self.unit} {elapsed:5.1f}s"
            text += f" eta {eta:5.1f}s" if not final else "        "
        else:
            text = f"\r{self.label} {done}{self.unit} {elapsed:5.1f}s"
        if message:  # often a file name: a newline in it must not break the line the bar redraws
            text += f" {printable(message)[:40]}"
        self.stream.write(text)
        ProgressBar.line_open = not final
        if final:
            self.stream.write("\n")
        self.stream.flush()

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
            ProgressBar.line_open = False
