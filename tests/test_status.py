"""`mileage status`: every run's state, progress, rate, ETA, latest scores, newest checkpoint and GPU-hours, read
from the results tree (never written) while the training runs."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mileage.atomic import write_json
from mileage.attempts import ATTEMPTS_NAME
from mileage.cli import main
from mileage.config import fingerprint
from mileage.engines.local.checkpoints import write_manifest
from mileage.metrics.events import MetricEvent, append_event
from mileage.run_dir import training_identity
from mileage.run_lock import run_dir_lock
from mileage.status import config_runs, duration, lock_holder, statuses, table

ROOT = Path(__file__).resolve().parents[1]


def write_config(tmp_path: Path, edit=None) -> Path:
    """The shipped config, results under tmp_path, after `edit`."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["results_dir"] = str(tmp_path / "results")
    if edit:
        edit(config)
    path = tmp_path / "config" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def fake_training(config: Path, name: str, rollouts: int, evals: dict[int, float] = {}, checkpoint_at=None,
                  started_s_ago: float = 100.0) -> Path:
    """A run directory as the local engine leaves it after `rollouts` rollouts: its identity, events, a checkpoint,
    the current attempt's record."""
    results, runs = config_runs(config)
    _, _, params, inputs = next(r for r in runs if r[0] == name)
    run = Path(results) / name / "run"
    run.mkdir(parents=True)
    identity = training_identity(params, inputs)
    write_json(run / "fingerprint.json", {"fingerprint": fingerprint(identity), "identity": identity})
    for r in range(rollouts):
        append_event(run / "events.jsonl", MetricEvent("rollout", r, {"rollout/raw_reward": r / 10}))
        append_event(run / "events.jsonl", MetricEvent("perf", r, {"perf/step_time": 3.0}))
        if r in evals:
            append_event(run / "events.jsonl", MetricEvent("eval", r, {"eval/arith": evals[r],
                                                                       "eval/arith/truncated": 0.0}))
    if checkpoint_at:
        saved = run / "checkpoints" / f"checkpoint-{checkpoint_at}"  # the demo: one optimizer step per rollout
        saved.mkdir(parents=True)
        (saved / "trainer_state.json").write_text("{}")
        write_manifest(saved)
    (run / ATTEMPTS_NAME).write_text(json.dumps({"attempt": "a1", "event": "start", "gpus": 0, "rollouts_before": 0,
                                                 "unix": time.time() - started_s_ago, "host": "h"}) + "\n")
    return run


def files_under(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_nothing_run_yet_is_not_started(tmp_path):
    [demo] = statuses(write_config(tmp_path))
    assert (demo.experiment, demo.state, demo.rollout, demo.num_rollout) == ("demo", "not started", 0, 30)
    assert not (tmp_path / "results").exists()  # status writes nothing


def test_a_training_that_has_logged_nothing_yet_is_running_at_rollout_0(tmp_path):
    config = write_config(tmp_path)
    run = fake_training(config, "demo", rollouts=0)
    assert not (run / "events.jsonl").exists()  # the engine writes it with its first metric
    with run_dir_lock(run, "the training job"):
        [demo] = statuses(config)
    assert (demo.state, demo.rollout, demo.notes) == ("running", 0, [])


def test_the_train_rule_outside_its_job_is_running_too(tmp_path):
    """Between the job's end and done.json (the final model exported) no process holds the lock, but the train
    rule's attempt is open and its process lives."""
    config = write_config(tmp_path)
    run = fake_training(config, "demo", rollouts=30)
    start = {"attempt": "a2", "event": "start", "unix": time.time(), "gpus": 0, "rollouts_before": 0,
             "host": platform.node(), "pid": os.getpid()}
    (run / ATTEMPTS_NAME).write_text(json.dumps(start) + "\n")
    [demo] = statuses(config)
    assert demo.state == "running" and "train rule" in demo.holder
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / ATTEMPTS_NAME).write_text(json.dumps({**start, "pid": int(dead.stdout)}) + "\n")
    assert statuses(config)[0].state == "failed"


