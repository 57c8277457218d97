"""`mileage status`: where every training run of the config stands, read from the results tree while it runs.

One row per run (an experiment, each seed `<exp>/seeds/<n>`, each sweep point, as the results tree names them):
- state: `not started`; `running` (a process holds the run directory's lock, mileage.run_lock); `done` (the
  training's done.json is there and the run's identity, mileage.run_dir, is the config's); `stale` (what is on
  disk was trained with another training configuration: the next run starts afresh); `failed` (started, not
  running, not done: the same command resumes it);
- rollout i of N, rollouts per hour and the ETA (over the running attempt, mileage.attempts; else from the
  engine's step times), the latest reward and in-training evaluation score (the engine's own event reader, live),
  the newest checkpoint and its age, the GPU-hours of every attempt so far.

Read only: nothing here writes, and nothing takes the run's lock (the kernel's lock table says who holds it).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mileage.attempts import open_attempt, read_attempts
from mileage.run_lock import LOCK_NAME

STATES = ("not started", "running", "done", "failed", "stale")
RATE_WINDOW = 5  # rollouts whose step times give the rate when no attempt is running


@dataclass
class RunStatus:
    experiment: str
    state: str
    rollout: int = 0  # rollouts trained (the i of "rollout i of N")
    num_rollout: int = 0
    rollouts_per_hour: float | None = None
    eta_seconds: float | None = None
    reward: float | None = None
    eval_name: str | None = None
    eval_score: float | None = None
    eval_rollout: int | None = None
    checkpoint: str | None = None
    checkpoint_rollout: int | None = None
    checkpoint_age_seconds: float | None = None
    gpu_hours: float = 0.0
    attempts: int = 0
    holder: str | None = None  # who holds the run directory's lock
    sweep_point: dict | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- is a training alive? ------------------------------------------------------------------------------------

def lock_holder(run_dir: str | os.PathLike) -> str | None:
    """Who holds the run directory's lock now (its lock file's own line, e.g. `pid 123 (train job) since ...`),
    or None. Read from the kernel's lock table (/proc/locks), never by taking the lock: a status that took it,
    however briefly, could make a starting training fail. Where there is no /proc/locks, the recorded pid is
    asked whether it still lives."""
    lock = Path(run_dir) / LOCK_NAME
    try:
        inode = lock.stat().st_ino
        said = lock.read_text(encoding="utf-8", errors="replace").strip() or "a process that wrote no pid"
    except OSError:
        return None
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        return said if _recorded_pid_alive(said) else None
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 2284 fd:01:1835011 0 EOF"; a waiter's line carries "->" and is not a holder.
        if len(fields) >= 6 and fields[1] == "FLOCK" and "->" not in fields[0]:
            if fields[5].rsplit(":", 1)[-1] == str(inode):
                return said
    return None


def _recorded_pid_alive(said: str) -> bool:
    parts = said.split()
    if len(parts) < 2 or parts[0] != "pid" or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---- one run -------------------------------------------------------------------------------------------------

class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def read_quietly(read, *args):
    """Call an engine reader, keeping what it prints or logs (warnings about the files it read) for the notes,
    once each: the terminal shows them under the table, and the `--json` output stays JSON."""
    out, caught = io.StringIO(), _Collect()
    logger = logging.getLogger("mileage")
    logger.addHandler(caught)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            value = read(*args)
    finally:
        logger.removeHandler(caught)
    said = [line.removeprefix("mileage: metrics: ") for line in out.getvalue().splitlines() if line.strip()]
    return value, list(dict.fromkeys(said + caught.messages))


def headline_eval(exp: Mapping[str, Any]) -> str | None:
    """The evaluation set whose score the status shows: `data.headline_eval`, else the first of `data.eval`."""
    data = exp.get("data") or {}
    if data.get("headline_eval"):
        return str(data["headline_eval"])
    sets = data.get("eval")
    first = sets[0] if isinstance(sets, list) and sets else sets
    return first.get("name") if isinstance(first, Mapping) else None


def _latest(events, kind: str, metric: str) -> tuple[int, float] | None:
    found = [(e.step, e.metrics[metric]) for e in events if e.kind == kind and metric in e.metrics]
    return max(found) if found else None


def _rate_from_step_times(events, trained: int) -> float | None:
    times = sorted((e.step, e.metrics["perf/step_time"]) for e in events
                   if e.kind == "perf" and "perf/step_time" in e.metrics and e.step < trained)
    recent = [t for _, t in times[-RATE_WINDOW:] if t > 0]
    return 3600.0 * len(recent) / sum(recent) if recent else None


def same_run(recorded: Mapping[str, Any], identity: dict) -> bool:
    """Whether the run that recorded `recorded` (its fingerprint.json) is the training `identity` describes, as the
    train rule's plan judges it (mileage.run_dir): the same fingerprint, or an identity that differs only by keys a
    newer mileage added at their defaults or by in-training sets no longer asked for."""
    from mileage.config import fingerprint
    from mileage.keys import upgrade_added_keys
    from mileage.run_dir import fewer_in_training_sets

    if recorded.get("fingerprint") == fingerprint(identity):
        return True
    old = recorded.get("identity") or {}
    return bool(old and (upgrade_added_keys(old, identity) or fewer_in_training_sets(old, identity)))


def run_status(name: str, exp: Mapping[str, Any], params: Mapping[str, Any], inputs: Mapping[str, str],
               results: str | os.PathLike, now: float | None = None) -> RunStatus:
    """The status of run `name` (its resolved experiment, its train params and inputs as the train rule gets
    them) in the results tree `results`."""
    from mileage.engines import engine_of
    from mileage.run_dir import training_identity

    now = time.time() if now is None else now
    engine = engine_of(exp)
    root = Path(results) / name
    run_dir, done = root / "run", root / "train" / "done.json"
    status = RunStatus(experiment=name, state="not started", num_rollout=int(params["rollout"]["num_rollout"]),
                       sweep_point=exp.get("sweep_point"))
    status.holder = lock_holder(run_dir)
    if status.holder is None and (current := open_attempt(run_dir)) is not None:
        # The train stage between its job's end and done.json (exporting the final model), or before the job.
        status.holder = f"pid {current['pid']} (the train rule, outside its training job)"
    started = run_dir.is_dir() and any(p.name not in (LOCK_NAME, "job.json") for p in run_dir.iterdir())

    matches = True
    stamp = run_dir / "fingerprint.json"
    if stamp.is_file():
        try:
            matches = same_run(json.loads(stamp.read_text(encoding="utf-8")),
                               training_identity(dict(params), dict(inputs)))
        except (OSError, ValueError) as err:
            status.notes.append(f"cannot read {stamp}: {err}")
    if status.holder:
        status.state = "running"
    elif done.is_file():
        status.state = "done" if matches else "stale"
    elif started:
        status.state = "failed" if matches else "stale"
    if status.state == "stale":
        status.notes.append("trained with another training configuration: the next run starts afresh")
    if not started:
        return status

    try:
        events, printed = read_quietly(engine.collect_events, run_dir)
        status.notes += printed
    except FileNotFoundError:  # nothing logged yet
        events = []
    except (OSError, ValueError) as err:
        events = []
        status.notes.append(f"cannot read the run's metric events: {err}")
    steps = {e.step for e in events if e.kind == "rollout"}
    status.rollout = max(steps) + 1 if steps else 0
    reward = _latest(events, "rollout", "rollout/raw_reward")
    status.reward = reward[1] if reward else None
    status.eval_name = headline_eval(exp)
    score = _latest(events, "eval", f"eval/{status.eval_name}") if status.eval_name else None
    if score:
        status.eval_rollout, status.eval_score = score

    try:
        checkpoints, _ = read_quietly(engine.checkpoints, params, run_dir)
    except (OSError, ValueError) as err:
        checkpoints = []
        status.notes.append(f"cannot list the run's checkpoints: {err}")
    if checkpoints:
        newest = checkpoints[-1]
        status.checkpoint, status.checkpoint_rollout = str(newest.path), newest.rollouts
        with contextlib.suppress(OSError):
            status.checkpoint_age_seconds = max(now - Path(newest.path).stat().st_mtime, 0.0)

    attempts = read_attempts(run_dir, running=status.holder is not None, now=now)
    status.attempts = len(attempts)
    status.gpu_hours = sum(a["gpu_hours"] for a in attempts)
    if status.state == "running":
        current = attempts[-1] if attempts and attempts[-1]["outcome"] == "running" else None
        gained = status.rollout - (current["rollouts_before"] or 0) if current else 0
        if current and gained > 0 and current["wall_seconds"] > 0:
            status.rollouts_per_hour = 3600.0 * gained / current["wall_seconds"]
        else:
            status.rollouts_per_hour = _rate_from_step_times(events, status.rollout)
        left = max(status.num_rollout - status.rollout, 0)
        if status.rollouts_per_hour:
            status.eta_seconds = 3600.0 * left / status.rollouts_per_hour
    return status


# ---- every run of a config -----------------------------------------------------------------------------------

def config_runs(config_path: str | os.PathLike, results_dir: str | None = None):
    """(results directory, [(run name, experiment, train params, train inputs)]) for every training run of the
    config: each experiment (the sweep points the resolver returns among them), expanded into its seeds."""
    from mileage.config import ExperimentResolver, load_yaml
    from mileage.layout import Layout, expand_replicates
    from mileage.stages.params import experiment_paths, rule_params

    config_path = Path(config_path)
    raw = load_yaml(config_path)
    base_dir = config_path.resolve().parent.parent
    resolver = ExperimentResolver(raw, base_dir=base_dir)
    config = resolver.config
    # The config's results_dir is relative to the workflow's directory (where Snakemake runs), as the rules see it.
    results = results_dir or str(base_dir / config["results_dir"])
    runs, _ = expand_replicates(resolver.resolve_all())
    layout = Layout(results=str(results), base_dir=base_dir)
    found = []
    for name in sorted(runs):
        exp = runs[name]
        params = rule_params("train", name, exp, config, layout)
        inputs = experiment_paths(layout, name, exp, config)["train_inputs"]
        found.append((name, exp, params, inputs))
    return str(results), found


def statuses(config_path: str | os.PathLike, results_dir: str | None = None,
             now: float | None = None) -> list[RunStatus]:
    results, runs = config_runs(config_path, results_dir)
    return [run_status(name, exp, params, inputs, results, now) for name, exp, params, inputs in runs]


# ---- what the terminal shows ---------------------------------------------------------------------------------

def duration(seconds: float | None) -> str:
    """`45s`, `12m`, `3h05m`, `2d04h`: short enough for a table."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[RunStatus]) -> str:
    """One line per run, columns sized to their content."""
    header = ("EXPERIMENT", "STATE", "ROLLOUT", "PER HOUR", "ETA", "REWARD", "EVAL", "CHECKPOINT", "GPU-H")
    lines = [header]
    for s in rows:
        evaluation = "-" if s.eval_score is None else f"{s.eval_score:.3f}@{s.eval_rollout + 1}"
        checkpoint = "-" if s.checkpoint_rollout is None else (
            f"{s.checkpoint_rollout} ({duration(s.checkpoint_age_seconds)} ago)")
        lines.append((s.experiment, s.state, f"{s.rollout}/{s.num_rollout}", _number(s.rollouts_per_hour, 1),
                      duration(s.eta_seconds), _number(s.reward), evaluation, checkpoint, f"{s.gpu_hours:.2f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    for s in rows:
        text += [f"  {s.experiment}: {note}" for note in s.notes]
    return "\n".join(text) + "\n"
