"""One writer per run directory: an exclusive flock on `<run>/trainer.lock`.

Whoever writes a run directory holds it: the train rule while it plans, and the training job for its whole life
(taken by mileage.launch.lifeline around the job's command, for every engine). A second writer (a second
Snakemake elsewhere, a stale job) stops with an error naming the holder's pid instead of writing the same
checkpoints. The kernel drops the lock when its holder dies, however it dies: a stale lock file means nothing.

Standard library only: the lifeline runs in the job's own interpreter (e.g. miles' Python), which has none of
mileage's dependencies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator

LOCK_NAME = "trainer.lock"


class RunDirLocked(RuntimeError):
    """Another process writes this run directory."""


@contextlib.contextmanager
def run_dir_lock(run_dir: str | Path, holder: str) -> Iterator[None]:
    """Hold the run directory's lock (non-blocking); RunDirLocked names the pid that holds it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "a process that wrote no pid"
            raise RunDirLocked(
                f"the run directory {run_dir} is in use: {other} holds {run_dir / LOCK_NAME}. Two trainings must "
                "not write one run; wait for it to end (or stop it) and run again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({holder}) since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock
