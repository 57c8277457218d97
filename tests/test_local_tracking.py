"""The local engine's trackers: TensorBoard event files of the canonical metrics under the run directory (read back
with the same reader as miles' TensorBoard dirs), and W&B offline with no key."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mileage.engines.local.engine import job_spec
from mileage.engines.local.tracking import Trackers
from mileage.metrics.events import MetricEvent
from mileage.metrics.tensorboard_events import read_tensorboard_dir


def test_tensorboard_event_files_hold_the_canonical_metrics(tmp_path):
    trackers = Trackers(tmp_path, {"wandb": False}, "demo", {})
    trackers.log(MetricEvent("rollout", 0, {"rollout/raw_reward": 0.25}))
    trackers.log(MetricEvent("rollout", 1, {"rollout/raw_reward": 0.5}))
    trackers.log(MetricEvent("eval", 1, {"eval/arith": 0.75}))
    trackers.close()
    events, _ = read_tensorboard_dir(tmp_path / "tensorboard")
    got = {(e.kind, e.step, name): value for e in events for name, value in e.metrics.items()}
    assert got[("rollout", 0, "rollout/raw_reward")] == pytest.approx(0.25)
    assert got[("rollout", 1, "rollout/raw_reward")] == pytest.approx(0.5)
    assert got[("eval", 1, "eval/arith")] == pytest.approx(0.75)
    assert not (tmp_path / "wandb").exists()  # W&B only when tracking.wandb is on


def test_wandb_runs_offline_without_a_key_and_the_spec_never_holds_one(tmp_path):
    # In a fresh process, wandb imported first as the trainer does (wandb_import.settle_wandb): imported after the
    # torch and transformers that earlier tests loaded here, it takes 40 s.
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"}
    _in_fresh_python(
        "import sys\n"
        "from pathlib import Path\n"
        "from mileage.engines.local.wandb_import import settle_wandb\n"
        "settle_wandb(True)\n"
        "from mileage.engines.local.tracking import Trackers\n"
        "from mileage.metrics.events import MetricEvent\n"
        "trackers = Trackers(Path(sys.argv[1]), {'wandb': True, 'wandb_project': 'p', 'wandb_group': 'g'}, 'demo', "
        "{'seed': 1})\n"
        "trackers.log(MetricEvent('train', 0, {'train/loss': 0.1}))\n"
        "trackers.close()\n", str(tmp_path), env={**env, "WANDB_SILENT": "true"})
    offline = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))
    train = {"name": "demo", "data": {"eval": {"name": "arith"}, "apply_chat_template": False}, "eval": {"interval": None},
             "seed": 1, "rollout_seed": 2, "rollout": {}, "train": {}, "resources": {},
             "tracking": {"wandb": True, "wandb_project": "p", "wandb_group": None}}
    os.environ["WANDB_API_KEY"] = "sentinel-wandb-key"
    try:
        spec = job_spec(train, {"model": str(tmp_path), "train_data": "t.jsonl", "eval_data": "e.jsonl"}, tmp_path)
    finally:
        del os.environ["WANDB_API_KEY"]
    assert spec["tracking"] == {"wandb": True, "wandb_project": "p", "wandb_group": None}
    assert "sentinel-wandb-key" not in repr(spec)


def _in_fresh_python(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_with_wandb_off_the_trainer_hides_it_so_transformers_never_imports_it():
    """TRL imports wandb whenever transformers says it is available, and that import after torch cost 17 s of every
    training start (mileage.engines.local.wandb_import). transformers' `is_wandb_available` asks
    importlib.util.find_spec first: hidden, wandb is not found, and importing it fails."""
    out = _in_fresh_python(
        "import importlib.util, sys\n"
        "from mileage.engines.local.wandb_import import settle_wandb\n"
        "settle_wandb(False)\n"
        "try:\n"
        "    import wandb\n"
        "    imported = True\n"
        "except ImportError:\n"
        "    imported = False\n"
        "print(importlib.util.find_spec('wandb'), imported)")
    assert out == "None False"


def test_with_wandb_on_the_trainer_imports_it_before_torch():
    out = _in_fresh_python(
        "import sys\n"
        "from mileage.engines.local.wandb_import import settle_wandb\n"
        "settle_wandb(True)\n"
        "print(sys.modules['wandb'] is not None and hasattr(sys.modules['wandb'], 'run'), 'torch' in sys.modules)")
    assert out.split() == ["True", "False"]
