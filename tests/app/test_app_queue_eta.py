"""The Queue's time left is measured on the photos this run worked on (issue 19, item 6): outputs it finds
already written, and photos finished before it, never make "about 1 s left" with 17 photos to go."""

from __future__ import annotations

from app.batch_flow import RunClock


def test_time_left_comes_from_the_photos_this_run_worked_on():
    clock = RunClock(now=100.0)
    assert clock.time_left(17, now=160.0) is None  # nothing worked on yet: "estimating"
    for _ in range(14):  # outputs found already written: done in no time, not this run's work
        clock.item_finished("done", "output already there (an interrupted or earlier run; verified)")
    clock.item_finished("done", None)
    clock.item_finished("skipped", "no face to restore")
    assert clock.time_left(17, now=160.0) == 17 * 30.0  # 60 s for the 2 photos worked on
