"""A progress bar on stderr for long operations, shown only once an operation passes one second.

The time left ("eta") is measured on this run's own work: the first report with a total says where the
run starts (a resumed job reports what was done before it there), and the rate is the units done since
that report over the time since it. Units done before the run would make the rate look fast ("1 s left"
with 17 photos to go), so they never count. A producer whose message carries its own estimate (the
model downloader's, which counts only bytes really fetched) gets a bar with `eta=False`: one estimate per
line.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from engine.cli.printable import printable

#: the message's share of the line: the bar, counts and times take the rest of an 80-column terminal
MESSAGE_WIDTH = 40


def eta_text(seconds: float) -> str:
    """Seconds left as a person says it: "40 s", "4 min 05 s", "1 h 02 min"."""
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _shortened(message: str, width: int = MESSAGE_WIDTH) -> str:
    """The message on one line, at most `width` characters; a longer one keeps its end (a file name's
    distinguishing part, a download's rate and time left)."""
    text = printable(message)  # often a file name: a newline in it must not break the line the bar redraws
    return text if len(text) <= width else "…" + text[-(width - 1):]


class ProgressBar:
    """Callable as a `ProgressCallback`: bar(done, total, message)."""

    #: True while some bar has drawn a line without ending it (so a message must start a new line)
    line_open = False

    def __init__(self, label: str, stream: TextIO | None = None, delay: float = 1.0, unit: str = "",
                 eta: bool = True):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.delay = delay
        self.unit = unit
        self.eta = eta
        self.start = time.monotonic()
        self._shown = False
        self._last = 0.0
        self._width = 0  # of the line drawn last: a shorter one is padded so nothing of it remains
        self._run_start: tuple[float, int] | None = None  # (time, done) of the first report with a total

    def __call__(self, done: int, total: int, message: str = "") -> None:
        now = time.monotonic()
        if total > 0 and self._run_start is None:
            self._run_start = (now, done)
        elapsed = now - self.start
        final = total > 0 and done >= total
        if elapsed < self.delay and not (final and self._shown):
            return
        if not final and now - self._last < 0.1:
            return
        self._last = now
        self._shown = True
        self._draw(self._line(done, total, message, now, final), final)

    def _line(self, done: int, total: int, message: str, now: float, final: bool) -> str:
        elapsed = now - self.start
        if total > 0:
            bar = "#" * int(min(done / total, 1.0) * 24)
            text = f"{self.label} [{bar:<24}] {done}/{total}{self.unit} {elapsed:5.1f}s"
            left = None if final else self.seconds_left(done, total, now)
            if left is not None:
                text += f" eta {eta_text(left)}"
        else:
            text = f"{self.label} {done}{self.unit} {elapsed:5.1f}s"
        if message:
            text += f" {_shortened(message)}"
        return text

    def seconds_left(self, done: int, total: int, now: float | None = None) -> float | None:
        """The time the rest takes at this run's rate; None before this run finished a unit of work (no
        rate yet) or when the producer gives its own estimate."""
        if not self.eta or self._run_start is None:
            return None
        started, done_before = self._run_start
        worked = done - done_before
        if worked <= 0:
            return None
        now = time.monotonic() if now is None else now
        return (now - started) / worked * max(total - done, 0)

    def _draw(self, text: str, final: bool) -> None:
        self.stream.write("\r" + text.ljust(self._width))
        self._width = len(text)
        ProgressBar.line_open = not final
        if final:
            self.stream.write("\n")
            self._width = 0
        self.stream.flush()

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
            ProgressBar.line_open = False