def test_a_running_training_shows_progress_rate_eta_scores_and_checkpoint(tmp_path):
    config = write_config(tmp_path)
    run = fake_training(config, "demo", rollouts=10, evals={9: 0.625}, checkpoint_at=10)
    with run_dir_lock(run, "the training job"):  # what the job holds for its whole life
        before = files_under(tmp_path / "results")
        [demo] = statuses(config)
        assert lock_holder(run) is not None and str(os.getpid()) in lock_holder(run)
        after = files_under(tmp_path / "results")
    assert after == before  # reading took no lock and wrote nothing
    assert demo.state == "running" and demo.rollout == 10 and demo.num_rollout == 30
    assert demo.rollouts_per_hour == pytest.approx(360, rel=0.05)  # 10 rollouts in the attempt's 100 s
    assert demo.eta_seconds == pytest.approx(200, rel=0.05)  # 20 more at that rate
    assert demo.reward == pytest.approx(0.9)
    assert (demo.eval_name, demo.eval_score, demo.eval_rollout) == ("arith", 0.625, 9)
    assert demo.checkpoint_rollout == 10 and demo.checkpoint.endswith("checkpoint-10")
    assert 0 <= demo.checkpoint_age_seconds < 60
    assert demo.attempts == 1 and demo.gpu_hours == 0.0  # the demo trains on the CPU
    text = table([demo])
    assert "demo" in text and "running" in text and "10/30" in text and "0.625@10" in text


def test_not_running_and_not_done_is_failed_then_done_then_stale_after_a_training_edit(tmp_path):
    config = write_config(tmp_path)
    fake_training(config, "demo", rollouts=4, checkpoint_at=None)
    [demo] = statuses(config)
    assert demo.state == "failed" and demo.rollout == 4 and demo.rollouts_per_hour is None
    done = tmp_path / "results" / "demo" / "train" / "done.json"
    write_json(done, {"experiment": "demo"})
    assert statuses(config)[0].state == "done"
    # The same results under a config whose training differs: what is on disk is stale.
    edited = write_config(tmp_path, lambda c: c["experiments"]["demo"]["train"].update(lr=0.001))
    [stale] = statuses(edited)
    assert stale.state == "stale" and any("starts afresh" in note for note in stale.notes)
    # A run made by an older mileage that did not know a key (now at its default) is the same run, as the train
    # rule judges it: done, not stale.
    stamp = tmp_path / "results" / "demo" / "run" / "fingerprint.json"
    recorded = json.loads(stamp.read_text())
    del recorded["identity"]["train"]["entropy_coef"]
    write_json(stamp, {"fingerprint": "made-by-an-older-mileage", "identity": recorded["identity"]})
    assert statuses(write_config(tmp_path))[0].state == "done"
    # A key that may change under a run (the final evaluation's samples) keeps it done.
    same = write_config(tmp_path, lambda c: c["experiments"]["demo"]["final_eval"].update(n_samples_per_prompt=4))
    assert statuses(same)[0].state == "done"


def test_seeds_are_rows_named_as_the_results_tree_names_them(tmp_path):
    config = write_config(tmp_path, lambda c: c["experiments"]["demo"].update(seeds=[1, 2]))
    fake_training(config, "demo/seeds/2", rollouts=3)
    rows = {s.experiment: s for s in statuses(config)}
    assert set(rows) == {"demo/seeds/1", "demo/seeds/2"}
    assert rows["demo/seeds/1"].state == "not started" and rows["demo/seeds/2"].rollout == 3


def test_sweep_points_are_rows_named_as_the_results_tree_names_them(tmp_path):
    config = write_config(tmp_path, lambda c: c["experiments"].update(
        {"demo-lr": {"extends": "demo", "sweep": {"train.lr": [0.0002, 0.001]}}}))
    rows = {s.experiment: s for s in statuses(config)}
    assert set(rows) == {"demo", "demo-lr~train.lr=0.0002", "demo-lr~train.lr=0.001"}
    assert rows["demo-lr~train.lr=0.001"].sweep_point == {"of": "demo-lr", "values": {"train.lr": 0.001}}


def test_the_command_prints_a_table_or_json(tmp_path, capsys):
    config = write_config(tmp_path)
    fake_training(config, "demo", rollouts=2)
    assert main(["--config", str(config), "status", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert {"experiment": "demo", "state": "failed", "rollout": 2, "num_rollout": 30}.items() <= row.items()
    assert main(["--config", str(config), "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["EXPERIMENT", "STATE", "ROLLOUT"] and lines[1].split()[:3] == ["demo", "failed",
                                                                                                    "2/30"]


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (None, 42, 600, 3 * 3600 + 300, 2 * 86400 + 4 * 3600)] == [
        "-", "42s", "10m", "3h05m", "2d04h"]
