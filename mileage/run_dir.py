"""The persistent run directory of an experiment: resume when the training configuration is unchanged,
start afresh (keeping the old run aside, never deleting it) when it changed."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from mileage.atomic import write_json
from mileage.config import fingerprint

# Edits that continue a run rather than invalidate it: more rollouts (with a constant learning rate), another
# save or eval cadence, where the job runs, trackers.
RESUMABLE_KEYS = {
    "rollout": ("num_rollout",),
    "train": ("save_interval",),
    "eval": None,
    "ray": None,
    "tracking": None,
    "resources": None,
}


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (a dataset is tens of MB at most: cheap next to a training run)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def training_identity(train: dict, inputs: dict) -> dict:
    """What a checkpoint depends on: the training params minus resumable keys, plus the input files."""
    identity = {}
    for key, value in train.items():
        if key in RESUMABLE_KEYS:
            dropped = RESUMABLE_KEYS[key]
            if dropped is None:
                continue
            if key == "rollout" and train.get("train", {}).get("lr_decay_style", "constant") != "constant":
                # A decaying learning rate spans num_rollout: more rollouts change the schedule of the steps
                # already taken, so the run is no longer the one its checkpoints came from.
                dropped = tuple(k for k in dropped if k != "num_rollout")
            value = {k: v for k, v in value.items() if k not in dropped}
        identity[key] = value
    identity["inputs"] = {k: str(v) for k, v in sorted(inputs.items())}
    # The prompts by content: a `source: file` dataset keeps its cache path when the user edits the file.
    train_data = inputs.get("train_data")
    if train_data is not None and Path(train_data).is_file():
        identity["train_data_sha256"] = file_digest(train_data)
    return identity


def prepare_run_dir(run_dir: str | Path, identity: dict, log=print) -> str:
    """Return "resume" or "fresh"; a run made with another configuration is moved to `<run>.superseded-<time>`."""
    run_dir = Path(run_dir)
    stamp_file = run_dir / "fingerprint.json"
    digest = fingerprint(identity)
    if run_dir.exists() and any(run_dir.iterdir()):
        previous = json.loads(stamp_file.read_text()) if stamp_file.is_file() else {}
        if previous.get("fingerprint") == digest:
            log(f"mileage: resuming the run in {run_dir} (same training configuration {digest})")
            return "resume"
        aside = run_dir.with_name(f"{run_dir.name}.superseded-{time.strftime('%Y%m%d-%H%M%S')}")
        run_dir.rename(aside)
        changed = sorted(
            k for k in set(identity) | set(previous.get("identity", {}))
            if identity.get(k) != previous.get("identity", {}).get(k)
        )
        log(
            f"mileage: the training configuration changed ({', '.join(changed) or 'unknown'}): starting afresh; "
            f"the previous run and its checkpoints are kept in {aside}"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(stamp_file, {"fingerprint": digest, "identity": identity})
    return "fresh"
