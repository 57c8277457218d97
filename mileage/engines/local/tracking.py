"""Trackers of the local engine, as miles has them: TensorBoard event files of every canonical metric (miles' names,
`rollout/raw_reward`, `train/loss`, `eval/<dataset>`) in `<run_dir>/tensorboard/`, and Weights & Biases when
`tracking.wandb` is on.

Why not TRL's `report_to="tensorboard"` (transformers' TensorBoardCallback works with the pinned versions): it logs
the Trainer's own names (`train/loss`, `train/reward`, ...) at optimizer steps; these are the canonical events the
pipeline keeps, with miles' names and step keys, so a local run's TensorBoard reads like a miles run's.

W&B runs offline (files in `<run_dir>/wandb/`, `wandb sync` uploads them later) unless WANDB_API_KEY is in the
job's environment: the key only ever comes from there (mileage.secrets passes it to the Ray head only with
tracking.wandb), never from the spec, argv or logs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from mileage.metrics.events import MetricEvent

# The x axis of each kind, as miles logs it (rollout/step, train/step, eval/step).
STEP_NAMES = {"rollout": "rollout/step", "train": "train/step", "perf": "rollout/step", "eval": "eval/step"}


class Trackers:
    def __init__(self, run_dir: Path, tracking: Mapping[str, Any], experiment: str, config: Mapping[str, Any]):
        from torch.utils.tensorboard import SummaryWriter

        self.tensorboard = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.wandb = None
        if tracking.get("wandb"):
            import wandb

            mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
            # A resumed run continues the same W&B run (its id is the run directory's).
            self.wandb = wandb.init(
                project=tracking.get("wandb_project") or "mileage", group=tracking.get("wandb_group"),
                name=experiment, id=_run_id(run_dir), resume="allow", dir=str(run_dir), mode=mode,
                config=dict(config),
            )
            for kind, step in STEP_NAMES.items():
                self.wandb.define_metric(step, hidden=True)
                self.wandb.define_metric(f"{kind}/*", step_metric=step)

    def log(self, event: MetricEvent) -> None:
        for name, value in event.metrics.items():
            self.tensorboard.add_scalar(name, float(value), event.step)
        self.tensorboard.flush()
        if self.wandb is not None:
            self.wandb.log({**{k: float(v) for k, v in event.metrics.items()}, STEP_NAMES[event.kind]: event.step})

    def close(self) -> None:
        self.tensorboard.close()
        if self.wandb is not None:
            self.wandb.finish()


def _run_id(run_dir: Path) -> str:
    import hashlib

    return hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]
