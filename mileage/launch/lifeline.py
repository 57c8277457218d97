"""`python -m mileage.launch.lifeline -- CMD...`: run CMD (a Ray job's entrypoint) and make it die with its starters.

Ray runs a job's entrypoint as `/bin/sh -c CMD` in a new session, and only the supervisor actor's death is watched
(by a `kill -s 0` loop of Ray's). Killing the shell, or the `ray start` process of the head, or Snakemake, would
leave the trainer running with nobody to report to, racing the next attempt on the same run directory. So
`run_job` starts every entrypoint under this lifeline:

- It notes every ancestor alive when it starts (the shell, Ray's supervisor, the raylet, `ray start`, the train
  rule's script, Snakemake, ...: pid plus start time, so a reused pid is not mistaken for the same process), and
  polls them. When one is gone, it says which, and kills CMD and all CMD's descendants (SIGTERM, SIGKILL after
  a grace period).
- CMD gets PR_SET_PDEATHSIG = SIGKILL: if the lifeline itself is SIGKILLed, the kernel kills CMD.
- With `--lock RUN_DIR` it holds the run directory's lock (mileage.run_lock) while CMD runs, whatever the engine:
  a second training of the same run directory stops at once, naming this one's pid, before CMD starts.
- CMD stays in the job's process group, so Ray's own stop (SIGTERM to the group, SIGKILL after 3 s) reaches it as
  before; the lifeline then exits with CMD's status.

Only /proc is read (no psutil: the interpreter that runs a job, e.g. miles' container Python, may not have it).
Elsewhere than Linux the lifeline just runs CMD.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 0.5
GRACE_S = 5.0
PR_SET_PDEATHSIG = 1


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, start time in clock ticks, name) of a live process, or None (gone or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()  # fields from the 3rd (state) on
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[19]), name


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
    except OSError:
        return "?"


def ancestors(pid: int | None = None) -> list[tuple[int, int, str]]:
    """(pid, start time, what) of every live ancestor of `pid` (default: this process) below init."""
    found = []
    stat = _stat(pid or os.getpid())
    while stat is not None and stat[0] > 1:
        parent = stat[0]
        stat = _stat(parent)
        if stat is not None:
            found.append((parent, stat[1], _cmdline(parent) or stat[2]))
    return found


def first_gone(watched: list[tuple[int, int, str]]) -> tuple[int, int, str] | None:
    for pid, start, what in watched:
        stat = _stat(pid)
        if stat is None or stat[1] != start:
            return pid, start, what
    return None


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (from /proc's parent links), children first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(pid: int, grace_s: float = GRACE_S) -> None:
    """SIGTERM `pid` and its descendants; SIGKILL whatever is left after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        targets = [pid, *descendants(pid)]
        for target in targets:
            try:
                os.kill(target, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + (grace_s if sig == signal.SIGTERM else 0)
        while time.monotonic() < deadline and any(_stat(t) is not None for t in targets):
            time.sleep(0.1)


def _pdeathsig_hook(sig: int):
    """preexec_fn: the child gets `sig` when we die (prctl looked up before the fork)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def _note(message: str) -> None:
    print(f"[mileage lifeline] {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], lock: str | None = None) -> int:
    if lock is None:
        return _supervise(cmd)
    from mileage.run_lock import RunDirLocked, run_dir_lock

    try:
        with run_dir_lock(lock, f"the training job {os.path.basename(cmd[0])}, under its lifeline"):
            return _supervise(cmd)
    except RunDirLocked as err:
        _note(f"not starting the job: {err}")
        return 1


def _supervise(cmd: list[str]) -> int:
    if not sys.platform.startswith("linux"):
        return subprocess.call(cmd)
    watched = ancestors()
    if os.getppid() == 1:
        _note("the process that started this job is already gone: not starting it")
        return 1
    hook = _pdeathsig_hook(signal.SIGKILL)
    # Ray's stop signals the whole group, CMD included: we wait for CMD to act on it instead of dying first.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    child = subprocess.Popen(cmd, preexec_fn=hook)
    while True:
        try:
            code = child.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            gone = first_gone(watched)
            if gone is None:
                continue
            _note(f"{gone[2]!r} (pid {gone[0]}), which started this job, is gone: stopping the job "
                  f"(pid {child.pid}) and everything it started")
            kill_tree(child.pid)
            child.wait()
            return 1
        return 128 - code if code < 0 else code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    lock = None
    if argv[:1] == ["--lock"] and len(argv) > 1:
        lock, argv = argv[1], argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m mileage.launch.lifeline [--lock RUN_DIR] -- CMD [ARGS...]", file=sys.stderr)
        return 2
    return run(argv, lock)


if __name__ == "__main__":
    sys.exit(main())
