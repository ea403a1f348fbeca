"""A real, small, full-able filesystem for tests of full disks: a tmpfs of a given size (root on Linux).

    with small_disk(folder, 256 * 1024) as disk:   # SmallDiskUnavailable where it cannot be made
        fill(disk, leave=8 * 1024)                   # leaves about 8 KiB free
        ...
        disk.resize(4 << 20)                         # "the user freed some space"
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class SmallDiskUnavailable(RuntimeError):
    """This machine cannot mount a small filesystem here (not Linux, not root, or no permission)."""


@dataclass
class SmallDisk:
    path: Path

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def resize(self, size: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True,
                       capture_output=True)


@contextmanager
def small_disk(folder: str | Path, size: int) -> Iterator[SmallDisk]:
    folder = Path(folder)
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        raise SmallDiskUnavailable("mounting a tmpfs needs root on Linux")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SmallDiskUnavailable(f"mount failed: {done.stderr.strip()}")
    try:
        yield SmallDisk(folder)
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(disk: SmallDisk, leave: int = 0, name: str = "filler") -> Path:
    """Write a file that takes all the free space but about `leave` bytes."""
    path = disk.path / name
    block = b"\0" * 4096
    with open(path, "ab") as f:
        try:
            while disk.free() > leave + len(block):
                f.write(block)
                f.flush()
        except OSError:
            pass
    return path
