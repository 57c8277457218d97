"""Every attempt at training a run: when it started, how long it ran, on how many GPUs, how it ended.

A run directory outlives its attempts (a crash, a Ctrl-C, a pre-emption, then the same command again), so the
train stage appends a `start` and an `end` line per attempt to `<run>/attempts.jsonl`, where the training job
runs. Provenance sums them (wall time and GPU-hours of every attempt, not only the last), `mileage status` reads
the running one. An attempt killed with SIGKILL writes no `end`: its end is taken from the run's last write
(the job log, the events), and it reads `outcome: killed`. A run set aside (a changed configuration) takes its
attempts with it: they are that run's.

Standard library only, like mileage.run_lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
import uuid
from pathlib import Path
from typing import Iterator

from mileage.jsonl import append_line

ATTEMPTS_NAME = "attempts.jsonl"
# What a training job writes as it goes: the newest of them dates the end of an attempt that wrote no `end`.
_WRITTEN_AS_IT_TRAINS = ("job.log", "events.jsonl")


def _append(path: Path, record: dict) -> None:
    append_line(path, json.dumps(record, sort_keys=True))


@contextlib.contextmanager
def attempt(run_dir: str | os.PathLike, gpus: int, rollouts_before: int) -> Iterator[None]:
    """Record one attempt at training in `run_dir` around the block: `gpus` it holds, `rollouts_before` it starts
    from. Its outcome is `succeeded`, `interrupted` (Ctrl-C, SIGTERM) or `failed`."""
    path = Path(run_dir) / ATTEMPTS_NAME
    _close_killed(Path(run_dir))
    ident = uuid.uuid4().hex[:12]
    _append(path, {"attempt": ident, "event": "start", "unix": time.time(), "gpus": int(gpus),
                   "rollouts_before": int(rollouts_before), "host": platform.node(), "pid": os.getpid()})
    outcome = "failed"
    try:
        yield
        outcome = "succeeded"
    except KeyboardInterrupt:
        outcome = "interrupted"
        raise
    finally:
        _append(path, {"attempt": ident, "event": "end", "unix": time.time(), "outcome": outcome})


def _records(path: Path) -> list[dict]:
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill: that attempt's other line still counts
        if isinstance(record, dict) and "attempt" in record and "unix" in record:
            records.append(record)
    return records


def _last_write(run_dir: Path, after: float) -> float:
    times = [after]
    for name in _WRITTEN_AS_IT_TRAINS:
        with contextlib.suppress(OSError):
            times.append((run_dir / name).stat().st_mtime)
    return max(times)


def _close_killed(run_dir: Path) -> None:
    """Before a new attempt writes anything: end the attempts that were killed without an `end`, at the run's
    last write (which the new attempt is about to move)."""
    path = run_dir / ATTEMPTS_NAME
    if not path.is_file():
        return
    records = _records(path)
    ended = {r["attempt"] for r in records if r.get("event") == "end"}
    for start in records:
        if start.get("event") == "start" and start["attempt"] not in ended:
            _append(path, {"attempt": start["attempt"], "event": "end", "unix": _last_write(run_dir, start["unix"]),
                           "outcome": "killed"})


def open_attempt(run_dir: str | os.PathLike) -> dict | None:
    """The start record of the newest attempt that has not ended, if its process still lives on this machine (the
    train stage: before its job starts and after it ended, when no process holds the run's lock)."""
    path = Path(run_dir) / ATTEMPTS_NAME
    if not path.is_file():
        return None
    records = _records(path)
    ended = {r["attempt"] for r in records if r.get("event") == "end"}
    starts = [r for r in records if r.get("event") == "start" and r["attempt"] not in ended]
    if not starts or starts[-1].get("host") != platform.node() or not isinstance(starts[-1].get("pid"), int):
        return None
    try:
        os.kill(starts[-1]["pid"], 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return starts[-1]


def read_attempts(run_dir: str | os.PathLike, running: bool = False, now: float | None = None) -> list[dict]:
    """The run's attempts in order: {attempt (1-based), started (UTC), wall_seconds, gpus, gpu_hours, outcome,
    host, rollouts_before}. With `running` (its training holds the run directory now), the newest attempt
    without an end is the live one (`outcome: running`, timed to `now`)."""
    run_dir = Path(run_dir)
    path = run_dir / ATTEMPTS_NAME
    if not path.is_file():
        return []
    starts: dict[str, dict] = {}
    ends: dict[str, dict] = {}
    for record in _records(path):
        (starts if record.get("event") == "start" else ends)[record["attempt"]] = record
    ordered = sorted(starts.values(), key=lambda r: r["unix"])
    now = time.time() if now is None else now
    attempts = []
    for i, start in enumerate(ordered):
        end = ends.get(start["attempt"])
        if end is not None:
            finished, outcome = end["unix"], end.get("outcome", "failed")
        elif running and i == len(ordered) - 1:
            finished, outcome = now, "running"
        else:
            finished, outcome = _last_write(run_dir, start["unix"]), "killed"
        wall = max(finished - start["unix"], 0.0)
        gpus = int(start.get("gpus", 0))
        attempts.append({
            "attempt": i + 1,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start["unix"])),
            "wall_seconds": round(wall, 3),
            "gpus": gpus,
            "gpu_hours": wall * gpus / 3600.0,
            "outcome": outcome,
            "host": start.get("host"),
            "rollouts_before": start.get("rollouts_before"),
        })
    return attempts
