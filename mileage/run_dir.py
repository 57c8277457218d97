"""The persistent run directory of an experiment, and what a (re)started training does with it.

- Its identity (mileage.keys: what the training reads minus what may change under a run, plus the input files)
  changed: start afresh, the old run kept aside as `<run>.superseded-<time>` (never deleted).
- Same identity, and a checkpoint at exactly `num_rollout`: the run is complete; nothing trains, the final model
  is that checkpoint (also when the run went further before `num_rollout` was lowered), provided the run holds
  every in-training evaluation a run of `num_rollout` makes.
- Same identity, trained past `num_rollout` without a checkpoint there (or missing an evaluation a shorter run
  makes): start afresh, the old run kept aside, saying why.
- Otherwise resume from the newest checkpoint (or start, if there is none).

Before the checkpoints are read, the engine sets aside unusable newest ones (Engine.set_aside_unusable: cut short,
truncated or unreadable weights), saying so: the plan and the job go on from the newest verified checkpoint.

One writer at a time (mileage.run_lock): the train rule plans under the run directory's lock, and the training
job holds it for its whole life.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from mileage.atomic import write_json
from mileage.config import fingerprint
from mileage.digest import file_sha256
from mileage.engines.contract import Checkpoint, Engine, evaluated_rollouts
from mileage.keys import identity_of, upgrade_added_keys
from mileage.layout import cache_relative
from mileage.metrics.events import MetricEvent, rollout_id_of
from mileage.run_lock import LOCK_NAME, RunDirLocked, run_dir_lock  # noqa: F401 (RunDirLocked: for callers)


def _has_content(run_dir: Path) -> bool:
    return run_dir.exists() and any(p.name != LOCK_NAME for p in run_dir.iterdir())


def training_identity(train: dict, inputs: dict) -> dict:
    """What a checkpoint depends on: the training params minus resume-safe keys, plus the input files."""
    identity = identity_of(train)
    # Cache inputs by their place in the cache (content-keyed), not under results_dir: a moved results_dir resumes.
    identity["inputs"] = {k: cache_relative(str(v)) for k, v in sorted(inputs.items())}
    # The prompts by content: a `source: file` dataset keeps its cache path when the user edits the file.
    train_data = inputs.get("train_data")
    if train_data is not None and Path(train_data).is_file():
        identity["train_data_sha256"] = file_sha256(train_data)  # tens of MB at most: cheap next to a training run
    return identity


def fewer_in_training_sets(old: dict, new: dict) -> list[str] | None:
    """The evaluation sets a run evaluated inside training beyond those `new` asks for, when that is the only
    difference (an evaluation never changes the weights): such a run is the same training. Runs made before
    `eval.sets` existed evaluated every set of a `data.eval` list. None otherwise."""
    def split(identity: dict) -> tuple[dict, list, set]:
        rest = copy.deepcopy(identity)
        extra = (rest.get("data") or {}).pop("extra_eval", [])
        inputs = rest.get("inputs") or {}
        paths = {inputs.pop(key) for key in [k for k in inputs if k.startswith("eval_data_")]}
        return rest, extra, paths

    old_rest, old_sets, old_paths = split(old)
    new_rest, new_sets, new_paths = split(new)
    if old_rest != new_rest or any(s not in old_sets for s in new_sets) or not new_paths <= old_paths:
        return None
    return [s["name"] for s in old_sets if s not in new_sets] or None


@dataclass(frozen=True)
class RunPlan:
    """What the train rule does: `fresh` (start), `resume` (continue the newest checkpoint) or `done` (train
    nothing: `checkpoint` is the final one)."""

    state: str
    checkpoint: Checkpoint | None = None


def _set_aside(run_dir: Path, why: str, log: Callable[[str], None]) -> None:
    aside = run_dir.with_name(f"{run_dir.name}.superseded-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while aside.exists():  # two restarts within a second
        aside = run_dir.with_name(f"{run_dir.name}.superseded-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
        n += 1
    run_dir.rename(aside)
    log(f"mileage: {why}: starting afresh; the previous run and its checkpoints are kept in {aside}")


def _start(run_dir: Path, digest: str, identity: dict) -> RunPlan:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "fingerprint.json", {"fingerprint": digest, "identity": identity})
    return RunPlan("fresh")


def _evaluated_rollouts(run_dir: Path) -> set[int]:
    """Rollouts with in-training eval records (`eval_samples/<dataset>/rollout_<N>.jsonl`, every dataset)."""
    by_dataset = evaluated_rollouts(run_dir)
    return set.intersection(*by_dataset.values()) if by_dataset else set()


def plan_run(run_dir: str | Path, identity: dict, engine: Engine, train: Mapping, log=print) -> RunPlan:
    """Decide fresh / resume / done for the training `train` (its params) in `run_dir` (see the module doc), holding
    the run's lock: a run another trainer writes is neither set aside nor planned on."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return _start(run_dir, fingerprint(identity), identity)
    with run_dir_lock(run_dir, "the train rule, planning"):
        return _plan_run(run_dir, identity, engine, train, log)


def _plan_run(run_dir: Path, identity: dict, engine: Engine, train: Mapping, log) -> RunPlan:
    digest = fingerprint(identity)
    if not _has_content(run_dir):
        return _start(run_dir, digest, identity)
    stamp = run_dir / "fingerprint.json"
    previous = json.loads(stamp.read_text()) if stamp.is_file() else {}
    added = upgrade_added_keys(previous.get("identity", {}), identity) if previous else None
    dropped = fewer_in_training_sets(previous.get("identity", {}), identity) if previous else None
    if previous.get("fingerprint") != digest and added:
        log(f"mileage: the run in {run_dir} was made before mileage knew {', '.join(added)}; at their defaults they "
            f"are the training it made: kept as the same run")
        write_json(stamp, {"fingerprint": digest, "identity": identity})
    elif previous.get("fingerprint") != digest and dropped:
        log(f"mileage: the run in {run_dir} also evaluated {', '.join(dropped)} inside training, which eval.sets no "
            f"longer asks for; its training and its other evaluations are the same: kept as the same run")
        write_json(stamp, {"fingerprint": digest, "identity": identity})
    elif previous.get("fingerprint") != digest:
        old = previous.get("identity", {})
        changed = sorted(k for k in set(identity) | set(old) if identity.get(k) != old.get(k))
        _set_aside(run_dir, f"the training configuration changed ({', '.join(changed) or 'unknown'})", log)
        return _start(run_dir, digest, identity)
    num_rollout = train["rollout"]["num_rollout"]
    # A newest checkpoint cut short or corrupted is set aside first: the plan (and the job) use the one before.
    engine.set_aside_unusable(train, run_dir, log)
    checkpoints = engine.checkpoints(train, run_dir)
    at_target = [c for c in checkpoints if c.rollouts == num_rollout]
    trained = checkpoints[-1].rollouts if checkpoints else 0
    if at_target:
        missing = sorted(engine.in_training_evals(train, num_rollout) - _evaluated_rollouts(run_dir))
        if not missing:
            more = f" (it trained {trained}; the rest is kept)" if trained > num_rollout else ""
            log(f"mileage: the run in {run_dir} is complete at rollout {num_rollout}{more}: nothing to train; "
                f"the final model is {at_target[0].path}")
            return RunPlan("done", at_target[0])
        _set_aside(run_dir, f"the run has a checkpoint at rollout {num_rollout} but not the in-training "
                            f"evaluations a run of {num_rollout} rollouts makes (rollouts {missing})", log)
        return _start(run_dir, digest, identity)
    if trained > num_rollout:
        _set_aside(run_dir, f"num_rollout is {num_rollout}, but the run trained {trained} rollouts and has no "
                            f"checkpoint at rollout {num_rollout}", log)
        return _start(run_dir, digest, identity)
    if checkpoints:
        log(f"mileage: resuming the run in {run_dir} from rollout {trained} (same training configuration {digest})")
        return RunPlan("resume", checkpoints[-1])
    log(f"mileage: restarting the run in {run_dir}: no complete checkpoint yet (same configuration {digest})")
    return RunPlan("resume")


def checkpoint_at(engine: Engine, train: Mapping, run_dir: Path, num_rollout: int) -> Checkpoint:
    """The checkpoint at exactly `num_rollout` after the job ended: the final model."""
    for checkpoint in engine.checkpoints(train, run_dir):
        if checkpoint.rollouts == num_rollout:
            return checkpoint
    raise RuntimeError(f"the training job ended without a checkpoint at rollout {num_rollout} in {run_dir}")


def events_within(events: list[MetricEvent], num_rollout: int, steps_per_rollout: int) -> list[MetricEvent]:
    """The events of the first `num_rollout` rollouts (a run that went further holds more)."""
    return [e for e in events if rollout_id_of(e, steps_per_rollout) < num_rollout]
